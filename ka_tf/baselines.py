"""Trivial baselines a trained teacher must beat: one constant prediction per task.

* ``semseg``: the majority class of the training labels, at every pixel;
* ``depth``: the mean valid training depth (metres), at every pixel;
* ``normals``: the normalised mean valid training normal, at every pixel.

The constants are fitted on training batches and wrapped in a Keras model that
follows the :mod:`ka_tf.evaluation` contract, so a baseline is scored by exactly
the code (and the gin-bound depth range) that scores the teacher.

Example:
    >>> baseline = fit_constant_baseline(train_dataset, "depth", max_batches=50)
    >>> evaluate_model(baseline.model(), test_dataset)["depth/rmse"]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ka_tf.constants import DEPTH, IGNORE_LABEL, NORMALS, SEMSEG
from ka_tf.errors import ConfigError, DataError


class _ConstantPrediction(keras.layers.Layer):
    """Broadcasts a fixed vector to every pixel of the input images."""

    def __init__(self, value: np.ndarray, **kwargs: Any) -> None:
        # float32 like every head, so a mixed global policy (bf16 inputs) still adds
        # a float32 constant to float32 pixels.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.value = np.asarray(value, np.float32)

    def call(self, images):
        pixels = ops.zeros_like(images[..., :1])  # [B, H, W, 1]
        return pixels + ops.convert_to_tensor(self.value)


@dataclasses.dataclass(frozen=True)
class ConstantBaseline:
    """A task's constant prediction and how it was fitted.

    Attributes:
        task: ``semseg``, ``depth`` or ``normals``.
        value: Class id (semseg), metres (depth) or a unit 3-vector (normals).
        num_classes: Logit count of the semseg model (None for other tasks).
        description: One line for reports, e.g. ``"majority class 0 (36.9% of pixels)"``.
        pixels: Valid training pixels the constant was fitted on.
    """

    task: str
    value: Any
    num_classes: int | None
    description: str
    pixels: int

    def model(self) -> keras.Model:
        """A Keras model that predicts this constant for any ``[B, H, W, 3]`` input."""
        images = keras.Input((None, None, 3), dtype="float32", name="images")
        if self.task == SEMSEG:
            logits = np.zeros(self.num_classes, np.float32)
            logits[int(self.value)] = 1.0
            output = _ConstantPrediction(logits, name=SEMSEG)(images)
        elif self.task == DEPTH:
            output = _ConstantPrediction([float(self.value)], name=DEPTH)(images)
        else:
            output = _ConstantPrediction(self.value, name=NORMALS)(images)
        return keras.Model(images, {self.task: output}, name=f"baseline_{self.task}")


def fit_constant_baseline(
    dataset: tf.data.Dataset, task: str, num_classes: int | None = None, max_batches: int = 50
) -> ConstantBaseline:
    """Fits the trivial constant for ``task`` on up to ``max_batches`` labelled batches.

    Args:
        dataset: Batched dicts with the ``task`` label (:mod:`ka_tf.data` contract).
        task: ``semseg``, ``depth`` or ``normals``.
        num_classes: Semseg class count (required for semseg).
        max_batches: Batches read (the training streams are infinite).

    Raises:
        ConfigError: unknown task, or semseg without ``num_classes``.
        DataError: the batches hold no ``task`` label or no valid pixel of it.
    """
    if task not in (SEMSEG, DEPTH, NORMALS):
        raise ConfigError(f"no baseline for task {task!r}; expected semseg, depth or normals.")
    if task == SEMSEG and not num_classes:
        raise ConfigError("the semseg baseline needs num_classes.")
    counts = np.zeros(num_classes or 0, np.int64)
    total, pixels = np.zeros(3, np.float64), 0
    for batch in dataset.take(max_batches):
        if task not in batch:
            raise DataError(f"the training batches have no {task!r} label (keys {sorted(batch)}).")
        label = batch[task].numpy()
        if task == SEMSEG:
            valid = label[label != IGNORE_LABEL].astype(np.int64)
            counts += np.bincount(valid[valid < num_classes], minlength=num_classes)
            pixels += valid.size
        elif task == DEPTH:
            valid = label[np.isfinite(label) & (label > 0)].astype(np.float64)
            total[0] += valid.sum()
            pixels += valid.size
        else:
            vectors = label.reshape(-1, 3).astype(np.float64)
            vectors = vectors[np.linalg.norm(vectors, axis=1) > 0.5]
            total += vectors.sum(axis=0)
            pixels += len(vectors)
    if pixels == 0:
        raise DataError(f"no valid {task!r} pixel in {max_batches} training batches.")
    if task == SEMSEG:
        value = int(np.argmax(counts))
        description = f"majority class {value} ({100.0 * counts[value] / pixels:.1f}% of pixels)"
    elif task == DEPTH:
        value = float(total[0] / pixels)
        description = f"mean depth {value:.3f} m"
    else:
        norm = np.linalg.norm(total)
        if norm == 0:
            raise DataError("the mean training normal is zero; no direction to predict.")
        value = [float(v) for v in total / norm]
        description = "mean normal ({:.3f}, {:.3f}, {:.3f})".format(*value)
    classes = num_classes if task == SEMSEG else None
    return ConstantBaseline(task, value, classes, description, pixels)
