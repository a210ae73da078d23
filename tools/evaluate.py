"""`python tools/evaluate.py`: the `ka-evaluate` command, run from a checkout.

The command lives in ka_tf/commands/evaluate.py.
"""

from ka_tf.commands.evaluate import run

if __name__ == "__main__":
    run()
