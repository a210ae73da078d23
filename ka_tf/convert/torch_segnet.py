"""Converts PyTorch SegNet teacher checkpoints into :class:`ka_tf.models.SegNet`.

Reads the state_dict layout of the public PyTorch SegNet teachers (KamalEngine's
``segnet_vgg*``; see ``benchmarks/torch_segnet.py`` for the full description)::

    down{b}.layers.{i}.0.{weight,bias}                          conv3x3 (OIHW)
    down{b}.layers.{i}.1.{weight,bias,running_mean,running_var} BatchNorm (``*_bn``)
    up{b}.layers.{i}...                                         decoder, same scheme
    up1.layers.{n-1}.0.{weight,bias}                            outermost conv = head

and maps every tensor onto the Keras model: conv kernels OIHW -> HWIO, BatchNorm
``weight, bias, running_mean, running_var`` -> ``gamma, beta, moving_mean,
moving_variance`` (epsilon 1e-5 on both sides). ``num_batches_tracked`` is read and
dropped (it does not affect eval-mode outputs). Every other key must be consumed and
every shape must match, or a :class:`~ka_tf.errors.ModelFileError` names the key and
both shapes.

The PyTorch model takes normalised NCHW images; the Keras model normalises 0..255
NHWC images itself with ``image_mean``/``image_std`` (default ImageNet, in 0..255
units), so pass the statistics the teacher was trained with.

torch is imported only when a checkpoint file is read (the ``convert`` extra:
``pip install 'ka_tf[convert]'``); converting an in-memory dict of numpy arrays does
not need it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ka_tf import extras
from ka_tf.constants import DEPTH, NORMALS, SEMSEG
from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.models import arch as arch_lib

ARCHS: tuple[str, ...] = tuple(
    f"segnet_{vgg}{suffix}" for vgg in arch_lib.VGG_CONVS for suffix in ("", "_bn")
)
# Keys of a checkpoint dict that may hold the state_dict (training checkpoints).
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
DATA_PARALLEL_PREFIX = "module."
_INSTALL_HINT = extras.install_hint("convert")


def parse_arch(arch: str) -> tuple[str, bool]:
    """Splits a converter arch name into the Keras SegNet's ``(arch, batch_norm)``.

    Args:
        arch: One of :data:`ARCHS`, e.g. ``"segnet_vgg16_bn"``.

    Returns:
        ``("vgg16", True)`` for ``"segnet_vgg16_bn"``.

    Raises:
        ConfigError: for an unknown name, listing the valid ones.
    """
    if arch not in ARCHS:
        raise ConfigError(f"unknown arch. Received: arch={arch!r}. Expected one of {ARCHS}.")
    name = arch[len("segnet_") :]
    return name.removesuffix("_bn"), name.endswith("_bn")


def _to_numpy(key: str, value: Any, source: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        array = value
    elif hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor
        tensor = value.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()
        array = tensor.numpy()
    else:
        raise ModelFileError(
            f"{source}: entry {key!r} is a {type(value).__name__}, expected a tensor; "
            f"is this a SegNet state_dict?"
        )
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def _is_tensor_mapping(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) for k in value)
        and all(isinstance(v, np.ndarray) or hasattr(v, "detach") for v in value.values())
    )


def extract_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, np.ndarray]:
    """Finds the state_dict in what ``torch.load`` returned and converts it to numpy.

    Accepts a raw state_dict (a mapping of names to tensors), a dict that wraps one
    under ``state_dict``, ``model`` or ``model_state_dict`` (extra entries such as
    ``epoch`` or ``optimizer`` are ignored), or an ``nn.Module`` in either place.
    A ``module.`` prefix (from ``DataParallel``) is removed from every key.

    Args:
        obj: The loaded object.
        source: Name of the file, for error messages.

    Returns:
        ``{key: float32 or integer numpy array}``.

    Raises:
        ModelFileError: if no state_dict can be found.
    """
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if not _is_tensor_mapping(obj) and isinstance(obj, Mapping):
        for wrapper_key in WRAPPER_KEYS:
            inner = obj.get(wrapper_key)
            if hasattr(inner, "state_dict") and callable(inner.state_dict):
                inner = inner.state_dict()
            if _is_tensor_mapping(inner):
                obj = inner
                break
    if not _is_tensor_mapping(obj):
        if isinstance(obj, Mapping):
            found = f"a dict with keys {sorted(map(str, obj))[:8]}"
        else:
            found = f"a {type(obj).__name__}"
        raise ModelFileError(
            f"{source} holds {found}, not a state_dict: expected a mapping of parameter "
            f"names to tensors, or a dict with one under {list(WRAPPER_KEYS)}."
        )
    return {
        key.removeprefix(DATA_PARALLEL_PREFIX): _to_numpy(key, value, source)
        for key, value in obj.items()
    }


def load_checkpoint(path: str, trusted: bool = False) -> dict[str, np.ndarray]:
    """Reads a PyTorch checkpoint file and returns its state_dict as numpy arrays.

    Args:
        path: A file written by ``torch.save``.
        trusted: Unpickle arbitrary Python objects (``torch.load(weights_only=False)``).
            Only for files from a source you trust; needed for checkpoints that
            store e.g. an argparse Namespace beside the weights.

    Raises:
        ModelFileError: if torch is missing, the file is missing or unreadable, or
            it holds no state_dict.
    """
    if not os.path.isfile(path):
        raise ModelFileError(f"--checkpoint={path} does not exist or is not a file.")
    try:
        import torch
    except ImportError as error:
        raise ModelFileError(
            f"reading the PyTorch checkpoint {path} needs torch, which is not installed: "
            f"run `{_INSTALL_HINT}`."
        ) from error
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as error:  # torch raises many types for non-checkpoint files
        reason = " ".join(str(error).split())[:200]
        hint = ""
        if not trusted and "weights_only" in str(error).lower():
            hint = " If you trust the file, pass --trust_checkpoint to unpickle it fully."
        raise ModelFileError(
            f"--checkpoint={path} is not a readable PyTorch checkpoint "
            f"({type(error).__name__}: {reason}); expected a file written by torch.save.{hint}"
        ) from error
    return extract_state_dict(obj, source=f"--checkpoint={path}")


def _shape(shape: Sequence[int]) -> list[int]:
    return [int(s) for s in shape]


def guess_arch(state_dict: Mapping[str, Any]) -> str | None:
    """The :data:`ARCHS` name whose key layout ``state_dict`` has, or None."""
    convs = []
    for block in range(1, 6):
        count = 0
        while f"down{block}.layers.{count}.0.weight" in state_dict:
            count += 1
        convs.append(count)
    for vgg, expected in arch_lib.VGG_CONVS.items():
        if tuple(convs) == expected:
            return f"segnet_{vgg}{'_bn' if 'down1.layers.0.1.weight' in state_dict else ''}"
    return None


def checkpoint_channels(state_dict: Mapping[str, Any]) -> list[int] | None:
    """Encoder block widths stored in ``state_dict`` (from each block's first conv)."""
    widths = []
    for block in range(1, 6):
        weight = state_dict.get(f"down{block}.layers.0.0.weight")
        if weight is None or len(weight.shape) != 4:
            return None
        widths.append(int(weight.shape[0]))
    return widths


def expected_keys(arch: str) -> tuple[set[str], set[str]]:
    """The state_dict keys of ``arch``: (required, optional ``num_batches_tracked``)."""
    vgg, batch_norm = parse_arch(arch)
    convs = arch_lib.VGG_CONVS[vgg]
    required: set[str] = set()
    optional: set[str] = set()
    units = [(f"down{b}", i, True) for b in range(1, 6) for i in range(convs[b - 1])]
    units += [
        (f"up{b}", i, not (b == 1 and i == convs[0] - 1))
        for b in range(5, 0, -1)
        for i in range(convs[b - 1])
    ]
    for block, i, has_norm in units:
        required |= {f"{block}.layers.{i}.0.weight", f"{block}.layers.{i}.0.bias"}
        if batch_norm and has_norm:
            norm = f"{block}.layers.{i}.1"
            required |= {f"{norm}.{n}" for n in ("weight", "bias", "running_mean", "running_var")}
            optional.add(f"{norm}.num_batches_tracked")
    return required, optional


def _check_keys(state: Mapping[str, Any], arch: str, source: str) -> None:
    """Every key of ``arch`` present, no other key: else a ModelFileError naming them."""
    required, optional = expected_keys(arch)
    unexpected = sorted(set(state) - required - optional)
    missing = sorted(required - set(state))
    if not (unexpected or missing):
        return
    parts = []
    if unexpected:
        parts.append(f"unexpected keys {unexpected[:5]}" + (" ..." * (len(unexpected) > 5)))
    if missing:
        parts.append(f"missing keys {missing[:5]}" + (" ..." * (len(missing) > 5)))
    raise ModelFileError(
        f"{source} does not fit arch={arch}: {'; '.join(parts)} "
        f"({len(unexpected)} unexpected, {len(missing)} missing).{_layout_hint(state, arch)}"
    )


def _head_key(vgg: str) -> str:
    return f"up1.layers.{arch_lib.VGG_CONVS[vgg][0] - 1}.0.weight"


def _check_head(
    state_dict: Mapping[str, np.ndarray], vgg: str, task: str, num_classes: int | None
) -> int | None:
    """Checks the head's output channels against the task; returns num_classes for semseg.

    Call after :func:`_check_keys`, so the head key exists.
    """
    key = _head_key(vgg)
    head_shape = _shape(state_dict[key].shape)
    out = head_shape[0]
    if task == SEMSEG:
        if num_classes is not None and int(num_classes) != out:
            raise ModelFileError(
                f"--num_classes={num_classes} disagrees with the checkpoint: its head {key!r} "
                f"has shape {head_shape}, i.e. {out} classes. Pass --num_classes={out}."
            )
        return out
    expected = {DEPTH: 1, NORMALS: 3}.get(task)
    if expected is None:
        arch_lib.output_channels(task, num_classes)  # raises the unknown-task ConfigError
    if out != expected:
        raise ModelFileError(
            f"--task={task} needs a {expected}-channel head, but the checkpoint's {key!r} has "
            f"shape {head_shape} ({out} channels). Check --task."
        )
    return num_classes


def _plan(model) -> list[tuple[str, Any, str]]:
    """(torch key, Keras variable, kind) for every variable of a Keras SegNet.

    ``kind`` is ``"kernel"`` (OIHW -> HWIO) or ``"vector"`` (copied as is).
    """
    plan = []

    def add_stack(prefix: str, block) -> None:
        for i, conv in enumerate(block.convs):
            plan.append((f"{prefix}.layers.{i}.0.weight", conv.kernel, "kernel"))
            plan.append((f"{prefix}.layers.{i}.0.bias", conv.bias, "vector"))
            if block.batch_norm:
                norm = block.norms[i]
                bn = f"{prefix}.layers.{i}.1"
                plan.append((f"{bn}.weight", norm.gamma, "vector"))
                plan.append((f"{bn}.bias", norm.beta, "vector"))
                plan.append((f"{bn}.running_mean", norm.moving_mean, "vector"))
                plan.append((f"{bn}.running_var", norm.moving_variance, "vector"))

    for block in model.encoder_blocks:
        add_stack(block.name, block)
    for block in model.decoder_blocks:
        add_stack(block.name, block)
    head_conv = model.heads[model.task].conv
    last = len(model.decoder_blocks[-1].convs)  # up1: the head is its last `layers` entry
    plan.append((f"up1.layers.{last}.0.weight", head_conv.kernel, "kernel"))
    plan.append((f"up1.layers.{last}.0.bias", head_conv.bias, "vector"))
    return plan


def _torch_shape(variable, kind: str) -> list[int]:
    shape = _shape(variable.shape)
    if kind == "kernel":  # HWIO -> OIHW
        return [shape[3], shape[2], shape[0], shape[1]]
    return shape


def _layout_hint(state_dict: Mapping[str, Any], arch: str) -> str:
    guessed = guess_arch(state_dict)
    if guessed and guessed != arch:
        return f" The checkpoint's keys match arch={guessed}; pass --arch={guessed}."
    return ""


def convert_state_dict(
    state_dict: Mapping[str, Any],
    arch: str,
    task: str,
    num_classes: int | None = None,
    channels: Sequence[int] = arch_lib.DEFAULT_CHANNELS,
    width_multiplier: float = 1.0,
    depth_activation: str = "identity",
    image_mean: Sequence[float] = arch_lib.IMAGENET_MEAN,
    image_std: Sequence[float] = arch_lib.IMAGENET_STD,
    source: str = "checkpoint",
):
    """Builds a Keras :class:`~ka_tf.models.SegNet` holding a PyTorch SegNet's weights.

    Args:
        state_dict: PyTorch SegNet parameters (tensors or numpy arrays), e.g. from
            :func:`load_checkpoint`; ``module.`` prefixes are removed.
        arch: One of :data:`ARCHS` (``segnet_vgg16_bn``, ``segnet_vgg11``, ...).
        task: ``"semseg"``, ``"depth"`` or ``"normals"``.
        num_classes: Classes of a semseg head; None reads it from the checkpoint.
        channels: Block widths before the multiplier (must match the checkpoint).
        width_multiplier: Scales ``channels`` as in :class:`~ka_tf.models.SegNet`.
        depth_activation: Keras depth head transform; ``identity`` reproduces the
            PyTorch module's raw output.
        image_mean: Per-channel mean (0..255 units) the teacher's inputs were
            normalised with.
        image_std: Per-channel std (0..255 units).
        source: Name of the checkpoint, for error messages.

    Returns:
        The Keras SegNet, whose output on 0..255 NHWC images equals the PyTorch
        module's on the same images normalised and transposed to NCHW.

    Raises:
        ConfigError: unknown arch/task or bad channels.
        ModelFileError: head/num_classes mismatch, missing or unexpected keys, or a
            shape mismatch (the message names the key and both shapes).

    Example:
        >>> sd = load_checkpoint("segnet_vgg16_bn_nyu13.pth")
        >>> teacher = convert_state_dict(sd, "segnet_vgg16_bn", "semseg", num_classes=13)
    """
    from ka_tf.models import SegNet

    vgg, batch_norm = parse_arch(arch)
    state = {
        key.removeprefix(DATA_PARALLEL_PREFIX): _to_numpy(key, value, source)
        for key, value in state_dict.items()
    }
    _check_keys(state, arch, source)
    num_classes = _check_head(state, vgg, task, num_classes)
    widths = arch_lib.scaled_channels(channels, width_multiplier)
    model = SegNet(
        task,
        num_classes=num_classes,
        arch=vgg,
        batch_norm=batch_norm,
        channels=channels,
        width_multiplier=width_multiplier,
        depth_activation=depth_activation,
        image_mean=image_mean,
        image_std=image_std,
        name=f"{arch}_{task}",
    )
    plan = _plan(model)
    planned = {key for key, _, _ in plan}
    if planned != expected_keys(arch)[0]:  # a bug in ka_tf, not in the checkpoint
        raise AssertionError(
            f"converter plan disagrees with the layout: {planned ^ expected_keys(arch)[0]}"
        )
    for key, variable, kind in plan:
        value = state[key]
        want = _torch_shape(variable, kind)
        if _shape(value.shape) != want:
            stored = checkpoint_channels(state)
            hint = ""
            if stored and list(widths) != stored:
                hint = (
                    f" The checkpoint's block widths are {stored}, the model's {list(widths)}: "
                    f"pass --channels={','.join(map(str, stored))} --width_multiplier=1."
                )
            raise ModelFileError(
                f"{source}: {key!r} has shape {_shape(value.shape)} in the checkpoint but "
                f"arch={arch} with channels {list(widths)} expects {want}.{hint}"
            )
        variable.assign(np.transpose(value, (2, 3, 1, 0)) if kind == "kernel" else value)
    return model


def convert_checkpoint(path: str, arch: str, task: str, trusted: bool = False, **kwargs):
    """:func:`load_checkpoint` then :func:`convert_state_dict`; kwargs go to the latter."""
    state_dict = load_checkpoint(path, trusted=trusted)
    return convert_state_dict(state_dict, arch, task, source=f"--checkpoint={path}", **kwargs)


def torch_parity(keras_model, torch_model, images: np.ndarray) -> tuple[float, float]:
    """Runs both models on the same images; returns (max abs difference, output scale).

    Args:
        keras_model: A converted :class:`~ka_tf.models.SegNet`.
        torch_model: The PyTorch module the checkpoint came from (e.g.
            ``benchmarks.torch_segnet.TorchSegNet``), producing the task output
            channels-first from normalised NCHW input.
        images: float32 [B, H, W, 3] in 0..255.

    Returns:
        ``(max |keras - torch|, max |torch|)``; parity means the first is a small
        fraction (e.g. 1e-4) of the second.
    """
    import torch

    images = np.asarray(images, np.float32)
    mean = np.asarray(keras_model.image_mean, np.float32)
    std = np.asarray(keras_model.image_std, np.float32)
    normalised = np.transpose((images - mean) / std, (0, 3, 1, 2)).copy()
    torch_model.eval()
    with torch.no_grad():
        reference = torch_model(torch.from_numpy(normalised)).numpy()
    if reference.ndim == 4:
        reference = np.transpose(reference, (0, 2, 3, 1))
    output = np.asarray(keras_model(images, training=False)[keras_model.task])
    if output.shape != reference.shape:
        raise ModelFileError(
            f"parity check: Keras output shape {list(output.shape)} differs from the "
            f"PyTorch output shape {list(reference.shape)}."
        )
    return float(np.max(np.abs(output - reference))), float(np.max(np.abs(reference)))
