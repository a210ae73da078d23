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

An input to ``predict_image_bytes`` that is not an image makes the call fail with an
``InvalidArgumentError`` whose message starts with :data:`BAD_IMAGE_MESSAGE`; the
graph itself is unchanged, so a server (TensorFlow Serving answers HTTP 400 with
``{"error": "..."}``) keeps serving the next request.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

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
        self.model = model
        self.max_depth = max_depth
        self.tasks = model_tasks(model)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        # Keras 3 variables are tracked here as the tf.Variables they wrap: without it
        # the TFLite converter keeps them as READ_VARIABLE ops (uninitialised at run time).
        self.model_variables = [variable.value for variable in model.variables]
        height, width = self.image_size
        self.serving_default = tf.function(
            self._serve_uint8,
            input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8, name=INPUT_NAME)],
            autograph=False,
        )
        self.predict_image_bytes = tf.function(
            self._serve_bytes,
            input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)],
            autograph=False,
        )
        self.serving_float = tf.function(
            self._serve_float,
            input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name=INPUT_NAME)],
            autograph=False,
        )

    @property
    def output_names(self) -> tuple[str, ...]:
        """The exported output names, e.g. ``("semseg", "semseg_probs", "depth")``."""
        return output_names_for(self.tasks)

    def _forward(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        # Builtin ops only (TFLite, ONNX): the unpooling's mask form, same results.
        with portable_unpooling():
            outputs = self.model(images, training=False)
        return postprocess(outputs, self.max_depth)

    def _serve_uint8(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._forward(tf.cast(images, tf.float32))

    def _serve_float(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._forward(images)

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
        return self._forward(self.decode_images(encoded))

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
        """The float32 ``[1, H, W, 3]`` concrete function the TFLite files come from."""
        height, width = self.image_size
        function = tf.function(
            self._serve_float,
            input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32, name=INPUT_NAME)],
            autograph=False,
        )
        return function.get_concrete_function()
