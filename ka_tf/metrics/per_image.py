"""Per-image sufficient statistics, so dataset metrics can be recomputed on any image subset.

Every ka_tf metric is pooled over pixels (:mod:`ka_tf.metrics.dense_metrics`), so the
metric of a set of images is a function of the *sum* of its images' statistics: the
confusion matrix for scene parsing, the error sums for depth, the angle histogram and
sums for normals (each task's :meth:`~ka_tf.tasks.Task.image_statistics`).
:func:`image_statistics` returns one row per image;
:func:`pooled_metrics` turns a sum of rows back into the metrics. A bootstrap over test
images (``ka_tf.study``) resamples rows and sums them.

Example:
    >>> rows = image_statistics("depth", predicted_depth, true_depth, max_depth=80.0)
    >>> pooled_metrics("depth", rows[[0, 0, 3]].sum(axis=0))  # images 0, 0 and 3
"""

from __future__ import annotations

import numpy as np

from ka_tf.metrics import depth as depth_lib
from ka_tf.tasks import get_task


def image_statistics(
    task: str,
    predictions: np.ndarray,
    targets: np.ndarray,
    num_classes: int | None = None,
    min_depth: float = depth_lib.DEFAULT_MIN_DEPTH,
    max_depth: float | None = None,
) -> np.ndarray:
    """One float64 row of sufficient statistics per image of a batch.

    Args:
        task: A registered task name.
        predictions: The batch's predictions in metric form ([N, H, W] ids or metres,
            [N, H, W, 3] normals), as :func:`ka_tf.evaluation.predict_dense` gives.
        targets: The batch's targets, same shape.
        num_classes: Scene-parsing classes (semseg only).
        min_depth: Lower clamp of depth predictions.
        max_depth: Upper clamp of depth predictions; also masks deeper targets.

    Returns:
        ``[N, D]`` float64: semseg D = C², depth D = 9, normals D = bins + 5.
    """
    definition = get_task(task)
    rows = [
        definition.image_statistics(prediction, target, num_classes, min_depth, max_depth)
        for prediction, target in zip(predictions, targets, strict=True)
    ]
    return np.stack(rows)


def pooled_metrics(task: str, summed: np.ndarray) -> dict[str, float]:
    """The dataset metrics of a set of images from the sum of their rows."""
    return get_task(task).pooled_metrics(summed)
