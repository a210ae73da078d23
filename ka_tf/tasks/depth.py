"""Depth: metres per pixel (0 = invalid), scored by abs rel, RMSE and the δ thresholds."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from keras import ops

from ka_tf.constants import DEPTH
from ka_tf.tasks.base import Task, TaskMetrics

# Raw log-depth is clipped before exp so a diverging head cannot overflow.
_LOG_DEPTH_CLIP = 12.0
# Fraction of a resized pixel's footprint that must be valid for it to stay valid.
MIN_VALID_WEIGHT = 0.5


def masked_bilinear(values: tf.Tensor, valid: tf.Tensor, hw: tf.Tensor) -> tf.Tensor:
    """Bilinear resize of ``values`` [H, W, C] using only ``valid`` [H, W] pixels; 0
    where less than half of a pixel's footprint is valid."""
    weight = tf.cast(valid, tf.float32)[..., None]
    summed = tf.image.resize(values * weight, hw, method="bilinear")
    total = tf.image.resize(weight, hw, method="bilinear")
    mean = summed / tf.maximum(total, 1e-6)
    return tf.where(total >= MIN_VALID_WEIGHT, mean, tf.zeros_like(mean))


class Depth(Task):
    """Labels: metres ``[H, W]``, 0 where invalid. Head: metres ``[B, H, W]``.

    The head's ``depth_activation`` maps its raw channel to metres: ``exp`` (the conv
    predicts log-depth), ``softplus``, ``relu`` or ``identity``. Losses: ``l1``,
    ``log_l1``, ``berhu``, ``silog`` (valid where the target > 0). Labels resize by
    nearest neighbour or ``"masked"`` bilinear over valid pixels.
    """

    name = DEPTH
    output_form = "metres "
    pad_value = 0.0
    default_loss = "log_l1"

    def head_output(self, raw: Any, options) -> Any:
        raw = raw[..., 0]
        activation = options.get("depth_activation", "exp")
        if activation == "exp":
            return ops.exp(ops.clip(raw, -_LOG_DEPTH_CLIP, _LOG_DEPTH_CLIP))
        if activation == "softplus":
            return ops.softplus(raw)
        if activation == "relu":
            return ops.relu(raw)
        return raw

    # ``inverse``: disparity-like 1/metres (a teacher's relative depth is not metric and
    # is not accepted: the student's depth head predicts metres).
    teacher_forms = ("metres", "inverse")

    def teacher_target(self, raw: tf.Tensor, form: str) -> tf.Tensor:
        values = tf.cast(raw[..., 0], tf.float32)
        if form == "inverse":
            return 1.0 / tf.maximum(values, 1e-6)
        return tf.maximum(values, 0.0)

    def losses(self):
        from ka_tf.losses.depth_losses import BerHu, DepthL1, ScaleInvariantLogLoss

        return {
            "l1": lambda **kw: DepthL1(log_space=False, **kw),
            "log_l1": lambda **kw: DepthL1(log_space=True, **kw),
            "berhu": BerHu,
            "silog": ScaleInvariantLogLoss,
        }

    def resize_label(self, values: tf.Tensor, hw: tf.Tensor, depth_method: str) -> tf.Tensor:
        if depth_method == "nearest":
            return super().resize_label(values, hw, depth_method)
        return masked_bilinear(values[..., None], values > 0, hw)[..., 0]

    def metrics(self) -> TaskMetrics:
        from ka_tf.metrics import depth as metrics

        errors = (metrics.ABS_REL, metrics.SQ_REL, metrics.RMSE, metrics.RMSE_LOG, metrics.LOG10)
        headline = (metrics.ABS_REL, metrics.RMSE, metrics.DELTA1)
        return TaskMetrics(metrics.DEPTH_METRICS, frozenset(errors), metrics.RMSE, headline)

    def accumulator(self, num_classes: int | None, min_depth: float, max_depth: float | None):
        from ka_tf.metrics.depth import DepthAccumulator

        return DepthAccumulator(min_depth, max_depth)

    def image_statistics(self, prediction, target, num_classes, min_depth, max_depth):
        from ka_tf.metrics import depth as depth_lib

        sums = depth_lib.depth_sums(prediction, target, min_depth, max_depth)
        return np.array([sums[key] for key in depth_lib.SUM_KEYS], np.float64)

    def pooled_metrics(self, summed: np.ndarray) -> dict[str, float]:
        from ka_tf.metrics import depth as depth_lib

        return depth_lib.metrics_from_sums(
            dict(zip(depth_lib.SUM_KEYS, (float(v) for v in summed), strict=True))
        )

    def baseline_constant(self, sums: np.ndarray, pixels: int, num_classes: int | None):
        value = float(sums[0] / pixels)
        return value, np.array([value], np.float32), f"mean depth {value:.3f} m"

    def render(self, values, palette=None, value_range=(None, None)):
        from ka_tf.visualize import colorize_depth

        return colorize_depth(values, *value_range)

    def export_outputs(self, output: tf.Tensor, max_depth: float | None = None):
        depth = tf.cast(output, tf.float32)
        if depth.shape.rank == 4:
            depth = depth[..., 0]
        if max_depth is not None:
            depth = tf.clip_by_value(depth, 0.0, float(max_depth))
        return {DEPTH: depth}


DEPTH_TASK = Depth()
