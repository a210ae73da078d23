"""Dense-prediction metrics pooled over a dataset: scene parsing, depth, normals.

- :func:`compute_metrics`: one call over whole numpy arrays (conventions in its
  docstring); :class:`DenseMetrics`: the same, streaming over batches.
- Per-task accumulators: :class:`SemsegAccumulator` (confusion matrix),
  :class:`DepthAccumulator` (pooled sums), :class:`NormalsAccumulator` (angle
  histogram + exact sums).
- :func:`relative_change`: the multi-task headline Δm of a student vs teachers.
- :func:`format_table` / :func:`format_markdown_table`: readable reports.

Example:
    >>> from ka_tf.metrics import compute_metrics, format_table
    >>> scores = compute_metrics(predictions, targets, num_classes=19)
    >>> print(format_table({"student": scores}))
"""

from ka_tf.metrics.dense_metrics import DenseMetrics, compute_metrics
from ka_tf.metrics.depth import DepthAccumulator
from ka_tf.metrics.headline import DELTA_M, DELTA_M_TASKS, relative_change
from ka_tf.metrics.names import (
    headline_metrics,
    higher_is_better,
    lower_is_better_metrics,
    metric_names,
    primary_metrics,
)
from ka_tf.metrics.normals import NormalsAccumulator
from ka_tf.metrics.semseg import SemsegAccumulator
from ka_tf.metrics.table import format_markdown_table, format_table

__all__ = [
    "DELTA_M",
    "DELTA_M_TASKS",
    "DenseMetrics",
    "DepthAccumulator",
    "NormalsAccumulator",
    "SemsegAccumulator",
    "compute_metrics",
    "format_markdown_table",
    "format_table",
    "headline_metrics",
    "higher_is_better",
    "lower_is_better_metrics",
    "metric_names",
    "primary_metrics",
    "relative_change",
]
