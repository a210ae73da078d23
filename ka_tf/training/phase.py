"""Running one resumable training phase with ``Model.fit``.

A phase is ``total_steps`` optimizer steps cut into epochs of ``steps_per_epoch``.
After every epoch a :class:`~ka_tf.training.checkpoint.TrainingCheckpoint` is
written; a restarted run restores the newest one, skips the data it had already
consumed (the input pipeline is deterministic) and goes on at the next epoch. A
non-finite loss stops the phase at once without saving, naming the loss term, so
the last good checkpoint stays intact.

Data position: a ``tf.data`` pipeline that shuffles with ``reshuffle_each_iteration``
keeps its seed state in the dataset object, shared by every iterator made from it,
and each pass of ``repeat()`` draws new seeds from it. Keras' ``fit`` under a
strategy opens one iterator to learn the batch shapes, then trains on a second one,
whose order depends on how many passes the first pulled (more after skipping the
batches of a resumed run, and however far prefetching went), so a resumed run
would train on other batches than an uninterrupted one. Pass a
zero-argument dataset factory instead: every iterator of the input then builds its
own pipeline from the start (through ``flat_map``), so a phase reads the same
batches however often it is opened and whatever ran before it.

Under ``MultiWorkerMirroredStrategy`` the input goes through
``distribute_datasets_from_function``: every worker builds the pipeline and keeps
its replicas' slices of each global batch (global batch = per-replica batch ×
replicas), so all workers together see exactly the batches of a one-worker run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from ka_tf import distribute
from ka_tf.errors import ConfigError, TrainingError
from ka_tf.training.checkpoint import TrainingCheckpoint

DatasetOrFactory = tf.data.Dataset | Callable[[], tf.data.Dataset]


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
        last = self._epoch * self.steps_per_epoch + batch + 1
        # With steps_per_execution n > 1, Keras reports once per n steps (``batch`` is
        # the last of them), so the first non-finite step is one of those n.
        span = int(getattr(self.model, "steps_per_execution", 1) or 1)
        self.failure = {
            "term": terms[0][0],
            "value": terms[0][1],
            "step": f"step {last}" if span == 1 else f"steps {last - span + 1}-{last}",
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


def _packed(function):
    """``function`` taking one element, for ``map``/``flat_map``, which pass a tuple
    element (``(images, targets)``, a teacher's training pairs) as separate arguments."""

    def call(*parts):
        return function(parts if len(parts) > 1 else parts[0])

    return call


def _worker_slices(dataset: tf.data.Dataset, context: tf.distribute.InputContext):
    """This worker's per-replica batches: its replicas' rows of every global batch.

    This is ka_tf's one input-sharding policy under ``MultiWorkerMirroredStrategy``
    (:data:`ka_tf.data.registry.SHARDING`): every worker runs the whole pipeline and
    keeps its rows, like tf.data's ``AutoShardPolicy.DATA``, so the cluster trains
    on exactly the batches of a one-machine run whatever the dataset's files.

    Training batches have a fixed size (``drop_remainder``), which must divide by the
    replica count. An evaluation input may end with a smaller batch; its size is known
    only at run time, so its rows are split as evenly as possible (replica ``r`` gets
    rows ``r·⌈n/R⌉`` onwards).
    """
    global_batch = dataset.element_spec
    sizes = {s.shape[0] for s in tf.nest.flatten(global_batch) if s.shape.rank}
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    first = context.input_pipeline_id * local
    if sizes == {None}:

        def replica_batches(batch):
            count = tf.shape(tf.nest.flatten(batch)[0])[0]
            per_replica = (count + replicas - 1) // replicas

            def rows(replica):
                start = tf.minimum((first + tf.cast(replica, tf.int32)) * per_replica, count)
                stop = tf.minimum(start + per_replica, count)
                return tf.nest.map_structure(lambda t: t[start:stop], batch)

            return tf.data.Dataset.range(local).map(rows)

        return dataset.flat_map(_packed(replica_batches))
    if len(sizes) != 1:
        raise ConfigError(
            "multi-worker training needs batches of one size; received element shapes "
            f"{global_batch}."
        )
    (size,) = sizes
    if size % replicas:
        raise ConfigError(
            f"the global batch size must be divisible by the number of replicas. Received: "
            f"BATCH_SIZE={size} with {replicas} replicas; use a multiple of {replicas}."
        )
    per_replica = context.get_per_replica_batch_size(size)
    start = first * per_replica
    stop = start + local * per_replica

    def rows(batch):
        return tf.nest.map_structure(lambda t: t[start:stop], batch)

    return dataset.map(_packed(rows)).unbatch().batch(per_replica, drop_remainder=True)


def _distributed(model: keras.Model, make: Callable[[], tf.data.Dataset]):
    strategy = model.distribute_strategy
    if not distribute.is_multi_worker(strategy):
        return make()
    return strategy.distribute_datasets_from_function(
        lambda context: _worker_slices(make(), context)
    )


def training_input(model: keras.Model, dataset: DatasetOrFactory, skip: int = 0):
    """The input ``fit`` gets: ``dataset`` after ``skip`` batches (from a factory, a
    dataset whose every iterator runs a fresh pipeline); under a multi-worker
    strategy, a per-worker distributed dataset.

    Args:
        model: The model being trained (its ``distribute_strategy`` decides).
        dataset: A batched, repeating dataset, or a zero-argument factory of one.
        skip: Global batches already consumed (resuming).
    """

    def make() -> tf.data.Dataset:
        if isinstance(dataset, tf.data.Dataset):
            return dataset.skip(skip) if skip else dataset

        @tf.autograph.experimental.do_not_convert
        def fresh(_):
            data = dataset()
            return data.skip(skip) if skip else data

        # The pipeline is built inside the flat_map function, so each iterator gets
        # its own copy of every stateful part (shuffle and random seeds).
        return tf.data.Dataset.range(1).flat_map(fresh)

    return _distributed(model, make)


def evaluation_input(model: keras.Model, dataset: DatasetOrFactory, batches: int | None = None):
    """The input ``evaluate`` (or ``fit``'s validation) gets: the first ``batches``
    batches of ``dataset`` (all if None), distributed like :func:`training_input`.

    Taking the batches here, not through ``evaluate(steps=...)``, makes the count
    exact: Keras runs ``steps_per_execution`` steps per call, so ``steps=4`` with 10
    steps per execution evaluates up to 10 batches.

    Args:
        model: The model evaluated (its ``distribute_strategy`` decides).
        dataset: A batched dataset, or a zero-argument factory of one.
        batches: How many batches; None for the whole dataset.
    """

    def make() -> tf.data.Dataset:
        data = dataset if isinstance(dataset, tf.data.Dataset) else dataset()
        return data.take(batches) if batches is not None else data

    return _distributed(model, make)


def execution_steps(requested: int, steps_per_epoch: int) -> int:
    """Steps ``fit`` runs per call of its compiled train function (Keras
    ``steps_per_execution``): the largest divisor of ``steps_per_epoch`` not above
    ``requested``, so every epoch (and its checkpoint) still ends on its own step.

    Running several steps in one graph call removes the per-step Python and
    callback work: the demo's semseg teacher trains ~25% faster per step on this
    CPU with 10 than with 1 (BUILD.md). Callbacks then see every ``n``-th step, so a
    non-finite loss is caught within ``n`` steps — still before the epoch's
    checkpoint is written.

    Raises:
        ConfigError: ``requested`` < 1.
    """
    if requested < 1:
        raise ConfigError(
            f"steps_per_execution must be >= 1. Received: steps_per_execution={requested}."
        )
    return max(d for d in range(1, min(requested, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def phase_epochs(total_steps: int, steps_per_epoch: int) -> int:
    """Epochs needed for ``total_steps`` (the last epoch is completed, never cut)."""
    return max(1, math.ceil(total_steps / steps_per_epoch))


def run_phase(
    model: keras.Model,
    dataset: DatasetOrFactory,
    *,
    name: str,
    total_steps: int,
    steps_per_epoch: int,
    checkpoint: TrainingCheckpoint,
    log_dir: str | None = None,
    validation_data: DatasetOrFactory | None = None,
    validation_steps: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
) -> dict[str, Any]:
    """Trains ``model`` (compiled, optimizer built) for one phase, resuming if possible.

    Args:
        model: A compiled model whose optimizer variables already exist.
        dataset: An infinitely repeating, deterministic dataset, or (better: see the
            module docstring) a zero-argument factory of one.
        name: Phase name, for logs and error messages.
        total_steps: Optimizer steps in the phase (rounded up to whole epochs).
        steps_per_epoch: Steps between checkpoints.
        checkpoint: Where the phase's checkpoints live.
        log_dir: TensorBoard log directory, or None.
        validation_data: Optional validation dataset (or factory) evaluated after each
            epoch, distributed like the training input.
        validation_steps: Batches of ``validation_data`` per evaluation (None: all).
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
    with distribute.running(name):
        if validation_data is not None:
            validation_data = evaluation_input(model, validation_data, validation_steps)
        history = model.fit(
            training_input(model, dataset, initial_epoch * steps_per_epoch),
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_data=validation_data,
            callbacks=all_callbacks,
            verbose=verbose,
        )
    if guard.failure is not None:
        failure = guard.failure
        raise TrainingError(
            f"{name}: non-finite loss at {failure['step']}: {failure['term']} = "
            f"{failure['value']}. Stopped; the last good checkpoint is kept in "
            f"{checkpoint.latest() or checkpoint.directory + ' (none yet)'}. Lower the learning "
            f"rate or that term's weight, or check the input data."
        )
    last = {k: float(v[-1]) for k, v in history.history.items()}
    return {**last, "resumed_from_epoch": initial_epoch}
