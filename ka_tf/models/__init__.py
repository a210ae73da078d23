"""Keras models: the SegNet and U-Net teachers, the multi-task students (TargetNet, and the
light LiteStudent on an EfficientNet-Lite0 encoder), parts.

Importing this package registers every custom layer with Keras serialization, so
``keras.saving.load_model`` can read ka_tf ``.keras`` files.
"""

from ka_tf.models.channel_coding import ChannelCoding
from ka_tf.models.efficientnet_lite import EfficientNetLite0
from ka_tf.models.lite_student import LiteStudent
from ka_tf.models.segnet import SegNet
from ka_tf.models.segnet_blocks import SegNetDecoderBlock, SegNetEncoderBlock
from ka_tf.models.target_net import TargetNet
from ka_tf.models.task_head import DenseTaskHead
from ka_tf.models.unet import UNet, UNetDecoderBlock, UNetEncoderBlock
from ka_tf.models.unpooling import MaxPoolWithSwitches, MaxUnpool

__all__ = [
    "ChannelCoding",
    "DenseTaskHead",
    "EfficientNetLite0",
    "LiteStudent",
    "MaxPoolWithSwitches",
    "MaxUnpool",
    "SegNet",
    "SegNetDecoderBlock",
    "SegNetEncoderBlock",
    "TargetNet",
    "UNet",
    "UNetDecoderBlock",
    "UNetEncoderBlock",
]
