"""All dense-prediction metrics behind one streaming accumulator and one function.

:class:`DenseMetrics` routes each task's arrays to its accumulator
(:class:`~ka_tf.metrics.semseg.SemsegAccumulator`,
:class:`~ka_tf.metrics.depth.DepthAccumulator`,
:class:`~ka_tf.metrics.normals.NormalsAccumulator`); :func:`compute_metrics` is
the one-shot form over whole numpy arrays. Streaming over batches and one call
over the concatenated arrays give the same numbers (up to float64 summation
order), because every metric is pooled over the dataset, never averaged per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ka_tf.errors import ConfigError, DataError
from ka_tf.metrics.depth import DEFAULT_MIN_DEPTH, DepthAccumulator
from ka_tf.metrics.names import metric_names
from ka_tf.tasks import get_task, ordered_tasks, task_names


def _check_tasks(tasks: Iterable[str]) -> tuple[str, ...]:
    tasks = tuple(tasks)
    known = task_names()
    unknown = [task for task in tasks if task not in known]
    if unknown or not tasks:
        raise ConfigError(
            f"unknown or empty task list. Received: tasks={list(tasks)}. "
            f"Expected a non-empty subset of {list(known)}."
        )
    return ordered_tasks(tasks)


class DenseMetrics:
    """Accumulates semseg, depth and normals metrics over a stream of numpy batches.

    The tasks are either given or, by default, fixed by the first :meth:`update`
    as the task keys present in both its predictions and its targets; every later
    update must carry the same tasks. Targets may hold extra keys (``image``, labels
    of tasks not evaluated); predictions may hold task keys only.

    Args:
        num_classes: Number of scene-parsing classes; required when semseg is evaluated.
        tasks: Task keys to evaluate, or None to take them from the first batch.
        min_depth: Lower clamp of depth predictions (metres, > 0).
        max_depth: Optional upper clamp of depth predictions; also masks deeper targets.

    Example:
        >>> metrics = DenseMetrics(num_classes=19)
        >>> for batch in batches:
        ...     metrics.update({"semseg": pred_ids, "depth": pred_depth}, batch)
        >>> metrics.result()["semseg/miou"]
    """

    def __init__(
        self,
        num_classes: int | None = None,
        tasks: Sequence[str] | None = None,
        min_depth: float = DEFAULT_MIN_DEPTH,
        max_depth: float | None = None,
    ) -> None:
        self.num_classes = num_classes
        self.min_depth = min_depth
        self.max_depth = max_depth
        self._requested = None if tasks is None else _check_tasks(tasks)
        # Validate the depth range up front, whatever the tasks.
        DepthAccumulator(min_depth, max_depth)
        self.reset()

    @property
    def tasks(self) -> tuple[str, ...] | None:
        """The evaluated task keys, or None before the first update when not given."""
        return self._tasks

    def _build(self, tasks: tuple[str, ...]) -> None:
        self._accumulators = {
            task: get_task(task).accumulator(self.num_classes, self.min_depth, self.max_depth)
            for task in tasks
        }
        self._tasks = tasks

    def update(self, predictions: Mapping[str, Any], targets: Mapping[str, Any]) -> None:
        """Adds one batch.

        Args:
            predictions: Task key -> numpy array (semseg class ids [N,H,W], depth
                metres [N,H,W], normals [N,H,W,3]).
            targets: Task key -> numpy array of the same shape (plus any extra keys).

        Raises:
            DataError: unknown prediction keys, a task missing from a batch, or bad arrays.
        """
        known = task_names()
        unknown = sorted(set(predictions) - set(known))
        if unknown:
            raise DataError(
                f"predictions have unknown keys {unknown}. Expected task keys from {list(known)}."
            )
        if self._tasks is None:
            found = ordered_tasks(task for task in predictions if task in targets)
            if not found:
                raise DataError(
                    f"no task to evaluate: predictions have {sorted(predictions)} and targets "
                    f"have {sorted(targets)}; a task must be in both."
                )
            self._build(found)
        for task in self._tasks:
            for name, source in (("predictions", predictions), ("targets", targets)):
                if task not in source:
                    raise DataError(
                        f"batch {self.num_batches}: {name} lack task {task!r} (have "
                        f"{sorted(source)}); every batch must carry the evaluated tasks "
                        f"{list(self._tasks)}."
                    )
            self._accumulators[task].update(
                np.asarray(predictions[task]), np.asarray(targets[task])
            )
        self.num_batches += 1

    def result(self) -> dict[str, float]:
        """Returns the metrics of every evaluated task, keys in report order.

        Raises:
            DataError: if nothing was seen, or a task saw no valid pixel.
        """
        if self._tasks is None or self.num_batches == 0:
            raise DataError("no batch was evaluated: the dataset (or --max_examples) is empty.")
        merged: dict[str, float] = {}
        for accumulator in self._accumulators.values():
            merged.update(accumulator.result())
        return {name: float(merged[name]) for name in metric_names() if name in merged}

    def class_scores(self) -> dict[str, dict[str, np.ndarray]]:
        """Task → per-class scores, for each evaluated task that predicts classes
        (:func:`ka_tf.metrics.semseg.class_scores`)."""
        return {
            task: accumulator.class_scores()
            for task, accumulator in self._accumulators.items()
            if hasattr(accumulator, "class_scores")
        }

    def reset(self) -> None:
        """Forgets every batch (tasks given to the constructor are kept)."""
        self.num_batches = 0
        self._tasks = None
        self._accumulators = {}
        if self._requested is not None:
            self._build(self._requested)


def compute_metrics(
    predictions: Mapping[str, Any],
    targets: Mapping[str, Any],
    num_classes: int | None = None,
    *,
    tasks: Sequence[str] | None = None,
    min_depth: float = DEFAULT_MIN_DEPTH,
    max_depth: float | None = None,
) -> dict[str, float]:
    """Computes the dense-prediction metrics of whole numpy arrays in one call.

    Conventions (all pooled over every valid pixel of the dataset, computed once):

    - **semseg** — predictions: integer class ids ``[N, H, W]`` (argmax of the
      logits); targets: class ids ``[N, H, W]`` (uint8), ``255`` ignored. One
      confusion matrix over the dataset. ``semseg/miou``: mean IoU over classes
      whose union is non-empty; ``semseg/pixel_acc``: correct / valid pixels;
      ``semseg/mean_acc``: mean recall over classes present in the targets.
      Target ids ``>= num_classes`` (other than 255) and prediction ids outside
      ``[0, num_classes)`` raise :class:`~ka_tf.errors.DataError`.
    - **depth** — ``[N, H, W]`` metres. Valid target pixels: finite and ``> 0``
      and, if ``max_depth`` is given, ``<= max_depth``. Predictions clamped to
      ``[min_depth, max_depth]``. ``abs_rel`` = mean(|p-t|/t), ``sq_rel`` =
      mean((p-t)²/t), ``rmse`` = sqrt(mean((p-t)²)), ``rmse_log`` =
      sqrt(mean((ln p - ln t)²)), ``log10`` = mean(|log10 p - log10 t|),
      ``delta{k}`` = fraction with max(p/t, t/p) < 1.25**k.
    - **normals** — ``[N, H, W, 3]``. Valid where the target norm is ``> 0.5``;
      predictions normalised first. Angles in degrees: ``mean_angle``,
      ``median_angle`` (0.01° histogram, within 0.005° of exact), and
      ``within_{11.25,22.5,30}`` = fraction of pixels with angle below the bound.
    - Fractions (``pixel_acc``, ``mean_acc``, ``miou``, ``delta*``, ``within_*``)
      are in [0, 1], not percent.

    Args:
        predictions: Task key -> array, for the tasks to evaluate.
        targets: Task key -> array of the same shape; extra keys are ignored.
        num_classes: Number of semseg classes (required if semseg is evaluated).
        tasks: Tasks to evaluate; default: the task keys in both dicts.
        min_depth: Lower clamp of depth predictions in metres.
        max_depth: Upper clamp of depth predictions; also masks targets beyond it.

    Returns:
        The keys ``semseg/*``, ``depth/*``, ``normals/*`` of the evaluated tasks.

    Raises:
        DataError: mismatched shapes, out-of-range class ids, non-finite
            predictions, no valid pixel, or no common task.
        ConfigError: missing ``num_classes`` for semseg, bad depth range or tasks.

    Example:
        >>> compute_metrics({"depth": np.array([[2.0]])}, {"depth": np.array([[1.0]])})
        {'depth/abs_rel': 1.0, ...}
    """
    metrics = DenseMetrics(num_classes, tasks, min_depth=min_depth, max_depth=max_depth)
    metrics.update(predictions, targets)
    return metrics.result()
