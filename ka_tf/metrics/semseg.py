"""Scene-parsing metrics from a confusion matrix pooled over the whole dataset.

Conventions (after mmsegmentation and Multi-Task-Learning-PyTorch):

- Predictions are integer class ids ``[N, H, W]`` (take the argmax of the logits
  first); targets are integer class ids ``[N, H, W]`` (uint8 in ka_tf datasets)
  where ``255`` (:data:`ka_tf.constants.IGNORE_LABEL`) marks pixels without a
  class. Ignored pixels count nowhere.
- One ``num_classes x num_classes`` confusion matrix (rows: target, columns:
  prediction) is accumulated over every image, and the metrics are computed once
  from it — not averaged per image.
- ``semseg/miou``: mean over classes of ``TP / (TP + FP + FN)``; a class whose
  union is empty (never in the targets and never predicted) is left out of the
  mean. ``semseg/pixel_acc``: correct / valid pixels. ``semseg/mean_acc``: mean
  over the classes present in the targets of ``TP / (TP + FN)``. All three are
  fractions in [0, 1].
- Target ids ``>= num_classes`` other than 255, negative ids, and prediction ids
  outside ``[0, num_classes)`` raise :class:`~ka_tf.errors.DataError`.
"""

from __future__ import annotations

import numpy as np

from ka_tf.constants import IGNORE_LABEL
from ka_tf.errors import ConfigError, DataError

MIOU = "semseg/miou"
PIXEL_ACC = "semseg/pixel_acc"
MEAN_ACC = "semseg/mean_acc"
SEMSEG_METRICS = (MIOU, PIXEL_ACC, MEAN_ACC)


def _check_ids(array: np.ndarray, name: str, num_classes: int, allow_ignore: bool) -> None:
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise DataError(
            f"semseg {name} must be integer class ids. Received dtype={array.dtype}. "
            f"Expected an integer array; take the argmax of logits over the last axis first."
        )
    if array.size == 0:
        return
    lowest, highest = int(array.min()), int(array.max())
    if lowest < 0:
        raise DataError(
            f"semseg {name} contain a negative class id ({lowest}). Expected ids in "
            f"[0, {num_classes})" + (f" or {IGNORE_LABEL} (ignore)." if allow_ignore else ".")
        )
    if highest < num_classes:
        return
    if allow_ignore:
        bad = array[(array >= num_classes) & (array != IGNORE_LABEL)]
        if bad.size:
            raise DataError(
                f"semseg {name} contain class id {int(bad.max())} but num_classes="
                f"{num_classes}. Expected ids in [0, {num_classes}) or {IGNORE_LABEL} "
                f"(ignore); pass the right --num_classes or fix the labels."
            )
    else:
        raise DataError(
            f"semseg {name} contain class id {highest} but num_classes={num_classes}. "
            f"Expected ids in [0, {num_classes}); the model's class count and num_classes "
            f"disagree."
        )


def _check_num_classes(num_classes: int | None) -> int:
    if num_classes is None or isinstance(num_classes, bool) or int(num_classes) != num_classes:
        raise ConfigError(
            f"semseg metrics need an integer num_classes. Received: num_classes={num_classes!r}."
        )
    if not 1 <= int(num_classes) < IGNORE_LABEL:
        raise ConfigError(
            f"num_classes out of range. Received: num_classes={num_classes}. "
            f"Expected 1..{IGNORE_LABEL - 1} ({IGNORE_LABEL} is the ignore label)."
        )
    return int(num_classes)


def confusion_matrix(predictions: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Returns the ``[num_classes, num_classes]`` int64 confusion matrix of one batch.

    Args:
        predictions: Integer class ids, any shape.
        targets: Integer class ids of the same shape; 255 is ignored.
        num_classes: Number of classes C.

    Returns:
        ``matrix[t, p]`` = number of valid pixels with target ``t`` predicted as ``p``.

    Raises:
        DataError: on mismatched shapes, non-integer arrays or out-of-range ids.
    """
    num_classes = _check_num_classes(num_classes)
    predictions = np.asarray(predictions)
    targets = np.asarray(targets)
    if predictions.shape != targets.shape:
        hint = (
            " Predictions look like logits; take their argmax over the last axis."
            if predictions.ndim == targets.ndim + 1
            else ""
        )
        raise DataError(
            f"semseg predictions and targets differ in shape: predictions "
            f"{predictions.shape} vs targets {targets.shape}. Expected equal [N, H, W] "
            f"class-id arrays.{hint}"
        )
    _check_ids(targets, "targets", num_classes, allow_ignore=True)
    _check_ids(predictions, "predictions", num_classes, allow_ignore=False)
    valid = targets != IGNORE_LABEL
    flat = targets[valid].astype(np.int64) * num_classes + predictions[valid].astype(np.int64)
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def metrics_from_confusion(matrix: np.ndarray) -> dict[str, float]:
    """Computes mIoU, pixel accuracy and mean class accuracy from a confusion matrix.

    Args:
        matrix: ``[C, C]`` counts, rows = target class, columns = predicted class.

    Returns:
        ``{"semseg/miou", "semseg/pixel_acc", "semseg/mean_acc"}`` as fractions.

    Raises:
        DataError: if the matrix holds no valid pixel at all.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    total = matrix.sum()
    if total == 0:
        raise DataError(
            "semseg metrics saw no valid pixel: every target pixel is 255 (ignore) or the "
            "dataset is empty. Check the labels and the split."
        )
    true_positive = np.diag(matrix)
    target_count = matrix.sum(axis=1)
    present_target = target_count > 0
    iou = class_scores(matrix)["iou"]
    accuracy = true_positive[present_target] / target_count[present_target]
    return {
        MIOU: float(iou[np.isfinite(iou)].mean()),  # classes labelled or predicted
        PIXEL_ACC: float(true_positive.sum() / total),
        MEAN_ACC: float(accuracy.mean()),
    }


def class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class scores from a confusion matrix (rows target, columns predicted).

    Returns:
        ``iou`` (NaN for a class neither present nor predicted: it is left out of the
        mIoU), ``share`` (the class's fraction of the target pixels) and
        ``predicted_share`` (its fraction of the predicted pixels), each ``[C]``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    total = max(matrix.sum(), 1.0)
    true_positive = np.diag(matrix)
    target_count, predicted_count = matrix.sum(axis=1), matrix.sum(axis=0)
    union = target_count + predicted_count - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    return {"iou": iou, "share": target_count / total, "predicted_share": predicted_count / total}


class SemsegAccumulator:
    """Streams batches into one confusion matrix and computes the metrics once.

    Args:
        num_classes: Number of classes C (ids 0..C-1; 255 is ignore).

    Example:
        >>> acc = SemsegAccumulator(num_classes=3)
        >>> acc.update(np.array([[0, 1]]), np.array([[0, 255]]))
        >>> acc.result()["semseg/pixel_acc"]
        1.0
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = _check_num_classes(num_classes)
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, predictions: np.ndarray, targets: np.ndarray) -> None:
        """Adds one batch of class-id predictions and targets (same shape)."""
        self.matrix += confusion_matrix(predictions, targets, self.num_classes)

    def result(self) -> dict[str, float]:
        """Returns the metrics over everything seen since the last reset."""
        return metrics_from_confusion(self.matrix)

    def class_scores(self) -> dict[str, np.ndarray]:
        """Per-class IoU and pixel shares over everything seen (:func:`class_scores`)."""
        return class_scores(self.matrix)

    def reset(self) -> None:
        """Forgets every batch seen so far."""
        self.matrix[:] = 0
