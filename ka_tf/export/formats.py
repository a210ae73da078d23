"""Export formats as a registry: one class per format, the only place that knows it.

A format says what it writes (:meth:`ExportFormat.artifacts`, paths relative to the
export directory), writes it (:meth:`ExportFormat.write`, from the float32 serving
module), which paths an earlier export of it may have left (:meth:`ExportFormat.leftovers`),
which paths it can load (:meth:`ExportFormat.owns`) and how to run them
(:meth:`ExportFormat.load`, a :class:`~ka_tf.export.runtimes.Runner`), and what
optional modules it needs (``requires``, the ``export`` extra). ``export_model``,
``existing_export``, ``load_runner``, ``tools/export.py --formats`` and the benchmark's
runtimes all read the registry, so adding a format is one class here plus
``@register_format``:

    @register_format
    class MyFormat(ExportFormat):
        name = "my_format"
        def artifacts(self, name, quantizations): return [f"{name}.my"]
        def write(self, context): ...  # write context.path(f"{context.name}.my")
        def owns(self, path): return path.endswith(".my")
        def load(self, path): return MyRunner(path)

The three shipped formats: ``saved_model`` (TensorFlow Serving layout, three
signatures), ``tflite`` (one file per quantisation, builtin ops only) and ``onnx``
(tf2onnx from the SavedModel).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ka_tf.errors import ConfigError

SAVED_MODEL_VERSION = "1"
TFLITE_QUANTIZATIONS = ("none", "fp16", "dynamic", "int8")


class ExportContext:
    """What one export writes from, and where.

    Args:
        module: The float32 :class:`~ka_tf.export.dense_export_module.DenseExportModule`.
        directory: The temporary folder the artifacts are written into.
        name: Base name of file artifacts (``student``).
        quantizations: The TFLite quantisations asked for.
        calibration: float32 ``[H, W, 3]`` images for ``int8`` calibration, or None.
    """

    def __init__(
        self,
        module: Any,
        directory: str,
        name: str,
        quantizations: Sequence[str],
        calibration: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.module = module
        self.directory = directory
        self.name = name
        self.quantizations = tuple(quantizations)
        self.calibration = calibration
        self._saved_model: str | None = None

    def path(self, relative: str) -> str:
        """``relative`` inside the export's temporary folder."""
        return os.path.join(self.directory, relative)

    def saved_model_dir(self) -> str:
        """The SavedModel of this export, written on first use (ONNX converts from it)."""
        if self._saved_model is None:
            from ka_tf.export.exporter import write_saved_model

            path = self.path(os.path.join("saved_model", SAVED_MODEL_VERSION))
            write_saved_model(self.module, path)
            self._saved_model = path
        return self._saved_model


class ExportFormat:
    """One export format (see the module docstring)."""

    name: ClassVar[str]
    # Optional modules (keys of ka_tf.extras.EXTRA_OF_MODULE) writing or running it needs.
    requires: ClassVar[tuple[str, ...]] = ()

    def artifacts(self, name: str, quantizations: Sequence[str]) -> list[str]:
        """The relative paths an export with these options writes."""
        raise NotImplementedError

    def leftovers(self, name: str) -> list[str]:
        """Every relative path an earlier export of this format may have written."""
        return self.artifacts(name, TFLITE_QUANTIZATIONS)

    def write(self, context: ExportContext) -> list[str]:
        """Writes this format's artifacts into ``context``; returns their relative paths."""
        raise NotImplementedError

    def owns(self, path: str) -> bool:
        """Whether ``path`` (a file or folder a user passed) is of this format."""
        raise NotImplementedError

    def load(self, path: str) -> Any:
        """A :class:`~ka_tf.export.runtimes.Runner` for ``path``."""
        raise NotImplementedError

    def describe(self, relative: str, runner: Any, name: str) -> dict[str, Any]:
        """Extra fields of the artifact's entry in ``export_report.json``."""
        del relative, runner, name
        return {}


_REGISTRY: dict[str, ExportFormat] = {}


