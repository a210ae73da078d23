"""`python tools/zoo.py`: the `ka-zoo` command, run from a checkout.

The command lives in ka_tf/commands/zoo.py.
"""

from ka_tf.commands.zoo import run

if __name__ == "__main__":
    run()
