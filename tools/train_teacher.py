"""`python tools/train_teacher.py`: the `ka-train-teacher` command, run from a checkout.

The command lives in ka_tf/commands/train_teacher.py.
"""

from ka_tf.commands.train_teacher import run

if __name__ == "__main__":
    run()
