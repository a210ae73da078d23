"""`python tools/study.py`: the `ka-study` command, run from a checkout.

The command lives in ka_tf/commands/study.py.
"""

from ka_tf.commands.study import run

if __name__ == "__main__":
    run()
