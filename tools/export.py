"""`python tools/export.py`: the `ka-export` command, run from a checkout.

The command lives in ka_tf/commands/export.py.
"""

from ka_tf.commands.export import run

if __name__ == "__main__":
    run()
