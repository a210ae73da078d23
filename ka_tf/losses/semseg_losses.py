"""Scene-parsing losses: cross-entropy to labels, KL/CE to a teacher's logits."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from ka_tf.constants import IGNORE_LABEL
from ka_tf.errors import ConfigError
from ka_tf.losses.masking import masked_mean_per_sample


@keras.saving.register_keras_serializable(package="ka_tf")
class SemsegCrossEntropy(keras.losses.Loss):
    """Pixel-wise cross-entropy to class-id labels [B, H, W]; 255 is ignored.

    ``y_pred`` are logits [B, H, W, C]. Returns the mean over valid pixels per image.
    """

    def __init__(self, ignore_label: int = IGNORE_LABEL, name="semseg_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        labels = ops.cast(y_true, "int32")
        valid = ops.not_equal(labels, self.ignore_label)
        safe = ops.where(valid, labels, ops.zeros_like(labels))
        ce = keras.losses.sparse_categorical_crossentropy(
            safe, ops.cast(y_pred, "float32"), from_logits=True
        )
        return masked_mean_per_sample(ce, valid)

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label}


@keras.saving.register_keras_serializable(package="ka_tf")
class SoftTargetKLDivergence(keras.losses.Loss):
    """KL(teacher ‖ student) of softmaxes at temperature T, times T² (Hinton et al.).

    ``y_true`` and ``y_pred`` are logits [B, H, W, C] (teacher, student). Returns the
    mean over pixels per image.
    """

    def __init__(self, temperature: float = 2.0, name="semseg_kl", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)

    def call(self, y_true, y_pred):
        t = self.temperature
        teacher_log_p = ops.log_softmax(ops.cast(y_true, "float32") / t, axis=-1)
        student_log_p = ops.log_softmax(ops.cast(y_pred, "float32") / t, axis=-1)
        kl = ops.sum(ops.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
        return ops.mean(kl, axis=(1, 2)) * (t * t)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def _check_class_balance(power: float) -> float:
    """``power`` as a float, or a ConfigError when it is not >= 0."""
    if not float(power) >= 0:
        raise ConfigError(
            f"class_balance must be >= 0 (0: no balancing, 1: median-frequency). "
            f"Received: class_balance={power}."
        )
    return float(power)


def balanced_class_weights(frequencies: Sequence[float], power: float) -> np.ndarray:
    """Per-class weights ``(median f / f_c) ** power`` from class pixel frequencies.

    Median-frequency balancing (Eigen & Fergus 2015; SegNet) at ``power`` 1, none at 0,
    and in between a softer one. The weights are scaled so that their mean over
    pixels is 1 (``sum_c f_c w_c = 1``), so the loss keeps its unweighted scale. A
    class that never occurs (``f_c = 0``) gets weight 0: it is never a target.

    Args:
        frequencies: ``[C]`` pixel counts or fractions of each class (any scale).
        power: The balancing strength, >= 0.

    Returns:
        ``[C]`` float32 weights.
    """
    frequencies = np.asarray(frequencies, dtype=np.float64)
    if frequencies.ndim != 1 or not np.all(frequencies >= 0) or not frequencies.sum() > 0:
        raise ConfigError(
            f"class frequencies must be a non-negative [C] vector with some pixels. "
            f"Received: {frequencies.tolist()}."
        )
    power = _check_class_balance(power)
    share = frequencies / frequencies.sum()
    present = share > 0
    weights = np.zeros_like(share)
    weights[present] = (np.median(share[present]) / share[present]) ** power
    weights /= float(np.sum(share * weights))
    return weights.astype(np.float32)


@keras.saving.register_keras_serializable(package="ka_tf")
class HardTargetCrossEntropy(keras.losses.Loss):
    """Cross-entropy of the student's logits to the teacher's argmax classes.

    ``y_true`` is the teacher's logits [B, H, W, C], or already its classes [B, H, W]
    (a teacher-target cache stores them: ``reads_target_classes``), where 255 — a
    pixel padded by augmentation — is ignored.

    Distilling a teacher's argmax starves its rare classes: a student that never
    predicts them loses little loss. ``class_balance`` > 0 weights each pixel by its
    target class (:func:`balanced_class_weights` of the teacher targets' class
    frequencies on the transfer split, which an amalgamation run measures from its
    target cache and passes to :meth:`set_class_frequencies` before training).

    Args:
        ignore_label: Target value of pixels left out.
        class_balance: Balancing power (0: none, 1: median-frequency).
        class_weights: ``[C]`` weights, set directly (e.g. when reloading the loss).
    """

    #: Only the teacher's argmax matters, so a cache may store the classes alone.
    reads_target_classes = True

    def __init__(
        self,
        ignore_label: int = IGNORE_LABEL,
        class_balance: float = 0.0,
        class_weights: Sequence[float] | None = None,
        name="semseg_hard_ce",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.ignore_label = int(ignore_label)
        self.class_balance = _check_class_balance(class_balance)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def set_class_frequencies(self, frequencies: Sequence[float]) -> list[float]:
        """Sets the weights from the targets' class frequencies; returns them."""
        self.class_weights = balanced_class_weights(frequencies, self.class_balance).tolist()
        return self.class_weights

    def _pixel_weights(self, labels):
        if self.class_weights is None:
            if self.class_balance > 0:
                raise ConfigError(
                    f"semseg hard_ce has class_balance={self.class_balance} but no class "
                    f"weights: they are measured from the teacher-target cache. Set "
                    f"amalgamate.cache_targets = True, or class_balance = 0."
                )
            return None
        return ops.take(ops.convert_to_tensor(self.class_weights, "float32"), labels)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        if len(y_true.shape) == 4:
            labels = ops.cast(ops.argmax(ops.cast(y_true, "float32"), axis=-1), "int32")
            valid = ops.ones_like(labels, dtype="bool")
        else:
            labels = ops.cast(y_true, "int32")
            valid = ops.not_equal(labels, self.ignore_label)
            labels = ops.where(valid, labels, ops.zeros_like(labels))
        ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        weights = self._pixel_weights(labels)
        if weights is not None:
            ce = ce * weights
        return masked_mean_per_sample(ce, valid)

    def get_config(self):
        return {
            **super().get_config(),
            "ignore_label": self.ignore_label,
            "class_balance": self.class_balance,
            "class_weights": self.class_weights,
        }
