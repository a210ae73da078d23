"""Per-image sufficient statistics, so dataset metrics can be recomputed on any image subset.

Every ka_tf metric is pooled over pixels (:mod:`ka_tf.metrics.dense_metrics`), so the
metric of a set of images is a function of the *sum* of its images' statistics: the
confusion matrix for scene parsing, the error sums for depth, the angle histogram and
sums for normals. :func:`image_statistics` returns one row per image;
:func:`pooled_metrics` turns a sum of rows back into the metrics. A bootstrap over test
images (``ka_tf.study``) resamples rows and sums them.

Example:
    >>> rows = image_statistics("depth", predicted_depth, true_depth, max_depth=80.0)
    >>> pooled_metrics("depth", rows[[0, 0, 3]].sum(axis=0))  # images 0, 0 and 3
"""

from __future__ import annotations

import numpy as np

from ka_tf.constants import DEPTH, NORMALS, SEMSEG
from ka_tf.errors import ConfigError
from ka_tf.metrics import depth as depth_lib
from ka_tf.metrics import normals as normals_lib
from ka_tf.metrics import semseg as semseg_lib

_DEPTH_KEYS = ("count", "abs_rel", "sq_rel", "sq_err", "sq_log", "abs_log10", "d1", "d2", "d3")


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
        task: ``semseg``, ``depth`` or ``normals``.
        predictions: The batch's predictions in metric form ([N, H, W] ids or metres,
            [N, H, W, 3] normals), as :func:`ka_tf.evaluation.predict_dense` gives.
        targets: The batch's targets, same shape.
        num_classes: Scene-parsing classes (semseg only).
        min_depth: Lower clamp of depth predictions.
        max_depth: Upper clamp of depth predictions; also masks deeper targets.

    Returns:
        ``[N, D]`` float64: semseg D = C², depth D = 9, normals D = bins + 5.
    """
    rows = []
    for prediction, target in zip(predictions, targets, strict=True):
        if task == SEMSEG:
            if num_classes is None:
                raise ConfigError("semseg statistics need num_classes. Received: None.")
            matrix = semseg_lib.confusion_matrix(prediction, target, num_classes)
            rows.append(matrix.astype(np.float64).ravel())
        elif task == DEPTH:
            sums = depth_lib.depth_sums(prediction, target, min_depth, max_depth)
            rows.append(np.array([sums[key] for key in _DEPTH_KEYS], np.float64))
        elif task == NORMALS:
            accumulator = normals_lib.NormalsAccumulator()
            accumulator.update(prediction[None], target[None])
            rows.append(
                np.concatenate(
                    [
                        accumulator.histogram.astype(np.float64),
                        [accumulator.count, accumulator.angle_sum, *accumulator.within],
                    ]
                )
            )
        else:
            raise ConfigError(f"unknown task. Received: task={task!r}.")
    return np.stack(rows)


def pooled_metrics(task: str, summed: np.ndarray) -> dict[str, float]:
    """The dataset metrics of a set of images from the sum of their rows."""
    if task == SEMSEG:
        classes = round(float(np.sqrt(summed.size)))
        matrix = np.rint(summed).astype(np.int64).reshape(classes, classes)
        return semseg_lib.metrics_from_confusion(matrix)
    if task == DEPTH:
        sums = dict(zip(_DEPTH_KEYS, (float(v) for v in summed), strict=True))
        return depth_lib.metrics_from_sums(sums)
    if task == NORMALS:
        accumulator = normals_lib.NormalsAccumulator()
        bins = normals_lib.NUM_BINS
        accumulator.histogram = np.rint(summed[:bins]).astype(np.int64)
        accumulator.count = round(float(summed[bins]))
        accumulator.angle_sum = float(summed[bins + 1])
        accumulator.within = [round(float(v)) for v in summed[bins + 2 : bins + 5]]
        return accumulator.result()
    raise ConfigError(f"unknown task. Received: task={task!r}.")
