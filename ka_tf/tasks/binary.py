"""Binary segmentation: one foreground probability per pixel (a person, a salient object,
any mask), scored by IoU, F-measure and MAE.

A binary task is named by its user — a student can learn several (``person`` and
``salient`` from two teachers) — so this module defines the kind and registers nothing:

Example:
    >>> from ka_tf.tasks import register_task
    >>> from ka_tf.tasks.binary import BinarySegmentation
    >>> register_task(BinarySegmentation("person"))

Conventions:

- Labels: uint8 ``[H, W]``, 1 = foreground, 0 = background, 255 = ignore (padding).
- Head: one channel, a sigmoid: the foreground probability ``[B, H, W]`` in [0, 1].
  A teacher's output is that probability (soft target).
- Loss ``bce``: binary cross-entropy to the target probability (a label's 0/1, or a
  teacher's soft value), over non-ignored pixels; ``bce_iou``: that plus the soft IoU
  loss per image; ``l1``: mean |p − target|.
- Metrics, pooled over pixels (predictions thresholded at 0.5 for IoU and F):
  ``<name>/iou`` = TP / (TP + FP + FN) of the foreground; ``<name>/f_measure`` =
  (1 + β²)·P·R / (β²·P + R) with β² = 0.3, the salient-object convention (Achanta et
  al. 2009); ``<name>/mae`` = mean |p − label| of the probabilities (lower is better).
- Served outputs: ``<name>`` int32 ``[N, H, W]`` mask (p ≥ 0.5) and ``<name>_probs``
  float32 probabilities.
- Constant baseline: the training foreground fraction as the probability everywhere.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ka_tf.constants import IGNORE_LABEL
from ka_tf.errors import DataError
from ka_tf.losses.masking import masked_mean_per_sample
from ka_tf.tasks.base import Task, TaskMetrics

F_BETA_SQUARED = 0.3
THRESHOLD = 0.5
_EPS = 1e-6
# The sums behind the metrics, in the order of a per-image statistics row.
_STATISTICS = ("tp", "fp", "fn", "abs_error", "count")


def _targets_and_valid(y_true, y_pred):
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    if len(y_pred.shape) == len(y_true.shape) + 1:
        y_pred = y_pred[..., 0]
    valid = ops.logical_and(y_true >= 0.0, y_true <= 1.0)  # 255 = ignore
    return ops.where(valid, y_true, ops.zeros_like(y_true)), y_pred, valid


@keras.saving.register_keras_serializable(package="ka_tf")
class MaskBinaryCrossEntropy(keras.losses.Loss):
    """Binary cross-entropy of predicted probabilities to 0/1 labels or soft targets,
    over pixels whose target is in [0, 1] (255 = ignore)."""

    def __init__(self, name="mask_bce", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        target, prob, valid = _targets_and_valid(y_true, y_pred)
        prob = ops.clip(prob, _EPS, 1.0 - _EPS)
        bce = -(target * ops.log(prob) + (1.0 - target) * ops.log(1.0 - prob))
        return masked_mean_per_sample(bce, valid)


@keras.saving.register_keras_serializable(package="ka_tf")
class MaskL1(keras.losses.Loss):
    """Mean |p − target| over pixels whose target is in [0, 1] (255 = ignore)."""

    def __init__(self, name="mask_l1", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        target, prob, valid = _targets_and_valid(y_true, y_pred)
        return masked_mean_per_sample(ops.abs(prob - target), valid)


@keras.saving.register_keras_serializable(package="ka_tf")
class MaskBCEIoU(keras.losses.Loss):
    """Binary cross-entropy plus the soft IoU loss, ``1 − Σ p·t / Σ (p + t − p·t)`` per
    image, over pixels whose target is in [0, 1].

    The IoU term weighs the foreground as a whole, however few its pixels: BCE alone
    lets a student that matches a teacher's small objects (pedestrians far away) only
    half-way score well, while their IoU at 0.5 stays low (the saliency losses of
    BASNet, Qin et al. 2019, add it for the same reason).
    """

    def __init__(self, iou_weight: float = 1.0, name="mask_bce_iou", **kwargs):
        super().__init__(name=name, **kwargs)
        self.iou_weight = float(iou_weight)
        self._bce = MaskBinaryCrossEntropy()

    def call(self, y_true, y_pred):
        target, prob, valid = _targets_and_valid(y_true, y_pred)
        weight = ops.cast(valid, "float32")
        axes = tuple(range(1, len(prob.shape)))
        overlap = ops.sum(prob * target * weight, axis=axes)
        union = ops.sum((prob + target - prob * target) * weight, axis=axes)
        soft_iou = (overlap + 1.0) / (union + 1.0)  # +1: an empty mask matched is IoU 1
        return self._bce.call(y_true, y_pred) + self.iou_weight * (1.0 - soft_iou)

    def get_config(self):
        return {**super().get_config(), "iou_weight": self.iou_weight}


def mask_sums(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The pooled sums (TP, FP, FN at 0.5; |p − label|; valid pixels) of a batch.

    Raises:
        DataError: on mismatched shapes, probabilities outside [0, 1] or labels other
            than 0, 1 and 255.
    """
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels)
    if probabilities.shape != labels.shape:
        raise DataError(
            f"mask predictions have shape {probabilities.shape} but labels {labels.shape}; "
            f"expected the same [N, H, W]."
        )
    valid = labels != IGNORE_LABEL
    if not np.all(np.isin(labels[valid], (0, 1))):
        found = sorted(set(np.unique(labels[valid]).tolist()) - {0, 1})[:5]
        raise DataError(f"mask labels hold {found}; expected 0, 1 and {IGNORE_LABEL} (ignore).")
    p = probabilities[valid]
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0):
        raise DataError("mask predictions must be probabilities in [0, 1] on valid pixels.")
    truth = labels[valid] == 1
    predicted = p >= THRESHOLD
    return {
        "tp": float(np.sum(predicted & truth)),
        "fp": float(np.sum(predicted & ~truth)),
        "fn": float(np.sum(~predicted & truth)),
        "abs_error": float(np.sum(np.abs(p - truth))),
        "count": float(p.size),
    }


