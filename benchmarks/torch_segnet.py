"""SegNet in PyTorch with the state_dict layout of the public PyTorch SegNet teachers.

This is the PyTorch twin of :class:`ka_tf.models.SegNet`: same VGG-11/13/16/19
encoder, same mirrored argmax-unpooling decoder, same heads. It serves two
purposes and therefore imports nothing from ka_tf:

- the reference the converter (``tools/convert_teacher.py``, ``ka_tf.convert``) is
  checked against: a checkpoint of this module converts to a Keras model with the
  same outputs;
- the PyTorch side of the PyTorch-vs-TensorFlow benchmark (training step and
  inference).

State_dict layout (the one of KamalEngine's ``segnet_vgg*`` models, adapted from
pytorch-semseg; the knowledge-amalgamation teachers are published in it)::

    down{b}.layers.{i}.0.{weight,bias}                 conv3x3 i of encoder block b
    down{b}.layers.{i}.1.{weight,bias,running_mean,running_var,num_batches_tracked}
                                                       its BatchNorm (``*_bn`` archs)
    up{b}.layers.{i}...                                the same for decoder block b
    up1.layers.{n-1}.0.{weight,bias}                   the outermost conv = the task head

Each ``layers.{i}`` is an ``nn.Sequential``: ``[Conv2d, BatchNorm2d, ReLU]`` with
BatchNorm, ``[Conv2d, ReLU]`` without (the ReLU at ``.1`` has no parameters, so a
non-BN checkpoint holds only ``layers.{i}.0.*``), and ``[Conv2d]`` alone for the
outermost conv, which has neither BatchNorm nor ReLU in any arch.

Differences from meetps/pytorch-semseg's ``segnet``: that model is VGG16-BN only,
names its units ``down{b}.conv{k}.cbr_unit.{0,1}`` and ends in conv + BN + ReLU
(so its logits are never negative); its checkpoints do not fit this layout and
cannot be converted exactly.

Input: float32 NCHW images already normalised, ``(pixel - mean) / std`` with the
mean/std the model was trained with (ImageNet by default). The converted Keras
model does that normalisation itself, on 0..255 NHWC input; the converter takes
the mean/std as flags. H and W must be multiples of 32.

Output (the same values as the Keras model, channels first): ``semseg`` logits
[B, C, H, W]; ``depth`` [B, H, W] after ``depth_activation`` (``identity`` keeps the
raw conv output, as the public teachers do); ``normals`` [B, 3, H, W] L2-normalised.

Example:
    >>> model = TorchSegNet("semseg", num_classes=13, arch="segnet_vgg16_bn").eval()
    >>> model(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 13, 64, 64])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Convolutions per encoder block (down1..down5); mirrors ka_tf.models.arch.VGG_CONVS.
VGG_CONVS: dict[str, tuple[int, ...]] = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
ARCHS: tuple[str, ...] = tuple(
    f"segnet_{vgg}{suffix}" for vgg in VGG_CONVS for suffix in ("", "_bn")
)
DEFAULT_CHANNELS = (64, 128, 256, 512, 512)
TASK_CHANNELS = {"depth": 1, "normals": 3}
DEPTH_ACTIVATIONS = ("exp", "softplus", "relu", "identity")
# Same clip as ka_tf.models.task_head before exp of a log-depth head.
_LOG_DEPTH_CLIP = 12.0


def parse_arch(arch: str) -> tuple[str, bool]:
    """Splits ``segnet_vgg16_bn`` into ``("vgg16", True)``.

    Raises:
        ValueError: for a name outside :data:`ARCHS`.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch. Received: arch={arch!r}. Expected one of {ARCHS}.")
    name = arch[len("segnet_") :]
    return name.removesuffix("_bn"), name.endswith("_bn")


def scaled_channels(channels: Sequence[int], width_multiplier: float = 1.0) -> tuple[int, ...]:
    """Block widths after the width multiplier (at least 4), as ka_tf.models.arch does."""
    if len(channels) != 5:
        raise ValueError(f"channels needs 5 block widths. Received: channels={list(channels)}.")
    return tuple(max(4, round(c * width_multiplier)) for c in channels)


