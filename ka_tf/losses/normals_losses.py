"""Surface-normal losses over valid target pixels (|n| > 0.5): ``cosine`` (1 − cos)
and ``angular`` (the angle itself, in radians)."""

from __future__ import annotations

import keras
from keras import ops

from ka_tf.losses.masking import masked_mean_per_sample

# A target pixel counts where its vector's norm exceeds this (invalid pixels are 0).
_VALID_NORM = 0.5


def _as_float32_with_norm(y_true, y_pred):
    """Both vectors in float32, and the target's norm per pixel (valid: > _VALID_NORM)."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    return y_true, y_pred, ops.sqrt(ops.sum(ops.square(y_true), axis=-1))


@keras.saving.register_keras_serializable(package="ka_tf")
class CosineDistance(keras.losses.Loss):
    """Mean of 1 − cos(pred, target) per image, over pixels whose target has norm > 0.5."""

    def __init__(self, name="normals_cosine", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true, y_pred, true_norm = _as_float32_with_norm(y_true, y_pred)
        pred_norm = ops.sqrt(ops.sum(ops.square(y_pred), axis=-1))
        cosine = ops.sum(y_true * y_pred, axis=-1) / ops.maximum(true_norm * pred_norm, 1e-8)
        return masked_mean_per_sample(1.0 - cosine, true_norm > _VALID_NORM)


@keras.saving.register_keras_serializable(package="ka_tf")
class AngularError(keras.losses.Loss):
    """Mean angle between pred and target (radians) per image, over valid pixels.

    The metric itself (normals' headline is the mean angle), where 1 − cos ≈ θ²/2
    all but stops pulling once an error is a few degrees. The angle is
    ``atan2(|a × b|, a · b)`` rather than ``acos`` (whose slope is infinite at 0°);
    ``epsilon`` under the square root of ``|a × b|²`` keeps the gradient finite where
    the two vectors agree exactly.
    """

    def __init__(self, epsilon: float = 1e-6, name="normals_angular", **kwargs):
        super().__init__(name=name, **kwargs)
        self.epsilon = epsilon

    def call(self, y_true, y_pred):
        y_true, y_pred, true_norm = _as_float32_with_norm(y_true, y_pred)
        (ax, ay, az), (bx, by, bz) = (ops.unstack(v, 3, axis=-1) for v in (y_true, y_pred))
        cross_sq = ops.square(ay * bz - az * by) + ops.square(az * bx - ax * bz)
        cross_sq = cross_sq + ops.square(ax * by - ay * bx)
        sine = ops.sqrt(cross_sq + self.epsilon**2)
        angle = ops.arctan2(sine, ops.sum(y_true * y_pred, axis=-1))
        return masked_mean_per_sample(angle, true_norm > _VALID_NORM)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
