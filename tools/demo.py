"""`python tools/demo.py`: the `ka-demo` command, run from a checkout.

The command lives in ka_tf/commands/demo.py.
"""

from ka_tf.commands.demo import run

if __name__ == "__main__":
    run()
