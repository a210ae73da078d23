"""`python tools/inspect_dataset.py`: the `ka-inspect-dataset` command, run from a checkout.

The command lives in ka_tf/commands/inspect_dataset.py.
"""

from ka_tf.commands.inspect_dataset import run

if __name__ == "__main__":
    run()
