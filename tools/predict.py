"""`python tools/predict.py`: the `ka-predict` command, run from a checkout.

The command lives in ka_tf/commands/predict.py.
"""

from ka_tf.commands.predict import run

if __name__ == "__main__":
    run()
