"""Scene-parsing losses: cross-entropy to labels, KL/CE to a teacher's logits."""

from __future__ import annotations

import keras
from keras import ops

from ka_tf.constants import IGNORE_LABEL
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


@keras.saving.register_keras_serializable(package="ka_tf")
class HardTargetCrossEntropy(keras.losses.Loss):
    """Cross-entropy of the student's logits to the teacher's argmax classes.

    ``y_true`` is the teacher's logits [B, H, W, C], or already its classes [B, H, W]
    (a teacher-target cache stores them: ``reads_target_classes``), where 255 — a
    pixel padded by augmentation — is ignored.
    """

    #: Only the teacher's argmax matters, so a cache may store the classes alone.
    reads_target_classes = True

    def __init__(self, ignore_label: int = IGNORE_LABEL, name="semseg_hard_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        if len(y_true.shape) == 4:
            targets = ops.argmax(ops.cast(y_true, "float32"), axis=-1)
            ce = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
            return ops.mean(ce, axis=(1, 2))
        labels = ops.cast(y_true, "int32")
        valid = ops.not_equal(labels, self.ignore_label)
        safe = ops.where(valid, labels, ops.zeros_like(labels))
        ce = keras.losses.sparse_categorical_crossentropy(safe, logits, from_logits=True)
        return masked_mean_per_sample(ce, valid)

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label}
