"""SegNet with a VGG encoder: the single-task teacher, splittable at every block."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from ka_tf.models import arch as arch_lib
from ka_tf.models.segnet_blocks import build_decoder_blocks, build_encoder_blocks, switches_for
from ka_tf.models.task_head import DenseTaskHead


def image_normalizer(mean: Sequence[float], std: Sequence[float], name: str = "normalize"):
    """(x - mean) / std on 0..255 pixels, as a builtin Normalization layer."""
    return keras.layers.Normalization(
        mean=list(mean), variance=[float(s) ** 2 for s in std], name=name
    )


@keras.saving.register_keras_serializable(package="ka_tf")
class SegNet(keras.Model):
    """SegNet (VGG encoder, argmax-unpooling decoder) for one dense task.

    Five encoder blocks (conv3x3+BN+ReLU, then 2x2 max-pool keeping its switches)
    and five mirrored decoder blocks (unpool by those switches, then convs); the
    outermost conv is the task head. Input: float32 images [B, H, W, 3] in 0..255,
    H and W multiples of 32 (normalisation is inside the model). Output: a dict with
    one key, the task (see :class:`~ka_tf.models.task_head.DenseTaskHead`).

    The teacher can be split: :meth:`forward_intermediates` returns the features at
    every branch candidate (down5, up5, up4, up3, up2) and the pooling switches, and
    :meth:`decode_from` runs the decoder from a candidate on with given switches —
    how the amalgamation projects student features into this teacher's domain.

    Args:
        task: ``"semseg"``, ``"depth"`` or ``"normals"``.
        num_classes: Classes for ``semseg``.
        arch: ``"vgg11"``, ``"vgg13"``, ``"vgg16"`` or ``"vgg19"``.
        batch_norm: Whether convs are followed by BatchNorm.
        channels: Widths of the five blocks before the multiplier.
        width_multiplier: Scales every width (e.g. 0.125 for CPU demos).
        depth_activation: Depth head transform (``exp``, ``softplus``, ``relu``, ``identity``).
        image_mean: Per-channel mean in 0..255 units.
        image_std: Per-channel std in 0..255 units.
        synchronized_bn: Synchronise BatchNorm statistics across replicas.
        image_shape: Input shape ``(H, W, 3)``; ``None`` sides accept any size.

    Example:
        >>> teacher = SegNet("semseg", num_classes=19, width_multiplier=0.125)
        >>> teacher(np.zeros((1, 64, 128, 3), "float32"))["semseg"].shape
        TensorShape([1, 64, 128, 19])
    """

    def __init__(
        self,
        task: str,
        num_classes: int | None = None,
        arch: str = "vgg16",
        batch_norm: bool = True,
        channels: Sequence[int] = arch_lib.DEFAULT_CHANNELS,
        width_multiplier: float = 1.0,
        depth_activation: str = "exp",
        image_mean: Sequence[float] = arch_lib.IMAGENET_MEAN,
        image_std: Sequence[float] = arch_lib.IMAGENET_STD,
        synchronized_bn: bool = False,
        image_shape: Sequence[int | None] = (None, None, 3),
        **kwargs,
    ):
        # === Layers ===
        convs = arch_lib.check_arch(arch)
        widths = arch_lib.scaled_channels(channels, width_multiplier)
        out_channels = arch_lib.output_channels(task, num_classes)
        normalizer = image_normalizer(image_mean, image_std)
        encoder_blocks = build_encoder_blocks(widths, convs, batch_norm, synchronized_bn)
        decoder_blocks = build_decoder_blocks(widths, convs, batch_norm, synchronized_bn)
        head = DenseTaskHead(task, out_channels, depth_activation, name=f"{task}_head")

        # === Functional Model ===
        inputs = keras.Input(shape=tuple(image_shape), name="images")
        x = normalizer(inputs)
        switches = []
        for block in encoder_blocks:
            x, block_switches = block(x)
            switches.append(block_switches)
        for k, block in enumerate(decoder_blocks):
            x = block([x, switches_for(k, switches)])
        outputs = {task: head(x)}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.task = task
        self.tasks = (task,)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.arch = arch
        self.batch_norm = bool(batch_norm)
        self.channels = [int(c) for c in channels]
        self.width_multiplier = float(width_multiplier)
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

    # --- splitting -------------------------------------------------------------------

    def candidate_channels(self, task: str | None = None) -> tuple[int, ...]:
        """Channels of the feature at each branch candidate 0..4."""
        del task
        return arch_lib.candidate_channels(self.widths)

    def forward_intermediates(self, images, training: bool = False) -> dict:
        """Full forward pass that also returns what the amalgamation needs.

        Returns:
            ``{"candidates": {task: [f0..f4]}, "side": [s1..s5], "outputs": {task: y}}``
            where ``f_k`` is the feature at branch candidate ``k`` and ``side`` the
            decoder's side inputs, here the pooling switches.
        """
        x = self.normalizer(images)
        switches = []
        for block in self.encoder_blocks:
            x, block_switches = block(x, training=training)
            switches.append(block_switches)
        candidates = [x]
        for k, block in enumerate(self.decoder_blocks):
            x = block([x, switches_for(k, switches)], training=training)
            if k + 1 < len(self.decoder_blocks):
                candidates.append(x)
        return {
            "candidates": {self.task: candidates},
            "side": switches,
            "outputs": {self.task: self.heads[self.task](x)},
        }

    def decode_from(
        self, features, switches, start: int, task: str | None = None, training: bool = False
    ):
        """Runs decoder blocks from candidate ``start`` on, then the head.

        Args:
            features: The feature at branch candidate ``start`` (0 = down5 output).
            switches: Pooling switches ``[s1..s5]`` to unpool with (the teacher's own).
            start: Branch candidate index, 0..4.
            task: Must be this teacher's task (or None).

        Returns:
            The task output tensor.
        """
        if task not in (None, self.task):
            raise ValueError(f"this SegNet predicts {self.task!r}, not {task!r}.")
        x = features
        for k in range(start, len(self.decoder_blocks)):
            x = self.decoder_blocks[k]([x, switches_for(k, switches)], training=training)
        return self.heads[self.task](x)

    def get_config(self):
        return {
            "task": self.task,
            "num_classes": self.num_classes,
            "arch": self.arch,
            "batch_norm": self.batch_norm,
            "channels": self.channels,
            "width_multiplier": self.width_multiplier,
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
