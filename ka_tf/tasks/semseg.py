"""Semantic segmentation: per-pixel class logits, scored by mIoU and pixel accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ka_tf.constants import IGNORE_LABEL, SEMSEG
from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.tasks.base import Task, TaskMetrics

SEMSEG_PROBS = "semseg_probs"


class SemanticSegmentation(Task):
    """Labels: class ids ``[H, W]`` (255 = ignore). Head: logits ``[B, H, W, C]``.

    Losses: ``ce`` (labels), ``kl`` (the teacher's softened distribution), ``hard_ce``
    (the teacher's argmax). Served as class ids and softmax probabilities.
    """

    name = SEMSEG
    has_classes = True
    pad_value = float(IGNORE_LABEL)
    default_loss = "kl"

    def head_channels(self, num_classes: int | None) -> int:
        if not num_classes or num_classes < 2:
            raise ConfigError(
                f"semseg needs num_classes >= 2. Received: num_classes={num_classes}."
            )
        return int(num_classes)

    def head_output(self, raw: Any, options) -> Any:
        return raw

    teacher_forms = ("logits", "probabilities")

    def teacher_target(self, raw: tf.Tensor, form: str) -> tf.Tensor:
        if form == "probabilities":
            # log p are logits whose softmax is p (renormalised): what ``kl`` compares.
            return tf.math.log(tf.maximum(raw, 1e-6))
        return raw

    def head_output_shape(self, input_shape: tuple, channels: int) -> tuple:
        return (*input_shape[:-1], channels)

    def losses(self):
        from ka_tf.losses.semseg_losses import (
            HardTargetCrossEntropy,
            SemsegCrossEntropy,
            SoftTargetKLDivergence,
        )

        return {
            "ce": SemsegCrossEntropy,
            "kl": SoftTargetKLDivergence,
            "hard_ce": HardTargetCrossEntropy,
        }

    def metric_prediction(self, output: tf.Tensor, model_name: str) -> tf.Tensor:
        if output.shape.rank != 4:
            raise ModelFileError(
                f"model {model_name!r}: semseg output has shape {tuple(output.shape)}. "
                f"Expected logits [B, H, W, C]."
            )
        return tf.argmax(output, axis=-1, output_type=tf.int32)

    def metrics(self) -> TaskMetrics:
        from ka_tf.metrics.semseg import MIOU, PIXEL_ACC, SEMSEG_METRICS

        return TaskMetrics(SEMSEG_METRICS, frozenset(), MIOU, (MIOU, PIXEL_ACC))

    def accumulator(self, num_classes: int | None, min_depth: float, max_depth: float | None):
        from ka_tf.metrics.semseg import SemsegAccumulator

        if num_classes is None:
            raise ConfigError(
                "semseg metrics need num_classes. Received: num_classes=None. Pass the "
                "number of classes (the semseg logits' last dimension)."
            )
        return SemsegAccumulator(num_classes)

    def image_statistics(self, prediction, target, num_classes, min_depth, max_depth):
        from ka_tf.metrics import semseg as semseg_lib

        if num_classes is None:
            raise ConfigError("semseg statistics need num_classes. Received: None.")
        matrix = semseg_lib.confusion_matrix(prediction, target, num_classes)
        return matrix.astype(np.float64).ravel()

    def pooled_metrics(self, summed: np.ndarray) -> dict[str, float]:
        from ka_tf.metrics import semseg as semseg_lib

        classes = round(float(np.sqrt(summed.size)))
        matrix = np.rint(summed).astype(np.int64).reshape(classes, classes)
        return semseg_lib.metrics_from_confusion(matrix)

    def num_classes(self, output_shape: tuple) -> int | None:
        return None if output_shape[-1] is None else int(output_shape[-1])

    def baseline_sums(self, labels: np.ndarray, num_classes: int | None):
        valid = labels[labels != IGNORE_LABEL].astype(np.int64)
        return np.bincount(valid[valid < num_classes], minlength=num_classes), int(valid.size)

    def baseline_constant(self, sums: np.ndarray, pixels: int, num_classes: int | None):
        value = int(np.argmax(sums))
        logits = np.zeros(num_classes, np.float32)
        logits[value] = 1.0
        return (
            value,
            logits,
            f"majority class {value} ({100.0 * sums[value] / pixels:.1f}% of pixels)",
        )

    def render(self, values, palette=None, value_range=(None, None)):
        from ka_tf.visualize import colorize_labels

        return colorize_labels(values, palette)

    def resize_export(self, name: str, value: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
        if name == SEMSEG:  # class ids: never blended
            return tf.cast(tf.image.resize(value, size, method="nearest"), value.dtype)
        return tf.image.resize(value, size, method="bilinear")

    def export_names(self) -> tuple[str, ...]:
        return (SEMSEG, SEMSEG_PROBS)

    def export_outputs(self, output: tf.Tensor, max_depth: float | None = None):
        logits = tf.cast(output, tf.float32)
        return {
            SEMSEG: tf.argmax(logits, axis=-1, output_type=tf.int32),
            SEMSEG_PROBS: tf.nn.softmax(logits, axis=-1),
        }


SEMANTIC_SEGMENTATION = SemanticSegmentation()
