"""LiteStudent: the light multi-task student — an EfficientNet-Lite0 encoder shared by
every task, and a small feature-pyramid decoder per task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from ka_tf.errors import ConfigError
from ka_tf.models import arch as arch_lib
from ka_tf.models.efficientnet_lite import EfficientNetLite0
from ka_tf.models.task_head import DenseTaskHead, declare_task_kinds, user_task_kinds

# The encoder features each decoder reads, deepest first; the decoder's five taps sit at
# the same strides as a SegNet teacher's branch candidates (down5, up5, up4, up3, up2).
TAP_STRIDES = (32, 16, 8, 4, 2)


def _conv_bn_relu(channels: int, kernel_size: int, name: str) -> list[keras.layers.Layer]:
    return [
        keras.layers.Conv2D(
            channels, kernel_size, padding="same", use_bias=False, name=f"{name}_conv"
        ),
        keras.layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn"),
        keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6"),
    ]


def _separable_bn_relu(channels: int, name: str) -> list[keras.layers.Layer]:
    return [
        keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw"),
        keras.layers.BatchNormalization(epsilon=1e-3, name=f"{name}_dw_bn"),
        keras.layers.ReLU(max_value=6.0, name=f"{name}_dw_relu6"),
        *_conv_bn_relu(channels, 1, f"{name}_pw"),
    ]


def _apply(layers: Sequence[keras.layers.Layer], x, training=None):
    for layer in layers:
        x = layer(x, training=training) if training is not None else layer(x)
    return x


class _TaskDecoder:
    """The layers of one task's decoder (a plain holder; the model tracks the layers).

    Top-down: a 1×1 lateral conv of each encoder feature (stride 32 → 4) is added to the
    2× bilinear upsampling of the coarser level, then refined by a depthwise-separable
    conv; at stride 2 the width halves and the stride-2 feature joins; a last 2×
    upsampling and the task head give the full-resolution output. Every op is a TFLite
    builtin (conv, depthwise conv, add, bilinear resize, ReLU6).
    """

    def __init__(self, task: str, channels: int, head_channels: int, depth_activation: str):
        half = max(8, channels // 2)
        self.task = task
        self.laterals = [
            keras.layers.Conv2D(
                channels if stride > 2 else half, 1, name=f"{task}_lateral_s{stride}"
            )
            for stride in TAP_STRIDES
        ]
        self.upsamples = [
            keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{task}_up_s{stride}")
            for stride in TAP_STRIDES[1:]
        ]
        self.reduce = _conv_bn_relu(half, 1, f"{task}_reduce_s4")
        self.adds = [keras.layers.Add(name=f"{task}_add_s{stride}") for stride in TAP_STRIDES[1:]]
        self.refines = [
            _separable_bn_relu(channels if stride > 2 else half, f"{task}_refine_s{stride}")
            for stride in TAP_STRIDES[1:]
        ]
        self.final_upsample = keras.layers.UpSampling2D(
            2, interpolation="bilinear", name=f"{task}_up_s1"
        )
        self.head = DenseTaskHead(
            task, head_channels, depth_activation, kernel_size=1, name=f"{task}_head"
        )

    def taps_and_output(self, features: dict, training=None):
        """The decoder's feature at each of :data:`TAP_STRIDES`, and the task output."""
        x = self.laterals[0](features["stride32"])
        taps = [x]
        for k, stride in enumerate(TAP_STRIDES[1:]):
            up = self.upsamples[k](x)
            if stride == 2:  # narrower from here on: full-resolution maps are costly
                up = _apply(self.reduce, up, training)
            x = self.adds[k]([up, self.laterals[k + 1](features[f"stride{stride}"])])
            x = _apply(self.refines[k], x, training)
            taps.append(x)
        return taps, self.head(self.final_upsample(x))

    def tap_channels(self) -> tuple[int, ...]:
        return tuple(int(layer.filters) for layer in self.laterals)


