"""The command-line tools, one module per command.

Each module defines its absl flags and a ``main``; ``run()`` is the console script
(``ka-<name>`` in setup.py) and ``tools/<name>.py`` a two-line front for a checkout.
"""
