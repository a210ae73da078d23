"""`python tools/env_info.py`: the `ka-env-info` command, run from a checkout.

The command lives in ka_tf/commands/env_info.py.
"""

from ka_tf.commands.env_info import run

if __name__ == "__main__":
    run()