class ConvBNReLU(nn.Sequential):
    """conv3x3 (+ BatchNorm) (+ ReLU) as one ``nn.Sequential``: conv is always ``.0``."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool, relu: bool = True):
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))  # eps 1e-5, momentum 0.1
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SegNetDown(nn.Module):
    """``num_convs`` x ConvBNReLU, then 2x2 max-pool returning its indices."""

    def __init__(self, in_channels: int, out_channels: int, num_convs: int, batch_norm: bool):
        super().__init__()
        widths = [in_channels] + [out_channels] * num_convs
        self.layers = nn.Sequential(
            *(ConvBNReLU(widths[i], widths[i + 1], batch_norm) for i in range(num_convs))
        )
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
        x = self.layers(x)
        pooled, indices = self.pool(x)
        return pooled, indices, x.size()


class SegNetUp(nn.Module):
    """Max-unpooling by the encoder's indices, then ``num_convs - 1`` convs in->in and one in->out.

    With ``outer_most`` the last conv is the task head: no BatchNorm, no ReLU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_convs: int,
        batch_norm: bool,
        outer_most: bool = False,
    ):
        super().__init__()
        layers = [ConvBNReLU(in_channels, in_channels, batch_norm) for _ in range(num_convs - 1)]
        if outer_most:
            layers.append(ConvBNReLU(in_channels, out_channels, batch_norm=False, relu=False))
        else:
            layers.append(ConvBNReLU(in_channels, out_channels, batch_norm))
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, indices: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return self.layers(self.unpool(x, indices, output_size=size))


class TorchSegNet(nn.Module):
    """SegNet (VGG encoder, argmax-unpooling decoder) for one dense task, in PyTorch.

    Args:
        task: ``"semseg"``, ``"depth"`` or ``"normals"``.
        num_classes: Classes for ``semseg`` (ignored otherwise).
        arch: One of :data:`ARCHS`, e.g. ``"segnet_vgg16_bn"``.
        channels: Widths of the five blocks before the multiplier.
        width_multiplier: Scales every width (at least 4 channels per block).
        depth_activation: Depth output transform: ``identity`` (raw), ``exp``
            (clipped log-depth), ``softplus`` or ``relu``.
    """

    def __init__(
        self,
        task: str,
        num_classes: int | None = None,
        arch: str = "segnet_vgg16_bn",
        channels: Sequence[int] = DEFAULT_CHANNELS,
        width_multiplier: float = 1.0,
        depth_activation: str = "identity",
    ):
        super().__init__()
        vgg, batch_norm = parse_arch(arch)
        if task == "semseg":
            if not num_classes or num_classes < 2:
                raise ValueError(f"semseg needs num_classes >= 2. Received: {num_classes}.")
            out_channels = int(num_classes)
        elif task in TASK_CHANNELS:
            out_channels = TASK_CHANNELS[task]
        else:
            raise ValueError(f"unknown task. Received: task={task!r}.")
        if depth_activation not in DEPTH_ACTIVATIONS:
            raise ValueError(
                f"unknown depth_activation {depth_activation!r}; expected {DEPTH_ACTIVATIONS}."
            )
        self.task = task
        self.arch = arch
        self.depth_activation = depth_activation
        self.widths = scaled_channels(channels, width_multiplier)
        convs = VGG_CONVS[vgg]
        w = self.widths
        self.down1 = SegNetDown(3, w[0], convs[0], batch_norm)
        self.down2 = SegNetDown(w[0], w[1], convs[1], batch_norm)
        self.down3 = SegNetDown(w[1], w[2], convs[2], batch_norm)
        self.down4 = SegNetDown(w[2], w[3], convs[3], batch_norm)
        self.down5 = SegNetDown(w[3], w[4], convs[4], batch_norm)
        self.up5 = SegNetUp(w[4], w[3], convs[4], batch_norm)
        self.up4 = SegNetUp(w[3], w[2], convs[3], batch_norm)
        self.up3 = SegNetUp(w[2], w[1], convs[2], batch_norm)
        self.up2 = SegNetUp(w[1], w[0], convs[1], batch_norm)
        self.up1 = SegNetUp(w[0], out_channels, convs[0], batch_norm, outer_most=True)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The outermost conv's output [B, out_channels, H, W] (the public models' output)."""
        x, i1, s1 = self.down1(x)
        x, i2, s2 = self.down2(x)
        x, i3, s3 = self.down3(x)
        x, i4, s4 = self.down4(x)
        x, i5, s5 = self.down5(x)
        x = self.up5(x, i5, s5)
        x = self.up4(x, i4, s4)
        x = self.up3(x, i3, s3)
        x = self.up2(x, i2, s2)
        return self.up1(x, i1, s1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Task output for normalised NCHW images (see the module docstring)."""
        raw = self.raw(x)
        if self.task == "semseg":
            return raw
        if self.task == "normals":
            return F.normalize(raw, dim=1, eps=1e-12)
        depth = raw[:, 0]
        if self.depth_activation == "exp":
            return torch.exp(torch.clamp(depth, -_LOG_DEPTH_CLIP, _LOG_DEPTH_CLIP))
        if self.depth_activation == "softplus":
            return F.softplus(depth)
        if self.depth_activation == "relu":
            return F.relu(depth)
        return depth
