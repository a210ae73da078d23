"""A U-Net teacher: a second splittable architecture beside SegNet.

Its decoder runs from any branch candidate given the skip features of the teacher's own
pass — where SegNet needs its pooling switches — so the block-wise phase projects a
student's features through it as through SegNet. The candidates sit where SegNet's do
(down5 at 1/32 of the image, up5 at 1/16, up4, up3, up2 at 1/2) with the same channels
(:func:`ka_tf.models.arch.candidate_channels`), so a SegNet student of the same widths
reaches it without adaptors.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from ka_tf.models import arch as arch_lib
from ka_tf.models.segnet import image_normalizer
from ka_tf.models.segnet_blocks import _ConvStack
from ka_tf.models.task_head import DenseTaskHead

CONVS_PER_BLOCK = 2


@keras.saving.register_keras_serializable(package="ka_tf")
class UNetEncoderBlock(_ConvStack):
    """2 × (conv3x3 + BN + ReLU), then 2×2 max-pool. Returns ``(pooled, skip)``, the
    skip being the feature before pooling."""

    def __init__(self, filters: int, batch_norm: bool = True, **kwargs):
        kwargs.pop("widths", None)
        super().__init__([filters] * CONVS_PER_BLOCK, batch_norm=batch_norm, **kwargs)
        self.filters = int(filters)

    def call(self, inputs, training=None):
        skip = self._stack(inputs, training=training)
        return ops.max_pool(skip, 2, 2), skip

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        full = (b, h, w, self.filters)
        half = (b, None if h is None else h // 2, None if w is None else w // 2, self.filters)
        return half, full

    def get_config(self):
        config = super().get_config()
        config.pop("widths")
        return {**config, "filters": self.filters}


@keras.saving.register_keras_serializable(package="ka_tf")
class UNetDecoderBlock(_ConvStack):
    """``[x, skip]`` → bilinear 2× upsampling of ``x``, concatenated with ``skip``, then
    2 × (conv3x3 + BN + ReLU)."""

    def __init__(self, filters: int, batch_norm: bool = True, **kwargs):
        kwargs.pop("widths", None)
        super().__init__([filters] * CONVS_PER_BLOCK, batch_norm=batch_norm, **kwargs)
        self.filters = int(filters)
        self.upsample = keras.layers.UpSampling2D(2, interpolation="bilinear", name="upsample")

    def build(self, input_shape):
        x_shape, skip_shape = input_shape
        super().build((*skip_shape[:-1], x_shape[-1] + skip_shape[-1]))

    def call(self, inputs, training=None):
        x, skip = inputs
        x = self.upsample(x)
        return self._stack(ops.concatenate([x, ops.cast(skip, x.dtype)], axis=-1), training)

    def compute_output_shape(self, input_shape):
        _, skip_shape = input_shape
        return (*skip_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.pop("widths")
        return {**config, "filters": self.filters}


@keras.saving.register_keras_serializable(package="ka_tf")
class UNet(keras.Model):
    """U-Net for one dense task, splittable at SegNet's branch candidates.

    Five encoder blocks (2 convs, max-pool; the pre-pool feature is a skip) and five
    decoder blocks (upsample, concatenate the skip of that resolution, 2 convs), then the
    task head. Input: float32 images ``[B, H, W, 3]`` in 0..255, sides multiples of 32.

    Args:
        task: A registered task name.
        num_classes: Classes for a task with classes (semseg).
        channels: Widths of the five levels before the multiplier.
        width_multiplier: Scales every width.
        batch_norm: Whether convs are followed by BatchNorm.
        depth_activation: Depth head transform.
        image_mean, image_std: Normalisation in 0..255 units.
        synchronized_bn: Synchronise BatchNorm statistics across replicas.
        image_shape: Input shape ``(H, W, 3)``.
    """

    def __init__(
        self,
        task: str,
        num_classes: int | None = None,
        channels: Sequence[int] = arch_lib.DEFAULT_CHANNELS,
        width_multiplier: float = 1.0,
        batch_norm: bool = True,
        depth_activation: str = "exp",
        image_mean: Sequence[float] = arch_lib.IMAGENET_MEAN,
        image_std: Sequence[float] = arch_lib.IMAGENET_STD,
        synchronized_bn: bool = False,
        image_shape: Sequence[int | None] = (None, None, 3),
        **kwargs,
    ):
        # === Layers ===
        widths = arch_lib.scaled_channels(channels, width_multiplier)
        normalizer = image_normalizer(image_mean, image_std)
        norm = {"batch_norm": batch_norm, "synchronized_bn": synchronized_bn}
        encoder_blocks = [
            UNetEncoderBlock(w, name=f"down{i + 1}", **norm) for i, w in enumerate(widths)
        ]
        # Decoder block k maps candidate k to k + 1 with the skip of level 5 - k; it
        # outputs the channels SegNet has at candidate k + 1 (the last, level 1's).
        outputs_per_block = [*arch_lib.candidate_channels(widths)[1:], widths[0]]
        decoder_blocks = [
            UNetDecoderBlock(c, name=f"up{5 - k}", **norm) for k, c in enumerate(outputs_per_block)
        ]
        head = DenseTaskHead(
            task, arch_lib.output_channels(task, num_classes), depth_activation, name=f"{task}_head"
        )

        # === Functional Model ===
        inputs = keras.Input(shape=tuple(image_shape), name="images")
        x = normalizer(inputs)
        skips = []
        for block in encoder_blocks:
            x, skip = block(x)
            skips.append(skip)
        for k, block in enumerate(decoder_blocks):
            x = block([x, skips[-1 - k]])
        super().__init__(inputs=inputs, outputs={task: head(x)}, **kwargs)

        # === Config ===
        self.task = task
        self.tasks = (task,)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.channels = [int(c) for c in channels]
        self.width_multiplier = float(width_multiplier)
        self.batch_norm = bool(batch_norm)
        self.depth_activation = depth_activation
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.synchronized_bn = bool(synchronized_bn)
        self.image_shape = tuple(image_shape)
        self.widths = widths
        self.normalizer = normalizer
        self.encoder_blocks = encoder_blocks
        self.decoder_blocks = decoder_blocks
        self.heads = {task: head}

    # --- splitting (the protocol of ka_tf.teachers.splittable) -------------------------

    def candidate_channels(self, task: str | None = None) -> tuple[int, ...]:
        """Channels of the feature at each branch candidate 0..4 (SegNet's)."""
        del task
        return arch_lib.candidate_channels(self.widths)

    def forward_intermediates(self, images, training: bool = False) -> dict:
        """The full pass, with the candidates' features and the decoder's side inputs.

        Returns:
            ``{"candidates": {task: [f0..f4]}, "side": [skip for block 0..4],
            "outputs": {task: y}}``.
        """
        x = self.normalizer(images)
        skips = []
        for block in self.encoder_blocks:
            x, skip = block(x, training=training)
            skips.append(skip)
        side = skips[::-1]
        candidates = [x]
        for k, block in enumerate(self.decoder_blocks):
            x = block([x, side[k]], training=training)
            if k + 1 < len(self.decoder_blocks):
                candidates.append(x)
        return {
            "candidates": {self.task: candidates},
            "side": side,
            "outputs": {self.task: self.heads[self.task](x)},
        }

    def decode_from(self, features, side, start: int, task: str | None = None, training=False):
        """Runs decoder blocks from candidate ``start`` on with the skips ``side`` (the
        teacher's own, from :meth:`forward_intermediates`), then the head."""
        if task not in (None, self.task):
            raise ValueError(f"this U-Net predicts {self.task!r}, not {task!r}.")
        x = features
        for k in range(start, len(self.decoder_blocks)):
            x = self.decoder_blocks[k]([x, side[k]], training=training)
        return self.heads[self.task](x)

    def get_config(self):
        return {
            "task": self.task,
            "num_classes": self.num_classes,
            "channels": self.channels,
            "width_multiplier": self.width_multiplier,
            "batch_norm": self.batch_norm,
            "depth_activation": self.depth_activation,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "synchronized_bn": self.synchronized_bn,
            "image_shape": list(self.image_shape),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
