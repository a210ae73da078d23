"""The last convolution of a SegNet decoder, shaped for one task, in float32."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
from keras import ops

from ka_tf.errors import ConfigError
from ka_tf.models.arch import DEPTH_ACTIVATIONS


def declare_task_kinds(task_kinds: Mapping[str, str] | None) -> None:
    """Declares the user-named tasks a saved multi-task model records (task → kind)."""
    from ka_tf.tasks import declare_task  # see the import note in DenseTaskHead

    for task, kind in (task_kinds or {}).items():
        declare_task(task, kind)


def user_task_kinds(tasks: Sequence[str]) -> dict[str, str]:
    """Task → kind of the tasks among ``tasks`` that their user named (binary masks),
    for a model's config; the built-in tasks have no kind."""
    from ka_tf.tasks import get_task

    return {task: get_task(task).kind for task in tasks if get_task(task).kind is not None}


@keras.saving.register_keras_serializable(package="ka_tf")
class DenseTaskHead(keras.layers.Layer):
    """A conv (3x3 by default) to the task's channels, then the task's output transform,
    in float32.

    The transform is the task's (:meth:`ka_tf.tasks.Task.head_output`): logits
    [B, H, W, C] for semseg; metres [B, H, W] for depth, where ``depth_activation``
    maps the raw channel to depth (``exp``: the conv predicts log-depth,
    ``softplus``, ``relu``, or ``identity`` for converted PyTorch teachers); unit
    vectors [B, H, W, 3] for normals.

    The layer always runs in float32 so that mixed precision never reaches losses,
    metrics or exported outputs.
    """

    def __init__(
        self,
        task: str,
        channels: int,
        depth_activation: str = "exp",
        kernel_size: int = 3,
        task_kind: str | None = None,
        **kwargs,
    ):
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
        from ka_tf.tasks import declare_task, get_task

        # A task its user named (a binary mask) is declared again from its kind on load.
        self._task = get_task(task) if task_kind is None else declare_task(task, task_kind)
        self.channels = int(channels)
        self.depth_activation = depth_activation
        self.kernel_size = int(kernel_size)
        self.conv = keras.layers.Conv2D(
            self.channels, self.kernel_size, padding="same", dtype="float32", name="conv"
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
            "kernel_size": self.kernel_size,
            "task_kind": self._task.kind,
        }
