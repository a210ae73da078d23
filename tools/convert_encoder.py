"""`python tools/convert_encoder.py`: converts the EfficientNet-Lite0 ImageNet weights.

The command lives in ka_tf/commands/convert_encoder.py.
"""

from ka_tf.commands.convert_encoder import run

if __name__ == "__main__":
    run()
