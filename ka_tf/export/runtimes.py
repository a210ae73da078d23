"""Runs a model in any of its shipped forms — Keras, SavedModel, TFLite, ONNX — alike.

:func:`load_runner` picks the runtime from the path: a ``.keras`` file (Keras, through
:class:`~ka_tf.export.dense_export_module.DenseExportModule`), a SavedModel directory
(``tf.saved_model.load``, the ``serving_default`` signature; an export directory or its
``saved_model/`` folder resolves to the highest version), a ``.tflite`` file (LiteRT's
``ai_edge_litert`` interpreter, one image at a time) or an ``.onnx`` file (ONNX
Runtime, CPU). Each runner takes uint8 or float RGB ``[N, H, W, 3]`` images at its
``image_size`` and returns the exported output dict as numpy arrays.

:func:`resize_images` and :func:`resize_outputs` bring images of any size to the
model's size and the outputs back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ka_tf.errors import ModelFileError

SAVED_MODEL_DIR = "saved_model"


class Runner:
    """A loaded model in one runtime.

    Attributes:
        path: Where the model was loaded from.
        runtime: ``"keras"``, ``"saved_model"``, ``"tflite"`` or ``"onnx"``.
        image_size: ``(height, width)`` of the model input.
        output_names: The output names (``semseg``, ``semseg_probs``, ``depth``, ``normals``).
        num_classes: Semseg classes (None without a semseg output).
    """

    path: str
    runtime: str
    image_size: tuple[int, int]
    output_names: tuple[str, ...]
    num_classes: int | None

    def __call__(self, images: Any) -> dict[str, np.ndarray]:
        """Predicts a batch of ``[N, H, W, 3]`` RGB images in 0..255 at ``image_size``."""
        images = np.asarray(images)
        if (
            images.ndim != 4
            or images.shape[-1] != 3
            or tuple(images.shape[1:3]) != tuple(self.image_size)
        ):
            raise ValueError(
                f"{self.runtime} model {self.path} takes [N, {self.image_size[0]}, "
                f"{self.image_size[1]}, 3] images. Received shape {images.shape}; resize "
                f"them with ka_tf.export.runtimes.resize_images first."
            )
        return self._run(images)

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError


def _ordered(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ka_tf.export.dense_export_module import output_names_for
    from ka_tf.tasks import task_names

    return {name: outputs[name] for name in output_names_for(task_names()) if name in outputs}


def _num_classes(output_shapes: dict[str, Sequence[Any]]) -> int | None:
    from ka_tf.tasks.semseg import SEMSEG_PROBS

    shape = output_shapes.get(SEMSEG_PROBS)
    return None if shape is None else int(shape[-1])


class KerasRunner(Runner):
    """Runs a float32 Keras model through its export graph (``serving_float``).

    Args:
        model: A ka_tf Keras model.
        image_size: ``(height, width)``; default: the model's static input size.
        path: Shown in messages.
        max_depth: Clamp the depth output to ``[0, max_depth]`` metres (None: no clamp).
    """

    def __init__(
        self,
        model: Any,
        image_size: Sequence[int] | None = None,
        path: str = "<keras>",
        max_depth: float | None = None,
    ) -> None:
        from ka_tf.export.dense_export_module import DenseExportModule

        self.path = path
        self.runtime = "keras"
        if image_size is None:
            image_size = model_image_size(model, path)
        self.module = DenseExportModule(model, image_size, max_depth=max_depth)
        self.image_size = self.module.image_size
        self.output_names = self.module.output_names
        self.num_classes = None
        if "semseg" in self.module.tasks:
            self.num_classes = int(model.output["semseg"].shape[-1])

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import tensorflow as tf

        outputs = self.module.serving_float(tf.constant(images, tf.float32))
        return _ordered({name: tensor.numpy() for name, tensor in outputs.items()})


def model_image_size(model: Any, path: str = "<keras>") -> tuple[int, int]:
    """The static ``(height, width)`` of a Keras model's input.

    Raises:
        ModelFileError: if the model's input size is not fixed.
    """
    shape = tuple(model.input.shape) if hasattr(model, "input") else ()
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ModelFileError(
            f"model {path} has no fixed input size (input shape {shape}); pass "
            f"--image_size=H,W (multiples of 32)."
        )
    return int(shape[1]), int(shape[2])


def resolve_saved_model_dir(path: str) -> str:
    """Finds the SavedModel in ``path``: the folder itself, or the highest version under
    ``path/saved_model/`` or ``path/`` (TensorFlow Serving's ``<base>/<version>/`` layout).

    Raises:
        ModelFileError: if there is no ``saved_model.pb`` there.
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    for base in (os.path.join(path, SAVED_MODEL_DIR), path):
        if not os.path.isdir(base):
            continue
        versions = [
            name
            for name in os.listdir(base)
            if name.isdigit() and os.path.isfile(os.path.join(base, name, "saved_model.pb"))
        ]
        if versions:
            return os.path.join(base, max(versions, key=int))
    raise ModelFileError(
        f"--model={path} is a directory without a SavedModel: expected saved_model.pb in it, "
        f"or in a numbered version folder under it or under its saved_model/ folder (as "
        f"tools/export.py writes)."
    )


class SavedModelRunner(Runner):
    """Runs the ``serving_default`` signature (uint8 images) of an exported SavedModel."""

    def __init__(self, path: str) -> None:
        import tensorflow as tf

        from ka_tf.export.dense_export_module import SERVING_DEFAULT

        self.path = resolve_saved_model_dir(path)
        self.runtime = "saved_model"
        try:
            # Keep a reference to the loaded object while its signatures are used.
            self.loaded = tf.saved_model.load(self.path)
        except Exception as error:
            raise ModelFileError(
                f"cannot load the SavedModel in {self.path}: {type(error).__name__}: "
                f"{' '.join(str(error).split())[:300]}"
            ) from error
        if SERVING_DEFAULT not in self.loaded.signatures:
            raise ModelFileError(
                f"the SavedModel in {self.path} has no {SERVING_DEFAULT!r} signature "
                f"(it has {sorted(self.loaded.signatures)}); export it with tools/export.py."
            )
        self.signature = self.loaded.signatures[SERVING_DEFAULT]
        spec = self.signature.structured_input_signature[1]
        input_spec = next(iter(spec.values()))
        self.image_size = (int(input_spec.shape[1]), int(input_spec.shape[2]))
        outputs = self.signature.structured_outputs
        self.output_names = tuple(_ordered(dict(outputs)))
        self.num_classes = _num_classes({k: v.shape for k, v in outputs.items()})

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import tensorflow as tf

        from ka_tf.export.dense_export_module import INPUT_NAME

        if images.dtype != np.uint8:
            images = np.clip(np.round(images), 0, 255).astype(np.uint8)
        outputs = self.signature(**{INPUT_NAME: tf.constant(images)})
        return _ordered({name: tensor.numpy() for name, tensor in outputs.items()})


class TFLiteRunner(Runner):
    """Runs a ``.tflite`` file with LiteRT (``ai_edge_litert``), one image per invoke."""

    def __init__(self, path: str, num_threads: int | None = None) -> None:
        from ka_tf import extras

        extras.require("ai_edge_litert", f"running the TFLite model {path}")
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        self.runtime = "tflite"
        try:
            self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        except Exception as error:
            raise ModelFileError(
                f"cannot load --model={path} as a TFLite model: {type(error).__name__}: "
                f"{' '.join(str(error).split())[:300]}"
            ) from error
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ModelFileError(
                f"{path} has signatures {sorted(signatures)}; expected exactly one (as "
                f"tools/export.py writes)."
            )
        self.signature_key = next(iter(signatures))
        self.runner = self.interpreter.get_signature_runner(self.signature_key)
        inputs = self.runner.get_input_details()
        if len(inputs) != 1:
            raise ModelFileError(f"{path} has inputs {sorted(inputs)}; expected one image input.")
        self.input_name, details = next(iter(inputs.items()))
        shape = details["shape"]
        self.image_size = (int(shape[1]), int(shape[2]))
        outputs = self.runner.get_output_details()
        self.output_names = tuple(_ordered(dict(outputs)))
        self.num_classes = _num_classes({k: v["shape"] for k, v in outputs.items()})

    def builtin_ops(self) -> set[str]:
        """The names of the operators in the file (builtin names; custom ops show too)."""
        return {op["op_name"] for op in self.interpreter._get_ops_details()}

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        results: dict[str, list[np.ndarray]] = {}
        for image in images.astype(np.float32):
            outputs = self.runner(**{self.input_name: image[None]})
            for name, value in outputs.items():
                results.setdefault(name, []).append(np.array(value))
        return _ordered({name: np.concatenate(values) for name, values in results.items()})


class ONNXRunner(Runner):
    """Runs an ``.onnx`` file with ONNX Runtime on the CPU."""

    def __init__(self, path: str) -> None:
        from ka_tf import extras

        onnxruntime = extras.require("onnxruntime", f"running the ONNX model {path}")
        self.path = path
        self.runtime = "onnx"
        try:
            self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ModelFileError(
                f"cannot load --model={path} as an ONNX model: {type(error).__name__}: "
                f"{' '.join(str(error).split())[:300]}"
            ) from error
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelFileError(f"{path} must have one image input [N, H, W, 3].")
        self.input_name = inputs[0].name
        self.image_size = (int(inputs[0].shape[1]), int(inputs[0].shape[2]))
        shapes = {output.name: output.shape for output in self.session.get_outputs()}
        self.output_names = tuple(_ordered(shapes))
        self.num_classes = _num_classes(shapes)

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        names = [output.name for output in self.session.get_outputs()]
        values = self.session.run(names, {self.input_name: images.astype(np.float32)})
        return _ordered(dict(zip(names, values, strict=True)))


def load_runner(path: str, image_size: Sequence[int] | None = None) -> Runner:
    """Loads ``path`` in the runtime its form needs (see the module docstring).

    Args:
        path: A ``.keras`` file, or a path a registered export format owns
            (:mod:`ka_tf.export.formats`): a SavedModel (or export) directory, a
            ``.tflite`` or an ``.onnx`` file.
        image_size: For ``.keras`` models without a fixed input size: ``(H, W)``.

    Raises:
        ModelFileError: if the path is missing, of an unknown kind or unreadable.
    """
    from ka_tf.export.formats import format_for_path

    if not os.path.exists(path):
        raise ModelFileError(
            f"--model={path} does not exist. Expected a .keras file, a SavedModel directory, "
            f"a .tflite or an .onnx file."
        )
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".keras" and os.path.isfile(path):
        from ka_tf.evaluation import load_model_file

        return KerasRunner(load_model_file(path), image_size, path)
    export_format = format_for_path(path)
    if export_format is None:
        raise ModelFileError(
            f"--model={path} has an unknown kind ({suffix or 'no suffix'}). Expected a .keras "
            f"file, a SavedModel directory, a .tflite or an .onnx file."
        )
    return export_format.load(path)


def resize_images(images: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resizes uint8/float ``[N, h, w, 3]`` images to ``size`` (bilinear, antialiased),
    as ``predict_image_bytes`` does; returns float32 in 0..255."""
    import tensorflow as tf

    images = np.asarray(images)
    if tuple(images.shape[1:3]) == tuple(size):
        return images.astype(np.float32)
    resized = tf.image.resize(
        tf.cast(images, tf.float32), tuple(size), method="bilinear", antialias=True
    )
    return np.clip(resized.numpy(), 0.0, 255.0)


def resize_outputs(outputs: dict[str, np.ndarray], size: Sequence[int]) -> dict[str, np.ndarray]:
    """Resizes exported outputs ``[N, H, W, ...]`` to ``size``: class ids nearest,
    probabilities/depth bilinear, normals bilinear then renormalised."""
    import tensorflow as tf

    from ka_tf.tasks import get_task, task_names

    owners = {name: task for task in task_names() for name in get_task(task).export_names()}
    size = tuple(int(s) for s in size)
    result = {}
    for name, value in outputs.items():
        if tuple(value.shape[1:3]) == size:
            result[name] = value
            continue
        tensor = tf.convert_to_tensor(value)
        if tensor.shape.rank == 3:
            tensor = tensor[..., None]
        resized = get_task(owners[name]).resize_export(name, tensor, size).numpy()
        result[name] = resized[..., 0] if value.ndim == 3 else resized
    return result
