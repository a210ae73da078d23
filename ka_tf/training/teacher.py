"""Supervised training of a single-task SegNet teacher (when no pre-trained one exists)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import gin
import keras
import tensorflow as tf

from ka_tf import config
from ka_tf.constants import IMAGE
from ka_tf.errors import ConfigError
from ka_tf.io_utils import atomic_save_keras, atomic_write_json
from ka_tf.losses import build_loss
from ka_tf.models import SegNet, UNet
from ka_tf.models.arch import DEFAULT_CHANNELS
from ka_tf.optim import build_optimizer
from ka_tf.tasks import get_task
from ka_tf.training.checkpoint import TrainingCheckpoint
from ka_tf.training.phase import execution_steps, run_phase

TEACHER_FILE = "teacher.keras"
BEST_WEIGHTS = "best.weights.h5"


TEACHER_FAMILIES = ("segnet", "unet")


@gin.configurable
def build_teacher(
    task: str,
    num_classes: int | None = None,
    arch: str = "vgg16",
    batch_norm: bool = True,
    channels: Sequence[int] = DEFAULT_CHANNELS,
    width_multiplier: float = 1.0,
    depth_activation: str = "exp",
    synchronized_bn: bool = False,
    family: str = "segnet",
) -> keras.Model:
    """A fresh teacher: a :class:`~ka_tf.models.SegNet` (see it for the arguments), or with
    ``family='unet'`` a :class:`~ka_tf.models.UNet` (``arch`` unused: two convs a level).
    Both are splittable; only a SegNet can also seed the student's weights."""
    if family not in TEACHER_FAMILIES:
        raise ConfigError(
            f"unknown teacher family. Received: build_teacher.family={family!r}. Expected one "
            f"of {TEACHER_FAMILIES}."
        )
    if family == "unet":
        return UNet(
            task,
            num_classes=num_classes,
            channels=channels,
            width_multiplier=width_multiplier,
            batch_norm=batch_norm,
            depth_activation=depth_activation,
            synchronized_bn=synchronized_bn,
        )
    return SegNet(
        task,
        num_classes=num_classes,
        arch=arch,
        batch_norm=batch_norm,
        channels=channels,
        width_multiplier=width_multiplier,
        depth_activation=depth_activation,
        synchronized_bn=synchronized_bn,
    )


