"""The PyTorch side of ``tools/benchmark.py --compare_pytorch``: SegNet step and inference.

The model is :class:`benchmarks.torch_segnet.TorchSegNet`, the twin of ka_tf's Keras
``SegNet`` (same VGG encoder, argmax-unpooling decoder and head; same widths after
the width multiplier). Each function returns a zero-argument callable that runs one
batch to completion, which the benchmark times alternately with its Keras twin:

- :func:`train_step_call`: forward, cross-entropy (ignore index 255), backward and an
  SGD update on one fixed batch — ``model.train()``, BatchNorm in training mode;
- :func:`inference_call`: ``model.eval()`` forward under ``torch.inference_mode()``,
  with the logits materialised as a numpy array (as the Keras side does).

Inputs are channels-first float32 ``[B, 3, H, W]`` already normalised (the Keras model
normalises 0..255 input itself, one cheap elementwise op more). Like
``torch_segnet.py``, this module imports nothing from ka_tf.

The benchmark runs these functions in a separate worker process
(``benchmarks.harness.TimingWorker``), apart from TensorFlow's thread pools, with
PyTorch's default OpenMP settings: its libgomp threads spin-wait between parallel
regions, which is fast on a quiet machine (``OMP_WAIT_POLICY=PASSIVE`` made the
training step 1.75x slower) but swings by up to 10x when more threads than cores
are runnable, so benchmark on a quiet machine. :func:`set_threads` sets the worker's
thread counts.

Example:
    >>> step = train_step_call("semseg", 19, 0.125, batch=8, image_size=(64, 128))
    >>> step()  # one SGD step; returns the loss as a float
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.torch_segnet import DEFAULT_CHANNELS, TorchSegNet

IGNORE_INDEX = 255


def build_model(
    num_classes: int,
    width_multiplier: float,
    arch: str = "segnet_vgg16_bn",
    channels: Sequence[int] = DEFAULT_CHANNELS,
    seed: int = 0,
) -> TorchSegNet:
    """A semantic-segmentation TorchSegNet with fresh (seeded) weights."""
    torch.manual_seed(seed)
    return TorchSegNet(
        "semseg",
        num_classes=num_classes,
        arch=arch,
        channels=channels,
        width_multiplier=width_multiplier,
    )


def _images(batch: int, image_size: Sequence[int], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, int(image_size[0]), int(image_size[1]), generator=generator)


def train_step_call(
    num_classes: int,
    width_multiplier: float,
    batch: int,
    image_size: Sequence[int],
    arch: str = "segnet_vgg16_bn",
    channels: Sequence[int] = DEFAULT_CHANNELS,
    learning_rate: float = 0.01,
) -> Callable[[], float]:
    """One SGD training step of a semseg SegNet on a fixed random batch, as a callable.

    Returns:
        A callable running forward, loss, backward and ``optimizer.step()``; it returns
        the loss as a Python float (which waits for the step to finish).
    """
    model = build_model(num_classes, width_multiplier, arch, channels).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    images = _images(batch, image_size, seed=1)
    generator = torch.Generator().manual_seed(2)
    labels = torch.randint(
        0, num_classes, (batch, int(image_size[0]), int(image_size[1])), generator=generator
    )

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels, ignore_index=IGNORE_INDEX)
        loss.backward()
        optimizer.step()
        return float(loss.item())

    return step


def inference_call(
    num_classes: int,
    width_multiplier: float,
    batch: int,
    image_size: Sequence[int],
    arch: str = "segnet_vgg16_bn",
    channels: Sequence[int] = DEFAULT_CHANNELS,
) -> Callable[[], Any]:
    """An eval-mode forward of a semseg SegNet on a fixed random batch, as a callable.

    Returns:
        A callable returning the logits ``[B, C, H, W]`` as a numpy array.
    """
    model = build_model(num_classes, width_multiplier, arch, channels).eval()
    images = _images(batch, image_size, seed=1)

    def forward():
        with torch.inference_mode():
            return model(images).numpy()

    return forward


def parameter_count(model: torch.nn.Module) -> int:
    """Trainable parameters of a PyTorch model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_parameter_count(
    num_classes: int,
    width_multiplier: float,
    arch: str = "segnet_vgg16_bn",
    channels: Sequence[int] = DEFAULT_CHANNELS,
) -> int:
    """Trainable parameters of the SegNet :func:`build_model` builds."""
    return parameter_count(build_model(num_classes, width_multiplier, arch, channels))


def set_threads(threads: int) -> dict[str, Any]:
    """Sets PyTorch's intra- and inter-op thread counts (before its first parallel op).

    Returns:
        What PyTorch reports, and the ``OMP_WAIT_POLICY`` its OpenMP runtime started
        with (``"unset"``: libgomp's default, spin before sleeping).
    """
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set, or parallel work has started
        pass
    return {
        "torch_intra_op": torch.get_num_threads(),
        "torch_inter_op": torch.get_num_interop_threads(),
        "torch_omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
    }