class MaskAccumulator:
    """Pools :func:`mask_sums` over batches; ``result()`` gives IoU, F-measure and MAE."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reset()

    def update(self, predictions: np.ndarray, targets: np.ndarray) -> None:
        for key, value in mask_sums(predictions, targets).items():
            self.sums[key] += value

    def result(self) -> dict[str, float]:
        return metrics_from_sums(self.name, self.sums)

    def reset(self) -> None:
        self.sums = dict.fromkeys(_STATISTICS, 0.0)


def metrics_from_sums(name: str, sums: dict[str, float]) -> dict[str, float]:
    """IoU, F-measure and MAE of task ``name`` from pooled :func:`mask_sums`.

    Raises:
        DataError: if no valid pixel was seen.
    """
    if sums["count"] == 0:
        raise DataError(f"no valid {name!r} pixel was evaluated.")
    tp, fp, fn = sums["tp"], sums["fp"], sums["fn"]
    union = tp + fp + fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    weighted = F_BETA_SQUARED * precision + recall
    return {
        f"{name}/iou": tp / union if union else 1.0,  # no foreground anywhere, none predicted
        f"{name}/f_measure": (1 + F_BETA_SQUARED) * precision * recall / weighted
        if weighted
        else 0.0,
        f"{name}/mae": sums["abs_error"] / sums["count"],
    }


class BinarySegmentation(Task):
    """A binary segmentation task named ``name`` (see the module doc)."""

    kind = "binary"
    pad_value = float(IGNORE_LABEL)
    default_loss = "bce"
    output_form = "foreground probabilities "

    def __init__(self, name: str) -> None:
        self.name = name

    def head_output(self, raw: Any, options) -> Any:
        return ops.sigmoid(raw[..., 0])

    def losses(self):
        return {"bce": MaskBinaryCrossEntropy, "bce_iou": MaskBCEIoU, "l1": MaskL1}

    # ``min_max``: a saliency map scaled to [0, 1] per image (U²-Net's convention).
    teacher_forms = ("probability", "logit", "min_max")

    def teacher_target(self, raw: tf.Tensor, form: str) -> tf.Tensor:
        values = tf.cast(raw[..., 0], tf.float32)
        if form == "logit":
            return tf.sigmoid(values)
        if form == "min_max":
            low = tf.reduce_min(values, axis=[1, 2], keepdims=True)
            high = tf.reduce_max(values, axis=[1, 2], keepdims=True)
            return (values - low) / tf.maximum(high - low, 1e-8)
        return tf.clip_by_value(values, 0.0, 1.0)

    def label_from_prediction(self, prediction: np.ndarray) -> np.ndarray:
        """The teacher's mask: 1 where its probability is at least 0.5."""
        return (np.asarray(prediction) >= THRESHOLD).astype(np.uint8)

    def metrics(self) -> TaskMetrics:
        iou, f_measure, mae = (f"{self.name}/{m}" for m in ("iou", "f_measure", "mae"))
        return TaskMetrics((iou, f_measure, mae), frozenset({mae}), iou, (iou, f_measure, mae))

    def accumulator(self, num_classes, min_depth, max_depth) -> MaskAccumulator:
        return MaskAccumulator(self.name)

    def image_statistics(self, prediction, target, num_classes, min_depth, max_depth):
        sums = mask_sums(prediction, target)
        return np.array([sums[key] for key in _STATISTICS], np.float64)

    def pooled_metrics(self, summed: np.ndarray) -> dict[str, float]:
        return metrics_from_sums(
            self.name, dict(zip(_STATISTICS, (float(v) for v in summed), strict=True))
        )

    def baseline_sums(self, labels: np.ndarray, num_classes: int | None):
        valid = labels[labels != IGNORE_LABEL]
        return np.array([float(np.sum(valid == 1))]), int(valid.size)

    def baseline_constant(self, sums: np.ndarray, pixels: int, num_classes: int | None):
        fraction = float(sums[0] / pixels)
        return fraction, np.array([fraction], np.float32), f"foreground fraction {fraction:.3f}"

    def render(self, values, palette=None, value_range=(None, None)):
        grey = np.round(np.clip(np.asarray(values, np.float32), 0.0, 1.0) * 255).astype(np.uint8)
        grey = np.where(np.asarray(values) == IGNORE_LABEL, 0, grey)  # ignored label pixels
        return np.repeat(grey[..., None], 3, axis=-1)

    def export_names(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}_probs")

    def export_outputs(self, output: tf.Tensor, max_depth: float | None = None):
        probabilities = tf.cast(output, tf.float32)
        if probabilities.shape.rank == 4:
            probabilities = probabilities[..., 0]
        mask = tf.cast(probabilities >= THRESHOLD, tf.int32)
        return {self.name: mask, f"{self.name}_probs": probabilities}

    def resize_export(self, name: str, value: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
        if name == self.name:  # the 0/1 mask: never blended
            return tf.cast(tf.image.resize(value, size, method="nearest"), value.dtype)
        return tf.image.resize(value, size, method="bilinear")
