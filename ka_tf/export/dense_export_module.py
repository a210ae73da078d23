"""DenseExportModule: the serving graph of a dense-prediction model, after Model Garden.

One ``tf.Module`` holds the model and three ``tf.function`` endpoints with explicit
signatures (after ``official/core/export_base.py``):

- ``serving_default``: ``images`` uint8 ``[N, H, W, 3]`` RGB (preprocessing inside:
  a cast to float32; the model normalises itself).
- ``predict_image_bytes``: ``images`` string ``[N]``, encoded JPEG/PNG/GIF/BMP files;
  each is decoded to RGB and resized (bilinear, antialiased) to ``H x W``.
- ``serving_float``: ``images`` float32 ``[N, H, W, 3]`` in 0..255 — the graph the
  TFLite and ONNX files are converted from.

Every endpoint returns the same dict, keyed by output name:

- ``semseg``: int32 ``[N, H, W]`` class ids (argmax of the logits);
- ``semseg_probs``: float32 ``[N, H, W, C]`` softmax probabilities;
- ``depth``: float32 ``[N, H, W]`` metres;
- ``normals``: float32 ``[N, H, W, 3]`` unit vectors;

for the tasks the model has (each task's :meth:`~ka_tf.tasks.Task.export_outputs`;
a user's task adds its own).

Every endpoint holds the model's weights as constants, frozen when the endpoint is
first used (:func:`frozen_function`): Grappler then folds each convolution's
BatchNorm into its kernel once, at load, instead of on every call, and a served
SavedModel carries no variables. At batch 1 that is where the time went (BUILD.md,
"Performance, round two"). ``serving_default`` and ``predict_image_bytes`` unpool with
``MaxPoolGrad`` (one TensorFlow op); ``serving_float`` and the TFLite function keep the
builtin-op mask form that TFLite and ONNX run (the same results).

An input to ``predict_image_bytes`` that is not an image makes the call fail with an
``InvalidArgumentError`` whose message starts with :data:`BAD_IMAGE_MESSAGE`; the
graph itself is unchanged, so a server (TensorFlow Serving answers HTTP 400 with
``{"error": "..."}``) keeps serving the next request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from ka_tf.errors import ModelFileError
from ka_tf.models.unpooling import portable_unpooling
from ka_tf.tasks import get_task, ordered_tasks, task_names

INPUT_NAME = "images"
SERVING_DEFAULT = "serving_default"
PREDICT_IMAGE_BYTES = "predict_image_bytes"
SERVING_FLOAT = "serving_float"
BAD_IMAGE_MESSAGE = (
    "predict_image_bytes: an input is not an encoded JPEG, PNG, GIF or BMP image "
    "(unrecognised file header). Send the raw bytes of an image file (base64-encoded "
    'as {"b64": ...} in TensorFlow Serving REST requests).'
)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def output_names_for(tasks: Sequence[str]) -> tuple[str, ...]:
    """The exported output names of a model with ``tasks``, in documented order."""
    return tuple(name for task in ordered_tasks(tasks) for name in get_task(task).export_names())


def postprocess(outputs: dict, max_depth: float | None = None) -> dict[str, tf.Tensor]:
    """Turns a ka_tf model's output dict into the exported outputs (see module docs):
    each task's :meth:`~ka_tf.tasks.Task.export_outputs`.

    With ``max_depth``, depth is clamped to ``[0, max_depth]`` metres: the valid range
    of the data, which also bounds the range a quantised output has to cover.
    """
    result = {}
    for task in ordered_tasks(outputs):
        result.update(get_task(task).export_outputs(outputs[task], max_depth=max_depth))
    return result


def model_tasks(model: keras.Model) -> tuple[str, ...]:
    """The task keys of a ka_tf model's output dict.

    Raises:
        ModelFileError: if the model's output is not a non-empty dict keyed by tasks.
    """
    output = getattr(model, "output", None)
    known = task_names()
    if not isinstance(output, dict) or not output or set(output) - set(known):
        kind = sorted(output) if isinstance(output, dict) else type(output).__name__
        raise ModelFileError(
            f"model {model.name!r} is not a ka_tf dense-prediction model: its output is "
            f"{kind}. Expected a dict keyed by tasks from {list(known)} (as SegNet and "
            f"TargetNet return)."
        )
    return ordered_tasks(output)


def _is_image(data: tf.Tensor) -> tf.Tensor:
    header = tf.strings.substr(data, 0, 8)
    return tf.reduce_any(
        tf.stack(
            [
                tf.io.is_jpeg(data),
                tf.equal(header, _PNG_MAGIC),
                tf.equal(tf.strings.substr(data, 0, 3), b"GIF"),
                tf.equal(tf.strings.substr(data, 0, 2), b"BM"),
            ]
        )
    )


def frozen_function(
    function: Callable, input_signature: Sequence[tf.TensorSpec]
) -> tf.types.experimental.GenericFunction:
    """``function`` traced at ``input_signature``, every variable it reads turned into a
    constant, as a ``tf.function`` with the same signature and output structure.

    The weights are the ones at this call: a later change to them is not seen.
    """
    concrete = tf.function(
        function, input_signature=input_signature, autograph=False
    ).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs

    def call(*args):
        return tf.nest.pack_sequence_as(structure, frozen(*args))

    return tf.function(call, input_signature=input_signature, autograph=False)


class _Untracked:
    """Holds an object out of ``tf.Module``'s tracking (a SavedModel of frozen
    endpoints saves no variables)."""

    def __init__(self, value) -> None:
        self.value = value


class DenseExportModule(tf.Module):
    """The exportable serving graph of a ka_tf model (see the module docstring).

    Args:
        model: A float32 ka_tf model (dict output keyed by task) whose input is
            float32 RGB ``[N, H, W, 3]`` in 0..255.
        image_size: ``(height, width)`` of the exported input.
        name: The module's name.

    Example:
        >>> module = DenseExportModule(student, (128, 256))
        >>> tf.saved_model.save(module, "export/saved_model/1", signatures=module.signatures())
        >>> module.serving_default(tf.zeros([2, 128, 256, 3], tf.uint8))["semseg"].shape
        TensorShape([2, 128, 256])
    """

    def __init__(
        self,
        model: keras.Model,
        image_size: Sequence[int],
        name: str = "dense_export",
        max_depth: float | None = None,
    ) -> None:
        super().__init__(name=name)
        self._model = _Untracked(model)
        self.max_depth = max_depth
        self.tasks = model_tasks(model)
        self.image_size = (int(image_size[0]), int(image_size[1]))

    @property
    def model(self) -> keras.Model:
        """The model the endpoints were frozen from."""
        return self._model.value

    def _images_spec(self, dtype: tf.DType, batch: int | None = None) -> tf.TensorSpec:
        height, width = self.image_size
        return tf.TensorSpec([batch, height, width, 3], dtype, name=INPUT_NAME)

    # The endpoints are frozen on first use (seconds each), so a runner that calls one
    # endpoint pays for that one only. functools.cached_property writes the instance
    # dict directly: the functions stay out of tf.Module's tracking, and a SavedModel
    # gets them through signatures().
    @functools.cached_property
    def serving_default(self) -> tf.types.experimental.GenericFunction:
        """uint8 ``[N, H, W, 3]`` images → the exported outputs."""
        return frozen_function(self._serve_uint8, [self._images_spec(tf.uint8)])

    @functools.cached_property
    def predict_image_bytes(self) -> tf.types.experimental.GenericFunction:
        """Encoded image files ``[N]`` → the exported outputs."""
        return frozen_function(
            self._serve_bytes, [tf.TensorSpec([None], tf.string, name=INPUT_NAME)]
        )

    @functools.cached_property
    def serving_float(self) -> tf.types.experimental.GenericFunction:
        """float32 ``[N, H, W, 3]`` images in 0..255 → the exported outputs (builtin ops:
        the graph the ONNX file is converted from)."""
        return frozen_function(self._serve_float, [self._images_spec(tf.float32)])

    @property
    def output_names(self) -> tuple[str, ...]:
        """The exported output names, e.g. ``("semseg", "semseg_probs", "depth")``."""
        return output_names_for(self.tasks)

    def _forward(self, images: tf.Tensor, portable: bool) -> dict[str, tf.Tensor]:
        if portable:  # builtin ops only (TFLite, ONNX): the unpooling's mask form
            with portable_unpooling():
                outputs = self.model(images, training=False)
        else:
            outputs = self.model(images, training=False)
        return postprocess(outputs, self.max_depth)

    def _serve_uint8(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._forward(tf.cast(images, tf.float32), portable=False)

    def _serve_float(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._forward(images, portable=True)

    def decode_images(self, encoded: tf.Tensor) -> tf.Tensor:
        """Decodes encoded image strings ``[N]`` to float32 ``[N, H, W, 3]`` in 0..255."""
        height, width = self.image_size

        def decode_one(data: tf.Tensor) -> tf.Tensor:
            check = tf.debugging.Assert(_is_image(data), [BAD_IMAGE_MESSAGE], summarize=1)
            with tf.control_dependencies([check]):
                image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image = tf.image.resize(
                tf.cast(image, tf.float32), (height, width), method="bilinear", antialias=True
            )
            return tf.clip_by_value(image, 0.0, 255.0)

        return tf.map_fn(
            decode_one,
            encoded,
            fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
        )

    def _serve_bytes(self, encoded: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._forward(self.decode_images(encoded), portable=False)

    def signatures(self, include_float: bool = True) -> dict[str, tf.types.experimental.Callable]:
        """The signature dict for ``tf.saved_model.save``."""
        signatures = {
            SERVING_DEFAULT: self.serving_default,
            PREDICT_IMAGE_BYTES: self.predict_image_bytes,
        }
        if include_float:
            signatures[SERVING_FLOAT] = self.serving_float
        return signatures

    def tflite_function(self) -> tf.types.experimental.ConcreteFunction:
        """The float32 ``[1, H, W, 3]`` concrete function the TFLite files come from
        (frozen, builtin ops)."""
        function = frozen_function(self._serve_float, [self._images_spec(tf.float32, batch=1)])
        return function.get_concrete_function()
