"""The multi-task headline: a student's relative change versus single-task teachers.

For a metric ``M`` with student value ``S`` and teacher value ``T`` the relative
change is ``sign * (S - T) / T`` with ``sign = -1`` for lower-is-better metrics
(:func:`~ka_tf.metrics.names.lower_is_better_metrics`: rmse, abs_rel, sq_rel, rmse_log,
log10, mean_angle, median_angle) and ``+1`` otherwise, so a positive value always
means "the student is better". Values are fractions (0.05 = +5 %).

Two means are reported (Vandenhende et al., "Multi-Task Learning for Dense
Prediction Tasks: A Survey", TPAMI 2021; Maninis et al., CVPR 2019):

- ``delta_m``: the mean over every metric both dicts have (the all-metrics form
  used by most NYUv2 multi-task papers);
- ``delta_m_tasks``: one primary metric per task — semseg/miou, depth/rmse,
  normals/mean_angle — averaged over tasks (the form computed by
  Multi-Task-Learning-PyTorch's ``calculate_multi_task_performance``), present
  when at least one primary metric is shared.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ka_tf.errors import DataError
from ka_tf.metrics.names import lower_is_better_metrics, metric_names, primary_metrics

DELTA_M = "delta_m"
DELTA_M_TASKS = "delta_m_tasks"


def relative_change(student: Mapping[str, float], teacher: Mapping[str, float]) -> dict[str, float]:
    """Returns the sign-corrected relative change per shared metric and its means.

    Args:
        student: Metric key -> value for the student (e.g. from ``compute_metrics``).
        teacher: Metric key -> value for the teacher(s); several single-task
            teachers' dicts can simply be merged, as their keys do not overlap.

    Returns:
        Each metric key known to ka_tf and present in both dicts -> relative change,
        plus ``delta_m`` and, when a primary metric is shared, ``delta_m_tasks``.
        Keys ka_tf does not know the direction of are skipped.

    Raises:
        DataError: no metric in common, or a teacher value that is zero or not finite.

    Example:
        >>> relative_change({"depth/rmse": 0.5}, {"depth/rmse": 1.0})
        {'depth/rmse': 0.5, 'delta_m': 0.5, 'delta_m_tasks': 0.5}
    """
    shared = [name for name in metric_names() if name in student and name in teacher]
    if not shared:
        raise DataError(
            f"student and teacher share no known metric: student has {sorted(student)}, "
            f"teacher has {sorted(teacher)}."
        )
    changes: dict[str, float] = {}
    lower_is_better = lower_is_better_metrics()
    for name in shared:
        base, value = float(teacher[name]), float(student[name])
        if base == 0 or not np.isfinite(base) or not np.isfinite(value):
            raise DataError(
                f"cannot compute the relative change of {name}: teacher={base}, "
                f"student={value}. Expected finite values and a non-zero teacher value."
            )
        sign = -1.0 if name in lower_is_better else 1.0
        changes[name] = sign * (value - base) / base
    result = dict(changes)
    result[DELTA_M] = float(np.mean(list(changes.values())))
    primary = [changes[name] for name in primary_metrics().values() if name in changes]
    if primary:
        result[DELTA_M_TASKS] = float(np.mean(primary))
    return result