@keras.saving.register_keras_serializable(package="ka_tf")
class LiteStudent(keras.Model):
    """One EfficientNet-Lite0 encoder shared by every task, one light decoder per task.

    The student of the ``efficientnet_lite`` family (``amalgamate.student_family``): the
    encoder starts from ImageNet weights converted from PyTorch
    (:func:`ka_tf.convert.torch_efficientnet_lite.convert_efficientnet_lite0`); each
    task's decoder (see ``_TaskDecoder``) is its own. It learns from its teachers'
    outputs in the fine-tuning phase, and, for a splittable teacher, can also match
    the teacher's features at the five branch candidates through 1×1 adaptors
    (:meth:`forward_taps`). Input: float32 images [B, H, W, 3] in 0..255, H and W
    multiples of 32; output: a dict keyed by task, as every ka_tf model.

    Args:
        tasks: Task names, e.g. ``("person", "salient")``.
        num_classes: Classes of a ``semseg`` head.
        decoder_channels: Width of each decoder (halved at stride 2).
        depth_activation: Depth head transform (see
            :class:`~ka_tf.models.task_head.DenseTaskHead`).
        image_shape: Input shape ``(H, W, 3)``; ``None`` sides accept any size.
        task_kinds: Task → kind for tasks their user named (``{"person": "binary"}``),
            declared before the model is built; ``get_config`` records them, so a
            saved student loads where those tasks were never registered.

    Example:
        >>> student = LiteStudent(("semseg", "depth"), num_classes=19)
        >>> sorted(student(np.zeros((1, 64, 128, 3), "float32")))
        ['depth', 'semseg']
    """

    def __init__(
        self,
        tasks: Sequence[str],
        num_classes: int | None = None,
        decoder_channels: int = 64,
        depth_activation: str = "exp",
        image_shape: Sequence[int | None] = (None, None, 3),
        task_kinds: Mapping[str, str] | None = None,
        **kwargs,
    ):
        # === Layers ===
        declare_task_kinds(task_kinds)
        if not tasks:
            raise ConfigError("LiteStudent needs at least one task. Received: tasks=[].")
        if decoder_channels < 8:
            raise ConfigError(
                f"LiteStudent.decoder_channels must be >= 8. Received: {decoder_channels}."
            )
        tasks = tuple(tasks)
        encoder = EfficientNetLite0(include_top=False, name="encoder")
        decoders = {
            task: _TaskDecoder(
                task,
                int(decoder_channels),
                arch_lib.output_channels(task, num_classes),
                depth_activation,
            )
            for task in tasks
        }

        # === Functional Model ===
        inputs = keras.Input(shape=tuple(image_shape), name="images")
        features = encoder(inputs)
        outputs = {task: decoders[task].taps_and_output(features)[1] for task in tasks}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.tasks = tasks
        self.num_classes = None if num_classes is None else int(num_classes)
        self.decoder_channels = int(decoder_channels)
        self.depth_activation = depth_activation
        self.image_shape = tuple(image_shape)
        self.task_kinds = user_task_kinds(tasks)
        self.encoder = encoder
        self.decoders = decoders

    def tap_channels(self, task: str) -> tuple[int, ...]:
        """Channels of ``task``'s decoder feature at each of the five taps."""
        return self.decoders[task].tap_channels()

    def forward_taps(self, images, training: bool = False) -> dict:
        """The outputs and each task's decoder features at the five taps.

        Returns:
            ``{"taps": {task: [t0..t4]}, "outputs": {task: y}}``, ``t_k`` at stride
            ``TAP_STRIDES[k]`` — where a SegNet teacher's candidate ``k`` sits.
        """
        features = self.encoder(images, training=training)
        taps, outputs = {}, {}
        for task in self.tasks:
            taps[task], outputs[task] = self.decoders[task].taps_and_output(features, training)
        return {"taps": taps, "outputs": outputs}

    def get_config(self):
        return {
            "tasks": list(self.tasks),
            "num_classes": self.num_classes,
            "decoder_channels": self.decoder_channels,
            "depth_activation": self.depth_activation,
            "image_shape": list(self.image_shape),
            "task_kinds": dict(self.task_kinds),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
