"""`python tools/fetch_real.py`: fetches the real teachers and photos (`make real-teachers`).

The command lives in ka_tf/commands/fetch_real.py.
"""

from ka_tf.commands.fetch_real import run

if __name__ == "__main__":
    run()