def register_format(cls: type[ExportFormat]) -> type[ExportFormat]:
    """Class decorator: adds one instance of ``cls`` to the registry under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"export format {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls()
    return cls


def unregister_format(name: str) -> None:
    """Removes a format (for tests that register a dummy)."""
    _REGISTRY.pop(name, None)


def format_names() -> tuple[str, ...]:
    """The registered formats, in registration order."""
    return tuple(_REGISTRY)


def get_format(name: str) -> ExportFormat:
    """The format called ``name``.

    Raises:
        ConfigError: if there is none, naming the known ones.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown export format {name!r}. Expected one of {format_names()}.")
    return _REGISTRY[name]


def format_for_path(path: str) -> ExportFormat | None:
    """The first registered format that owns ``path``, or None."""
    return next((fmt for fmt in _REGISTRY.values() if fmt.owns(path)), None)


def tflite_filename(quantization: str, name: str = "student") -> str:
    """``student.tflite`` for ``none``, else ``student_<quantization>.tflite``."""
    return f"{name}.tflite" if quantization == "none" else f"{name}_{quantization}.tflite"


def quantization_of(filename: str, name: str) -> str:
    """The quantisation of a TFLite file named by :func:`tflite_filename`."""
    stem = os.path.splitext(os.path.basename(filename))[0]
    return "none" if stem == name else stem[len(name) + 1 :]


@register_format
class SavedModelFormat(ExportFormat):
    """TensorFlow Serving's ``saved_model/<version>/`` with all three signatures."""

    name = "saved_model"

    def artifacts(self, name: str, quantizations: Sequence[str]) -> list[str]:
        return [f"saved_model/{SAVED_MODEL_VERSION}"]

    def leftovers(self, name: str) -> list[str]:
        return ["saved_model"]

    def write(self, context: ExportContext) -> list[str]:
        context.saved_model_dir()
        return self.artifacts(context.name, context.quantizations)

    def owns(self, path: str) -> bool:
        return os.path.isdir(path)

    def load(self, path: str) -> Any:
        from ka_tf.export.runtimes import SavedModelRunner

        return SavedModelRunner(path)


@register_format
class TFLiteFormat(ExportFormat):
    """One ``.tflite`` file per quantisation, builtin operators only, run by LiteRT."""

    name = "tflite"
    requires = ("ai_edge_litert",)

    def artifacts(self, name: str, quantizations: Sequence[str]) -> list[str]:
        return [tflite_filename(quant, name) for quant in quantizations]

    def write(self, context: ExportContext) -> list[str]:
        from ka_tf import io_utils
        from ka_tf.export.exporter import convert_tflite

        written = []
        for quant in context.quantizations:
            filename = tflite_filename(quant, context.name)
            data = convert_tflite(context.module, quant, context.calibration)
            io_utils.atomic_write_bytes(context.path(filename), data)
            written.append(filename)
        return written

    def owns(self, path: str) -> bool:
        return os.path.isfile(path) and path.lower().endswith(".tflite")

    def load(self, path: str) -> Any:
        from ka_tf.export.runtimes import TFLiteRunner

        return TFLiteRunner(path)

    def describe(self, relative: str, runner: Any, name: str) -> dict[str, Any]:
        return {
            "quantization": quantization_of(relative, name),
            "ops": sorted(runner.builtin_ops()),
        }


@register_format
class ONNXFormat(ExportFormat):
    """``<name>.onnx``: the SavedModel's ``serving_float`` converted by tf2onnx, run by ORT."""

    name = "onnx"
    requires = ("tf2onnx", "onnxruntime")

    def artifacts(self, name: str, quantizations: Sequence[str]) -> list[str]:
        return [f"{name}.onnx"]

    def write(self, context: ExportContext) -> list[str]:
        from ka_tf.export.exporter import convert_onnx

        filename = f"{context.name}.onnx"
        convert_onnx(context.saved_model_dir(), context.path(filename))
        return [filename]

    def owns(self, path: str) -> bool:
        return os.path.isfile(path) and path.lower().endswith(".onnx")

    def load(self, path: str) -> Any:
        from ka_tf.export.runtimes import ONNXRunner

        return ONNXRunner(path)
