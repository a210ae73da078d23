"""Running one resumable training phase with ``Model.fit``.

A phase is ``total_steps`` optimizer steps cut into epochs of ``steps_per_epoch``.
After every epoch a :class:`~ka_tf.training.checkpoint.TrainingCheckpoint` is
written; a restarted run restores the newest one, skips the data it had already
consumed (the input pipeline is deterministic) and goes on at the next epoch. A
non-finite loss stops the phase at once without saving, naming the loss term, so
the last good checkpoint stays intact.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from ka_tf.errors import TrainingError
from ka_tf.training.checkpoint import TrainingCheckpoint


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose logged loss terms are not finite."""

    def __init__(self, steps_per_epoch: int):
        super().__init__()
        self.steps_per_epoch = int(steps_per_epoch)
        self.failure: dict[str, Any] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        bad = [(k, float(v)) for k, v in (logs or {}).items() if not np.isfinite(float(v))]
        if not bad:
            return
        terms = [item for item in bad if item[0] != "loss"] or bad
        self.failure = {
            "term": terms[0][0],
            "value": terms[0][1],
            "step": self._epoch * self.steps_per_epoch + batch + 1,
        }
        self.model.stop_training = True


class EpochCheckpointer(keras.callbacks.Callback):
    """Saves a checkpoint after every epoch unless the guard saw a non-finite loss."""

    def __init__(self, checkpoint: TrainingCheckpoint, guard: NonFiniteGuard, progress: Mapping):
        super().__init__()
        self.checkpoint = checkpoint
        self.guard = guard
        self.progress = dict(progress)

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failure is None:
            self.checkpoint.save(epoch + 1, {**self.progress, "logs": _floats(logs)})


def _floats(logs: Mapping | None) -> dict[str, float]:
    return {k: float(v) for k, v in (logs or {}).items()}


def phase_epochs(total_steps: int, steps_per_epoch: int) -> int:
    """Epochs needed for ``total_steps`` (the last epoch is completed, never cut)."""
    return max(1, math.ceil(total_steps / steps_per_epoch))


def run_phase(
    model: keras.Model,
    dataset: tf.data.Dataset,
    *,
    name: str,
    total_steps: int,
    steps_per_epoch: int,
    checkpoint: TrainingCheckpoint,
    log_dir: str | None = None,
    validation_data: tf.data.Dataset | None = None,
    validation_steps: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
) -> dict[str, Any]:
    """Trains ``model`` (compiled, optimizer built) for one phase, resuming if possible.

    Args:
        model: A compiled model whose optimizer variables already exist.
        dataset: An infinitely repeating, deterministic dataset.
        name: Phase name, for logs and error messages.
        total_steps: Optimizer steps in the phase (rounded up to whole epochs).
        steps_per_epoch: Steps between checkpoints.
        checkpoint: Where the phase's checkpoints live.
        log_dir: TensorBoard log directory, or None.
        validation_data: Optional validation dataset evaluated after each epoch.
        validation_steps: Batches of ``validation_data`` per evaluation.
        callbacks: Extra callbacks.
        verbose: ``fit`` verbosity (progress bar by default).

    Returns:
        The last epoch's logs, plus ``"resumed_from_epoch"``.

    Raises:
        TrainingError: On a non-finite loss (naming the term and step).
    """
    epochs = phase_epochs(total_steps, steps_per_epoch)
    progress = checkpoint.restore_latest()
    initial_epoch = int(progress["epoch"]) if progress else 0
    if progress:
        logging.info(
            "%s: resumed from %s (epoch %d/%d).", name, checkpoint.latest(), initial_epoch, epochs
        )
    if initial_epoch >= epochs:
        return {**progress.get("logs", {}), "resumed_from_epoch": initial_epoch}
    guard = NonFiniteGuard(steps_per_epoch)
    all_callbacks = [guard, EpochCheckpointer(checkpoint, guard, {"phase": name}), *callbacks]
    if log_dir:
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(log_dir, name)))
    history = model.fit(
        dataset.skip(initial_epoch * steps_per_epoch),
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation_data,
        validation_steps=validation_steps,
        callbacks=all_callbacks,
        verbose=verbose,
    )
    if guard.failure is not None:
        failure = guard.failure
        raise TrainingError(
            f"{name}: non-finite loss at step {failure['step']}: {failure['term']} = "
            f"{failure['value']}. Stopped; the last good checkpoint is kept in "
            f"{checkpoint.latest() or checkpoint.directory + ' (none yet)'}. Lower the learning "
            f"rate or that term's weight, or check the input data."
        )
    last = {k: float(v[-1]) for k, v in history.history.items()}
    return {**last, "resumed_from_epoch": initial_epoch}
