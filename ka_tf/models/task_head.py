"""The last convolution of a SegNet decoder, shaped for one task, in float32."""

from __future__ import annotations

import keras
from keras import ops

from ka_tf.errors import ConfigError
from ka_tf.models.arch import DEPTH_ACTIVATIONS


@keras.saving.register_keras_serializable(package="ka_tf")
class DenseTaskHead(keras.layers.Layer):
    """conv3x3 to the task's channels, then the task's output transform, in float32.

    The transform is the task's (:meth:`ka_tf.tasks.Task.head_output`): logits
    [B, H, W, C] for semseg; metres [B, H, W] for depth, where ``depth_activation``
    maps the raw channel to depth (``exp``: the conv predicts log-depth,
    ``softplus``, ``relu``, or ``identity`` for converted PyTorch teachers); unit
    vectors [B, H, W, 3] for normals.

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
        # Imported here: ka_tf.models must import with nothing but ka_tf.errors from
        # outside it (ka_tf._keras_registration imports it in the middle of any ka_tf
        # module's import that first loads TensorFlow).
        from ka_tf.tasks import get_task

        self._task = get_task(task)
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
        return self._task.head_output(raw, {"depth_activation": self.depth_activation})

    def compute_output_shape(self, input_shape):
        return self._task.head_output_shape(tuple(input_shape), self.channels)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        return {
            **config,
            "task": self.task,
            "channels": self.channels,
            "depth_activation": self.depth_activation,
        }
