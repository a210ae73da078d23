"""Feature-level distillation term: mean squared error between feature maps."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ka_tf")
class FeatureMSE(keras.losses.Loss):
    """Mean over positions and channels of (student − teacher)², per image."""

    def __init__(self, name="feature_mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        diff = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
        return ops.mean(ops.square(diff), axis=(1, 2, 3))
