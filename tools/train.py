"""`python tools/train.py`: the `ka-train` command, run from a checkout.

The command lives in ka_tf/commands/train.py.
"""

from ka_tf.commands.train import run

if __name__ == "__main__":
    run()
