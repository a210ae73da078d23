"""`python tools/make_synth.py`: the `ka-make-synth` command, run from a checkout.

The command lives in ka_tf/commands/make_synth.py.
"""

from ka_tf.commands.make_synth import run

if __name__ == "__main__":
    run()