def supervised_pairs(dataset: tf.data.Dataset, task: str) -> tf.data.Dataset:
    """Maps dict batches to ``(float32 images, {task: target})`` for ``Model.fit``."""
    return dataset.map(
        lambda batch: (tf.cast(batch[IMAGE], tf.float32), {task: batch[task]}),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


class KeepBest(keras.callbacks.Callback):
    """Writes the weights with the lowest ``val_loss`` so far (atomically)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.record_path = path + ".json"
        self.best = float("inf")
        if os.path.exists(self.record_path):
            with open(self.record_path, encoding="utf-8") as handle:
                self.best = float(json.load(handle)["val_loss"])

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_loss")
        if value is None or not value < self.best:
            return
        self.best = float(value)

        atomic_save_keras(self.model, self.path, weights_only=True)
        atomic_write_json(self.record_path, {"val_loss": self.best, "epoch": epoch + 1})


def _baseline_report(
    teacher: keras.Model,
    task: str,
    train: tf.data.Dataset,
    test: tf.data.Dataset,
    batches: int,
    eval_max_batches: int | None,
) -> dict[str, Any]:
    """The trivial constant baseline of ``task``, fitted on train and scored on test."""
    from ka_tf.baselines import fit_constant_baseline
    from ka_tf.evaluation import evaluate_model

    classes = get_task(task).num_classes(tuple(teacher.output[task].shape))
    baseline = fit_constant_baseline(train, task, num_classes=classes, max_batches=batches)
    metrics = evaluate_model(
        baseline.model(), test, tasks=[task], max_batches=eval_max_batches, progress=False
    )
    return {"predictor": baseline.description, "metrics": {"test": metrics}}


@gin.configurable(denylist=["model_dir", "strategy"])
def train_teacher(
    model_dir: str,
    strategy: tf.distribute.Strategy,
    task: str = gin.REQUIRED,
    train_data: Callable[[], tf.data.Dataset] = gin.REQUIRED,
    val_data: Callable[[], tf.data.Dataset] | None = None,
    test_data: Callable[[], tf.data.Dataset] | None = None,
    loss: str = "ce",
    steps: int = 500,
    steps_per_epoch: int = 50,
    steps_per_execution: int = 10,
    val_batches: int | None = None,
    eval_max_batches: int | None = None,
    baseline_batches: int = 50,
) -> dict[str, Any]:
    """Trains a teacher on labelled data, keeps the best on val, saves ``teacher.keras``.

    Args:
        model_dir: Run directory (checkpoints, logs, best weights, ``teacher.keras``).
        strategy: Distribution strategy.
        task: ``semseg``, ``depth`` or ``normals``.
        train_data: Factory of the infinite, batched, labelled training dataset.
        val_data: Factory of the labelled validation dataset (selects the best epoch).
        test_data: Factory of the labelled test dataset (metrics in the report).
        loss: Loss name for the task (see :func:`ka_tf.losses.build_loss`).
        steps: Optimizer steps.
        steps_per_epoch: Steps between checkpoints and validations.
        steps_per_execution: Steps per call of the compiled train function, at most
            (see :func:`ka_tf.training.phase.execution_steps`).
        val_batches: Validation batches per epoch (None: the whole split).
        eval_max_batches: Cap on test batches.
        baseline_batches: Training batches the trivial baseline (majority class, mean
            depth, mean normal; :mod:`ka_tf.baselines`) is fitted on; it is scored on
            the test split next to the teacher. 0 skips it.

    Returns:
        ``{"task", "params", "best_val_loss", "metrics": {"test": {...}},
        "baseline": {"predictor", "metrics": {"test": {...}}}, "wall_time_s"}``.
    """
    started = time.time()
    with strategy.scope():
        teacher = build_teacher(task)
        teacher.compile(
            optimizer=build_optimizer(total_steps=steps),
            loss={task: build_loss(task, loss)},
            steps_per_execution=execution_steps(steps_per_execution, min(steps_per_epoch, steps)),
        )
        teacher.optimizer.build(teacher.trainable_variables)
    validation = supervised_pairs(val_data(), task) if val_data else None
    supervised_pairs(train_data(), task)  # checks the data's paths, sizes and task
    # The model, optimizer and data are valid: only now may this run replace a previous
    # run's config.gin.
    config.write_config(model_dir)
    best_path = os.path.join(model_dir, BEST_WEIGHTS)
    callbacks = [KeepBest(best_path)] if validation is not None else []
    run_phase(
        teacher,
        # A factory, so every iterator (and a resumed run) reads the same batches.
        lambda: supervised_pairs(train_data(), task),
        name=f"teacher_{task}",
        total_steps=steps,
        steps_per_epoch=min(steps_per_epoch, steps),
        checkpoint=TrainingCheckpoint(
            os.path.join(model_dir, "checkpoints"), {"teacher": teacher}, teacher.optimizer
        ),
        log_dir=os.path.join(model_dir, "logs"),
        validation_data=validation,
        validation_steps=val_batches,
        callbacks=callbacks,
    )
    report: dict[str, Any] = {
        "task": task,
        "params": int(teacher.count_params()),
        # What --precision resolved to ("auto" picks mixed_bfloat16 on CPUs with bf16).
        "precision": keras.mixed_precision.global_policy().name,
    }
    if os.path.exists(best_path):
        teacher.load_weights(best_path)
        report["best_val_loss"] = callbacks[0].best

    atomic_save_keras(teacher, os.path.join(model_dir, TEACHER_FILE))
    if test_data is not None:
        from ka_tf.evaluation import evaluate_model

        report["metrics"] = {
            "test": evaluate_model(teacher, test_data(), tasks=[task], max_batches=eval_max_batches)
        }
        if baseline_batches > 0:
            report["baseline"] = _baseline_report(
                teacher, task, train_data(), test_data(), baseline_batches, eval_max_batches
            )
    report["wall_time_s"] = time.time() - started
    atomic_write_json(os.path.join(model_dir, "teacher_report.json"), report)
    return report
