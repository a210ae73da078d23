"""Surface-normal loss: 1 − cosine similarity over valid target pixels (|n| > 0.5)."""

from __future__ import annotations

import keras
from keras import ops

from ka_tf.losses.masking import masked_mean_per_sample


@keras.saving.register_keras_serializable(package="ka_tf")
class CosineDistance(keras.losses.Loss):
    """Mean of 1 − cos(pred, target) per image, over pixels whose target has norm > 0.5."""

    def __init__(self, name="normals_cosine", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        true_norm = ops.sqrt(ops.sum(ops.square(y_true), axis=-1))
        pred_norm = ops.sqrt(ops.sum(ops.square(y_pred), axis=-1))
        cosine = ops.sum(y_true * y_pred, axis=-1) / ops.maximum(true_norm * pred_norm, 1e-8)
        return masked_mean_per_sample(1.0 - cosine, true_norm > 0.5)
