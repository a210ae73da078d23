"""SegNet/VGG architecture tables shared by the teachers and the student."""

from __future__ import annotations

from collections.abc import Sequence

from ka_tf.errors import ConfigError

# Convolutions per encoder block (down1..down5) for each VGG variant.
VGG_CONVS: dict[str, tuple[int, ...]] = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
DEFAULT_CHANNELS = (64, 128, 256, 512, 512)
NUM_BLOCKS = 5
# Branch-out candidates: outputs of down5, up5, up4, up3, up2 (index 0..4).
BRANCH_CANDIDATES = ("down5", "up5", "up4", "up3", "up2")
DEPTH_ACTIVATIONS = ("exp", "softplus", "relu", "identity")
# ImageNet statistics in 0..255 pixel units, the usual VGG input normalisation.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def check_arch(arch: str) -> tuple[int, ...]:
    """Returns the conv counts of ``arch`` or raises a ConfigError listing the choices."""
    if arch not in VGG_CONVS:
        raise ConfigError(
            f"unknown arch. Received: arch={arch!r}. Expected one of {sorted(VGG_CONVS)}."
        )
    return VGG_CONVS[arch]


def scaled_channels(channels: Sequence[int], width_multiplier: float = 1.0) -> tuple[int, ...]:
    """Block widths after the width multiplier (at least 4 channels per block)."""
    if len(channels) != NUM_BLOCKS:
        raise ConfigError(
            f"channels needs {NUM_BLOCKS} block widths. Received: channels={list(channels)}."
        )
    if width_multiplier <= 0:
        raise ConfigError(f"width_multiplier must be > 0. Received: {width_multiplier}.")
    return tuple(max(4, round(c * width_multiplier)) for c in channels)


def output_channels(task: str, num_classes: int | None) -> int:
    """Channels of a task head (:meth:`ka_tf.tasks.Task.head_channels`): C logits for
    semseg, 1 for depth, 3 for normals."""
    from ka_tf.tasks import get_task

    return get_task(task).head_channels(num_classes)


def candidate_channels(channels: Sequence[int]) -> tuple[int, ...]:
    """Channels of the feature at each branch candidate (down5, up5, up4, up3, up2)."""
    c = tuple(channels)
    return (c[4], c[3], c[2], c[1], c[0])
