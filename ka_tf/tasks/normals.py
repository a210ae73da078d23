"""Surface normals: unit vectors per pixel (0 = invalid), scored by angular error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from keras import ops

from ka_tf.constants import NORMALS
from ka_tf.errors import DataError, ModelFileError
from ka_tf.tasks.base import Task, TaskMetrics
from ka_tf.tasks.depth import masked_bilinear


class SurfaceNormals(Task):
    """Labels: unit vectors ``[H, W, 3]`` (camera frame), 0 where invalid.

    Head: L2-normalised ``[B, H, W, 3]``. Mirroring negates x; averaging renormalises;
    labels resize bilinearly over valid pixels and are renormalised. Losses: ``cosine``
    (default), ``angular``.
    """

    name = NORMALS
    label_channels = 3
    pad_value = 0.0
    mirror_signs = (-1.0, 1.0, 1.0)
    default_loss = "cosine"

    def head_channels(self, num_classes: int | None) -> int:
        return 3

    def head_output(self, raw: Any, options) -> Any:
        squared_norm = ops.sum(ops.square(raw), axis=-1, keepdims=True)
        return raw * ops.rsqrt(ops.maximum(squared_norm, 1e-12))

    def head_output_shape(self, input_shape: tuple, channels: int) -> tuple:
        return (*input_shape[:-1], channels)

    # Vectors in the camera frame of the normals labels (renormalised here); a teacher
    # in another frame must be mapped to it first.
    teacher_forms = ("unit",)

    def teacher_target(self, raw: tf.Tensor, form: str) -> tf.Tensor:
        del form
        return self.head_output(tf.cast(raw, tf.float32), {})

    def losses(self):
        from ka_tf.losses.normals_losses import AngularError, CosineDistance

        return {"cosine": CosineDistance, "angular": AngularError}

    def average(self, predictions: Sequence[Any]) -> Any:
        mean = sum(predictions[1:], predictions[0]) / float(len(predictions))
        return mean * ops.rsqrt(
            ops.maximum(ops.sum(ops.square(mean), axis=-1, keepdims=True), 1e-24)
        )

    def resize_label(self, values: tf.Tensor, hw: tf.Tensor, depth_method: str) -> tf.Tensor:
        valid = tf.reduce_sum(tf.abs(values), axis=-1) > 0
        mean = masked_bilinear(values, valid, hw)
        norm = tf.norm(mean, axis=-1, keepdims=True)
        return tf.where(norm > 1e-6, mean / tf.maximum(norm, 1e-6), tf.zeros_like(mean))

    def metric_prediction(self, output: tf.Tensor, model_name: str) -> tf.Tensor:
        if output.shape.rank != 4 or output.shape[-1] != 3:
            raise ModelFileError(
                f"model {model_name!r}: normals output has shape {tuple(output.shape)}. "
                f"Expected [B, H, W, 3]."
            )
        return tf.cast(output, tf.float32)

    def metrics(self) -> TaskMetrics:
        from ka_tf.metrics import normals as metrics

        errors = frozenset({metrics.MEAN_ANGLE, metrics.MEDIAN_ANGLE})
        headline = (metrics.MEAN_ANGLE, metrics.WITHIN_11)
        return TaskMetrics(metrics.NORMALS_METRICS, errors, metrics.MEAN_ANGLE, headline)

    def baseline_sums(self, labels: np.ndarray, num_classes: int | None):
        vectors = labels.reshape(-1, 3).astype(np.float64)
        vectors = vectors[np.linalg.norm(vectors, axis=1) > 0.5]
        return vectors.sum(axis=0), len(vectors)

    def baseline_constant(self, sums: np.ndarray, pixels: int, num_classes: int | None):
        norm = np.linalg.norm(sums)
        if norm == 0:
            raise DataError("the mean training normal is zero; no direction to predict.")
        value = [float(v) for v in sums / norm]
        return (
            value,
            np.array(value, np.float32),
            "mean normal ({:.3f}, {:.3f}, {:.3f})".format(*value),
        )

    def image_statistics(self, prediction, target, num_classes, min_depth, max_depth):
        from ka_tf.metrics.normals import NormalsAccumulator

        accumulator = NormalsAccumulator()
        accumulator.update(prediction[None], target[None])
        counts = [accumulator.count, accumulator.angle_sum, *accumulator.within]
        return np.concatenate([accumulator.histogram.astype(np.float64), counts])

    def pooled_metrics(self, summed: np.ndarray) -> dict[str, float]:
        from ka_tf.metrics.normals import NUM_BINS, NormalsAccumulator

        accumulator = NormalsAccumulator()
        accumulator.histogram = np.rint(summed[:NUM_BINS]).astype(np.int64)
        accumulator.count = round(float(summed[NUM_BINS]))
        accumulator.angle_sum = float(summed[NUM_BINS + 1])
        accumulator.within = [round(float(v)) for v in summed[NUM_BINS + 2 : NUM_BINS + 5]]
        return accumulator.result()

    def render(self, values, palette=None, value_range=(None, None)):
        from ka_tf.visualize import colorize_normals

        return colorize_normals(values)

    def resize_export(self, name: str, value: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
        resized = tf.image.resize(value, size, method="bilinear")
        return tf.math.l2_normalize(resized, axis=-1, epsilon=1e-12)

    def accumulator(self, num_classes: int | None, min_depth: float, max_depth: float | None):
        from ka_tf.metrics.normals import NormalsAccumulator

        return NormalsAccumulator()


SURFACE_NORMALS = SurfaceNormals()
