"""The last convolution of a SegNet decoder, shaped for one task, in float32."""

from __future__ import annotations

import keras
from keras import ops

from ka_tf.constants import DEPTH, NORMALS, SEMSEG
from ka_tf.errors import ConfigError
from ka_tf.models.arch import DEPTH_ACTIVATIONS

# Raw log-depth is clipped before exp so a diverging head cannot overflow.
_LOG_DEPTH_CLIP = 12.0


@keras.saving.register_keras_serializable(package="ka_tf")
class DenseTaskHead(keras.layers.Layer):
    """conv3x3 to the task's channels, then the task's output transform, in float32.

    - ``semseg``: logits [B, H, W, C].
    - ``depth``: metres [B, H, W]; ``depth_activation`` maps the raw channel to depth:
      ``exp`` (the conv predicts log-depth), ``softplus``, ``relu`` or ``identity``
      (the raw value, e.g. for converted PyTorch teachers).
    - ``normals``: unit vectors [B, H, W, 3] (L2-normalised).

    The layer always runs in float32 so that mixed precision never reaches losses,
    metrics or exported outputs.
    """

    def __init__(self, task: str, channels: int, depth_activation: str = "exp", **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if depth_activation not in DEPTH_ACTIVATIONS:
            raise ConfigError(
                f"unknown depth_activation. Received: depth_activation={depth_activation!r}. "
                f"Expected one of {DEPTH_ACTIVATIONS}."
            )
        self.task = task
        self.channels = int(channels)
        self.depth_activation = depth_activation
        self.conv = keras.layers.Conv2D(
            self.channels, 3, padding="same", dtype="float32", name="conv"
        )

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.built = True

    def call(self, inputs):
        raw = self.conv(ops.cast(inputs, "float32"))
        if self.task == SEMSEG:
            return raw
        if self.task == NORMALS:
            squared_norm = ops.sum(ops.square(raw), axis=-1, keepdims=True)
            return raw * ops.rsqrt(ops.maximum(squared_norm, 1e-12))
        raw = raw[..., 0]
        if self.depth_activation == "exp":
            return ops.exp(ops.clip(raw, -_LOG_DEPTH_CLIP, _LOG_DEPTH_CLIP))
        if self.depth_activation == "softplus":
            return ops.softplus(raw)
        if self.depth_activation == "relu":
            return ops.relu(raw)
        return raw

    def compute_output_shape(self, input_shape):
        if self.task == DEPTH:
            return tuple(input_shape[:-1])
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        return {
            **config,
            "task": self.task,
            "channels": self.channels,
            "depth_activation": self.depth_activation,
        }
