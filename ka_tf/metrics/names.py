"""The metric keys ka_tf reports, their order, and which direction is better.

Each task declares its metrics (:meth:`ka_tf.tasks.Task.metrics`); these functions
read every registered task, in registration order (semseg, depth, normals, then
the user's).
"""

from __future__ import annotations


def _task_metrics():
    from ka_tf.tasks import get_task, task_names

    return {name: get_task(name).metrics() for name in task_names()}


def metric_names() -> tuple[str, ...]:
    """Every metric key in report order."""
    return tuple(name for metrics in _task_metrics().values() for name in metrics.names)


def lower_is_better_metrics() -> frozenset[str]:
    """The error metrics (lower is better); every other known metric is higher-is-better."""
    return frozenset().union(*(metrics.lower_is_better for metrics in _task_metrics().values()))


def primary_metrics() -> dict[str, str]:
    """One metric per task, for the Multi-Task-Learning-PyTorch form of the headline."""
    return {task: metrics.primary for task, metrics in _task_metrics().items()}


def headline_metrics() -> dict[str, tuple[str, ...]]:
    """The metrics a task is judged on in the zoo table and the study's verdict."""
    return {task: metrics.headline for task, metrics in _task_metrics().items()}


def task_of(metric: str) -> str:
    """Returns the task key of ``"task/name"`` (``"depth/rmse"`` -> ``"depth"``)."""
    return metric.split("/", 1)[0]


def higher_is_better(metric: str) -> bool | None:
    """True/False for a known metric, None for one ka_tf does not know the direction of."""
    if metric not in metric_names():
        return None
    return metric not in lower_is_better_metrics()
