"""The metric keys ka_tf reports, their order, and which direction is better."""

from __future__ import annotations

from ka_tf.metrics.depth import ABS_REL, DELTA1, DEPTH_METRICS, LOG10, RMSE, RMSE_LOG, SQ_REL
from ka_tf.metrics.normals import MEAN_ANGLE, MEDIAN_ANGLE, NORMALS_METRICS, WITHIN_11
from ka_tf.metrics.semseg import MIOU, PIXEL_ACC, SEMSEG_METRICS

# Every metric key in report order (semseg, depth, normals).
METRIC_NAMES = (*SEMSEG_METRICS, *DEPTH_METRICS, *NORMALS_METRICS)

# Errors: lower is better. Every other known metric is higher-is-better.
LOWER_IS_BETTER = frozenset({RMSE, ABS_REL, SQ_REL, RMSE_LOG, LOG10, MEAN_ANGLE, MEDIAN_ANGLE})

# One metric per task, for the Multi-Task-Learning-PyTorch form of the headline.
PRIMARY_METRICS = {"semseg": MIOU, "depth": RMSE, "normals": MEAN_ANGLE}

# The metrics a task is judged on in the zoo table and the study's verdict.
HEADLINE_METRICS = {
    "semseg": (MIOU, PIXEL_ACC),
    "depth": (ABS_REL, RMSE, DELTA1),
    "normals": (MEAN_ANGLE, WITHIN_11),
}


def task_of(metric: str) -> str:
    """Returns the task key of ``"task/name"`` (``"depth/rmse"`` -> ``"depth"``)."""
    return metric.split("/", 1)[0]


def higher_is_better(metric: str) -> bool | None:
    """True/False for a known metric, None for one ka_tf does not know the direction of."""
    if metric not in METRIC_NAMES:
        return None
    return metric not in LOWER_IS_BETTER
