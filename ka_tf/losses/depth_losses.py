"""Depth losses over valid target pixels (target > 0): L1, log-L1, berHu, scale-invariant log."""

from __future__ import annotations

import keras
from keras import ops

from ka_tf.losses.masking import masked_mean_per_sample

_EPS = 1e-6


def _valid_and_cast(y_true, y_pred):
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    valid = ops.logical_and(y_true > 0, ops.isfinite(y_true))
    safe_true = ops.where(valid, y_true, ops.ones_like(y_true))
    return safe_true, y_pred, valid


@keras.saving.register_keras_serializable(package="ka_tf")
class DepthL1(keras.losses.Loss):
    """Mean |pred − target| over valid pixels; with ``log_space`` on log-depths."""

    def __init__(self, log_space: bool = True, name="depth_l1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.log_space = bool(log_space)

    def call(self, y_true, y_pred):
        target, pred, valid = _valid_and_cast(y_true, y_pred)
        if self.log_space:
            target, pred = ops.log(target), ops.log(ops.maximum(pred, _EPS))
        return masked_mean_per_sample(ops.abs(pred - target), valid)

    def get_config(self):
        return {**super().get_config(), "log_space": self.log_space}


@keras.saving.register_keras_serializable(package="ka_tf")
class BerHu(keras.losses.Loss):
    """Reverse Huber (Laina et al. 2016): L1 below c, (x² + c²)/2c above; c = 0.2·max|x|."""

    def __init__(self, threshold_fraction: float = 0.2, name="depth_berhu", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold_fraction = float(threshold_fraction)

    def call(self, y_true, y_pred):
        target, pred, valid = _valid_and_cast(y_true, y_pred)
        error = ops.abs(pred - target) * ops.cast(valid, "float32")
        c = ops.maximum(self.threshold_fraction * ops.max(error, axis=(1, 2), keepdims=True), _EPS)
        berhu = ops.where(error <= c, error, (ops.square(error) + ops.square(c)) / (2.0 * c))
        return masked_mean_per_sample(berhu, valid)

    def get_config(self):
        return {**super().get_config(), "threshold_fraction": self.threshold_fraction}


@keras.saving.register_keras_serializable(package="ka_tf")
class ScaleInvariantLogLoss(keras.losses.Loss):
    """Eigen et al. 2014: mean(d²) − λ·mean(d)², d = log pred − log target, λ = 0.5."""

    def __init__(self, variance_weight: float = 0.5, name="depth_silog", **kwargs):
        super().__init__(name=name, **kwargs)
        self.variance_weight = float(variance_weight)

    def call(self, y_true, y_pred):
        target, pred, valid = _valid_and_cast(y_true, y_pred)
        d = ops.log(ops.maximum(pred, _EPS)) - ops.log(target)
        mean_d = masked_mean_per_sample(d, valid)
        mean_d2 = masked_mean_per_sample(ops.square(d), valid)
        return mean_d2 - self.variance_weight * ops.square(mean_d)

    def get_config(self):
        return {**super().get_config(), "variance_weight": self.variance_weight}
