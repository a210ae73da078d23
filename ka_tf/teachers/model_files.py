"""Any dense model file as a function of one image batch: Keras, SavedModel, TFLite, ONNX.

A teacher ka_tf did not train arrives as a file with its own input and outputs. A
:class:`ModelFile` loads one kind of file and runs it on a preprocessed input batch
(the layout the model wants), returning every output by name. The kinds form a
registry (:func:`register_model_file`), looked up by path (:func:`open_model_file`):

- ``keras``: a ``.keras`` file, run inside the TensorFlow graph;
- ``saved_model``: a SavedModel directory (one signature), inside the graph;
- ``tflite``: a ``.tflite`` file, run by LiteRT through ``tf.numpy_function``;
- ``onnx``: an ``.onnx`` file, run by ONNX Runtime through ``tf.numpy_function``.

Models that run outside the graph (``in_graph`` False) are where the teacher-output
cache (:mod:`ka_tf.teachers.output_cache`) pays: each image runs once.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ka_tf.errors import ModelFileError

OutputShapes = dict[str, tuple[int | None, ...]]


def _one_line(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


def _dim(value: Any) -> int | None:
    """A static dimension, None for a dynamic one (None, -1, 0 or a symbolic name)."""
    if isinstance(value, (int, np.integer)) and int(value) > 0:
        return int(value)
    return None


def file_fingerprint(path: str) -> str:
    """sha256 of a model file, or of a directory's files (relative names and bytes)."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                digest.update(os.path.relpath(full, path).encode())
                with open(full, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
    else:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


class ModelFile:
    """One loaded model file.

    Attributes:
        kind: The registry name (``keras``, ``saved_model``, ``tflite``, ``onnx``).
        path: The file or directory.
        input_shape: The input's shape, batch first, None where dynamic.
        output_shapes: Output name → shape, in the model's output order.
        in_graph: Whether :meth:`run_graph` runs inside a TensorFlow graph (else
            :meth:`run_numpy` runs through ``tf.numpy_function``).
    """

    kind: str = ""
    suffixes: tuple[str, ...] = ()
    in_graph: bool = False
    path: str
    input_shape: tuple[int | None, ...]
    output_shapes: OutputShapes

    @classmethod
    def owns(cls, path: str) -> bool:
        """Whether ``path`` is a file of this kind."""
        return os.path.isfile(path) and path.lower().endswith(cls.suffixes)

    def run_graph(self, inputs: Any) -> dict[str, Any]:
        """Runs a float32 input tensor inside the graph (``in_graph`` kinds only)."""
        raise NotImplementedError(f"{self.kind} models run outside the graph (run_numpy)")

    def run_numpy(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Runs a float32 numpy batch; returns every output."""
        raise NotImplementedError

    def count_params(self) -> int:
        """Parameters (weights) in the file."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """sha256 of the file's bytes: the teacher-output cache's model key."""
        return file_fingerprint(self.path)


_KINDS: dict[str, type[ModelFile]] = {}


def register_model_file(cls: type[ModelFile]) -> type[ModelFile]:
    """Class decorator: adds a kind of model file (its ``kind`` must be new)."""
    if cls.kind in _KINDS:
        raise ValueError(f"model file kind {cls.kind!r} is already registered")
    _KINDS[cls.kind] = cls
    return cls


def model_file_kinds() -> tuple[str, ...]:
    """The registered kinds, in registration order."""
    return tuple(_KINDS)


def open_model_file(path: str) -> ModelFile:
    """Loads ``path`` with the kind that owns it.

    Raises:
        ModelFileError: the path is missing, of no registered kind, or unreadable.
    """
    if not os.path.exists(path):
        raise ModelFileError(
            f"teacher model {path} does not exist. Expected a .keras file, a SavedModel "
            f"directory, a .tflite or an .onnx file."
        )
    for cls in _KINDS.values():
        if cls.owns(path):
            return cls(path)
    raise ModelFileError(
        f"teacher model {path} is of no known kind ({os.path.splitext(path)[1] or 'no suffix'}). "
        f"Expected a .keras file, a SavedModel directory, a .tflite or an .onnx file."
    )


@register_model_file
class KerasModelFile(ModelFile):
    """A ``.keras`` file (any Keras model with one image input; ka_tf's layers known)."""

    kind = "keras"
    suffixes = (".keras",)
    in_graph = True

    def __init__(self, path: str) -> None:
        import keras

        import ka_tf.models  # noqa: F401  (registers ka_tf's layers)

        self.path = path
        try:
            self.model = keras.saving.load_model(path, compile=False)
        except Exception as error:
            raise ModelFileError(f"cannot load the teacher {path}: {_one_line(error)}") from error
        inputs = self.model.inputs
        if len(inputs) != 1:
            raise ModelFileError(f"teacher {path} has {len(inputs)} inputs; expected one image.")
        self.input_shape = tuple(_dim(d) for d in inputs[0].shape)
        output = self.model.output
        if isinstance(output, dict):
            tensors = dict(output)
        else:
            tensors = dict(zip(self.model.output_names, self.model.outputs, strict=True))
        self.output_shapes = {
            name: tuple(_dim(d) for d in tensor.shape) for name, tensor in tensors.items()
        }

    def run_graph(self, inputs: Any) -> dict[str, Any]:
        outputs = self.model(inputs, training=False)
        if isinstance(outputs, dict):
            return dict(outputs)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return dict(zip(self.output_shapes, outputs, strict=True))

    def run_numpy(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.run_graph(inputs).items()}

    def count_params(self) -> int:
        return int(self.model.count_params())


@register_model_file
class SavedModelFile(ModelFile):
    """A SavedModel directory; runs its one signature (or ``serving_default``)."""

    kind = "saved_model"
    in_graph = True

    @classmethod
    def owns(cls, path: str) -> bool:
        return os.path.isfile(os.path.join(path, "saved_model.pb"))

    def __init__(self, path: str) -> None:
        import tensorflow as tf

        self.path = path
        try:
            self.loaded = tf.saved_model.load(path)
        except Exception as error:
            raise ModelFileError(
                f"cannot load the SavedModel teacher {path}: {_one_line(error)}"
            ) from error
        signatures = self.loaded.signatures
        key = "serving_default" if "serving_default" in signatures else None
        if key is None and len(signatures) == 1:
            key = next(iter(signatures))
        if key is None:
            raise ModelFileError(
                f"the SavedModel teacher {path} has signatures {sorted(signatures)}; expected "
                f"one, or 'serving_default'."
            )
        self.signature = signatures[key]
        specs = self.signature.structured_input_signature[1]
        if len(specs) != 1:
            raise ModelFileError(
                f"the SavedModel teacher {path} takes {sorted(specs)}; expected one image input."
            )
        self.input_name, spec = next(iter(specs.items()))
        self.input_dtype = spec.dtype
        self.input_shape = tuple(_dim(d) for d in spec.shape)
        self.output_shapes = {
            name: tuple(_dim(d) for d in value.shape)
            for name, value in self.signature.structured_outputs.items()
        }

    def run_graph(self, inputs: Any) -> dict[str, Any]:
        import tensorflow as tf

        if self.input_dtype == tf.uint8:
            inputs = tf.cast(tf.clip_by_value(tf.round(inputs), 0.0, 255.0), tf.uint8)
        else:
            inputs = tf.cast(inputs, self.input_dtype)
        return dict(self.signature(**{self.input_name: inputs}))

    def run_numpy(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.run_graph(inputs).items()}

    def count_params(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.loaded.variables))


@register_model_file
class TFLiteModelFile(ModelFile):
    """A ``.tflite`` file, run by LiteRT one image at a time (signature or not)."""

    kind = "tflite"
    suffixes = (".tflite",)

    def __init__(self, path: str) -> None:
        from ka_tf import extras

        extras.require("ai_edge_litert", f"running the TFLite teacher {path}")
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        try:
            self.interpreter = Interpreter(model_path=path)
            self.interpreter.allocate_tensors()
        except Exception as error:
            raise ModelFileError(
                f"cannot load the TFLite teacher {path}: {_one_line(error)}"
            ) from error
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelFileError(f"TFLite teacher {path} has {len(inputs)} inputs; expected one.")
        self.input_detail = inputs[0]
        self.input_shape = (None, *(_dim(d) for d in inputs[0]["shape"][1:]))
        self.output_details = self.interpreter.get_output_details()
        self.output_shapes = {
            d["name"]: (None, *(_dim(x) for x in d["shape"][1:])) for d in self.output_details
        }
        # An interpreter is not thread-safe; tf.data and Keras may call from several.
        self.lock = threading.Lock()

    def run_numpy(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        results: dict[str, list[np.ndarray]] = {name: [] for name in self.output_shapes}
        dtype = self.input_detail["dtype"]
        with self.lock:
            for one in inputs:
                self.interpreter.set_tensor(self.input_detail["index"], one[None].astype(dtype))
                self.interpreter.invoke()
                for detail in self.output_details:
                    results[detail["name"]].append(
                        np.array(self.interpreter.get_tensor(detail["index"]))
                    )
        return {name: np.concatenate(values).astype(np.float32) for name, values in results.items()}

    def count_params(self) -> int:
        produced = {i for op in self.interpreter._get_ops_details() for i in op["outputs"]}
        inputs = {d["index"] for d in self.interpreter.get_input_details()}
        return int(
            sum(
                int(np.prod(d["shape"]))
                for d in self.interpreter.get_tensor_details()
                if d["index"] not in produced and d["index"] not in inputs and len(d["shape"])
            )
        )


@register_model_file
class ONNXModelFile(ModelFile):
    """An ``.onnx`` file, run by ONNX Runtime on the CPU."""

    kind = "onnx"
    suffixes = (".onnx",)

    def __init__(self, path: str) -> None:
        from ka_tf import extras

        onnxruntime = extras.require("onnxruntime", f"running the ONNX teacher {path}")
        self.path = path
        try:
            self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ModelFileError(
                f"cannot load the ONNX teacher {path}: {_one_line(error)}"
            ) from error
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(f"ONNX teacher {path} has {len(inputs)} inputs; expected one.")
        self.input_name = inputs[0].name
        self.input_shape = tuple(_dim(d) for d in inputs[0].shape)
        self.output_shapes = {
            o.name: tuple(_dim(d) for d in o.shape) for o in self.session.get_outputs()
        }

    def run_numpy(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        names = list(self.output_shapes)
        batch = self.input_shape[0]
        # A graph exported with a fixed batch (often 1, as U²-Net's) runs in chunks of it.
        size = (len(inputs) or 1) if batch is None else batch
        if len(inputs) % size:
            raise ModelFileError(
                f"ONNX teacher {self.path} takes batches of exactly {batch}; received "
                f"{len(inputs)} images. Use a batch size that is a multiple of {batch}."
            )
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for start in range(0, len(inputs), size):
            chunk = inputs[start : start + size].astype(np.float32)
            values = self.session.run(names, {self.input_name: chunk})
            for name, value in zip(names, values, strict=True):
                parts[name].append(np.asarray(value, np.float32))
        return {name: np.concatenate(values) for name, values in parts.items()}

    def count_params(self) -> int:
        from ka_tf import extras

        onnx = extras.require("onnx", f"counting the parameters of {self.path}")
        graph = onnx.load(self.path, load_external_data=False).graph
        return int(sum(int(np.prod(t.dims)) for t in graph.initializer))


__all__: Sequence[str] = (
    "ModelFile",
    "file_fingerprint",
    "model_file_kinds",
    "open_model_file",
    "register_model_file",
)
