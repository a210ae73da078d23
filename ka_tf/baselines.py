"""Trivial baselines a trained teacher must beat: one constant prediction per task.

Each task fits its own constant (:meth:`ka_tf.tasks.Task.baseline_constant`):

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

from ka_tf.errors import ConfigError, DataError
from ka_tf.tasks import get_task


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
        task: The task name.
        value: What the constant means: a class id (semseg), metres (depth), a unit
            3-vector (normals).
        output: The per-pixel output vector the baseline model broadcasts.
        num_classes: Logit count of a model with classes (None for other tasks).
        description: One line for reports, e.g. ``"majority class 0 (36.9% of pixels)"``.
        pixels: Valid training pixels the constant was fitted on.
    """

    task: str
    value: Any
    output: np.ndarray
    num_classes: int | None
    description: str
    pixels: int

    def model(self) -> keras.Model:
        """A Keras model that predicts this constant for any ``[B, H, W, 3]`` input."""
        images = keras.Input((None, None, 3), dtype="float32", name="images")
        output = _ConstantPrediction(self.output, name=self.task)(images)
        return keras.Model(images, {self.task: output}, name=f"baseline_{self.task}")


def fit_constant_baseline(
    dataset: tf.data.Dataset, task: str, num_classes: int | None = None, max_batches: int = 50
) -> ConstantBaseline:
    """Fits the trivial constant for ``task`` on up to ``max_batches`` labelled batches
    (:meth:`ka_tf.tasks.Task.baseline_sums` and ``baseline_constant``).

    Args:
        dataset: Batched dicts with the ``task`` label (:mod:`ka_tf.data` contract).
        task: A registered task name.
        num_classes: Class count (required for semseg).
        max_batches: Batches read (the training streams are infinite).

    Raises:
        ConfigError: unknown task, or semseg without ``num_classes``.
        DataError: the batches hold no ``task`` label or no valid pixel of it.
    """
    definition = get_task(task)
    if definition.has_classes and not num_classes:
        raise ConfigError(f"the {task} baseline needs num_classes.")
    total, pixels = None, 0
    for batch in dataset.take(max_batches):
        if task not in batch:
            raise DataError(f"the training batches have no {task!r} label (keys {sorted(batch)}).")
        sums, count = definition.baseline_sums(batch[task].numpy(), num_classes)
        total = sums if total is None else total + sums
        pixels += count
    if pixels == 0:
        raise DataError(f"no valid {task!r} pixel in {max_batches} training batches.")
    value, output, description = definition.baseline_constant(total, pixels, num_classes)
    return ConstantBaseline(task, value, output, num_classes, description, pixels)
