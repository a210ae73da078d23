"""Resumable phases: a restarted run continues at the right step with identical results;
a non-finite loss stops without touching the last good checkpoint."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.errors import ConfigError, ModelFileError, TrainingError
from ka_tf.losses import build_loss
from ka_tf.models import SegNet
from ka_tf.training.checkpoint import TrainingCheckpoint
from ka_tf.training.phase import execution_steps, run_phase

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, size=(8, 32, 64, 3)).astype("float32")
DEPTHS = RNG.uniform(1, 10, size=(8, 32, 64)).astype("float32")


def dataset(images=IMAGES):
    return tf.data.Dataset.from_tensor_slices((images, {"depth": DEPTHS})).batch(2).repeat()


def compiled_teacher(steps_per_execution=1):
    keras.utils.set_random_seed(0)
    model = SegNet("depth", width_multiplier=1 / 16)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"depth": build_loss("depth", "log_l1")},
        steps_per_execution=steps_per_execution,
    )
    model.optimizer.build(model.trainable_variables)
    return model


def run(model, directory, steps, data=None):
    checkpoint = TrainingCheckpoint(directory, {"model": model}, model.optimizer)
    return run_phase(
        model,
        data or dataset(),
        name="phase",
        total_steps=steps,
        steps_per_epoch=2,
        checkpoint=checkpoint,
        verbose=0,
    )


@pytest.mark.slow  # ~27 s; test_kill_resume covers resuming a real process as well
def test_resumed_run_matches_uninterrupted(tmp_path):
    straight = compiled_teacher()
    run(straight, str(tmp_path / "straight"), steps=6)

    first = compiled_teacher()
    run(first, str(tmp_path / "resumed"), steps=4)  # "killed" after 2 of 3 epochs
    second = compiled_teacher()  # a fresh process: new objects, same directory
    logs = run(second, str(tmp_path / "resumed"), steps=6)

    assert logs["resumed_from_epoch"] == 2
    assert int(second.optimizer.iterations) == 6
    for a, b in zip(straight.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    kept = sorted(os.listdir(tmp_path / "resumed"))
    assert kept == ["ckpt-000002", "ckpt-000003"]  # the newest two


@pytest.mark.slow  # ~14 s; CI runs it (make test-slow)
def test_finished_phase_is_not_retrained(tmp_path):
    model = compiled_teacher()
    run(model, str(tmp_path), steps=2)
    weights = model.get_weights()
    again = compiled_teacher()
    logs = run(again, str(tmp_path), steps=2)
    assert logs["resumed_from_epoch"] == 1
    for a, b in zip(weights, again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("steps_per_execution", "where"), [(1, "step 3"), (2, "steps 3-4")])
def test_non_finite_loss_names_term_and_keeps_checkpoint(tmp_path, steps_per_execution, where):
    model = compiled_teacher()
    run(model, str(tmp_path), steps=2)
    saved = open(tmp_path / "ckpt-000001" / "state.npz", "rb").read()
    model = compiled_teacher(steps_per_execution)

    class Diverge(keras.callbacks.Callback):  # the weights blow up at step 3
        def on_train_batch_begin(self, batch, logs=None):
            kernel = self.model.heads["depth"].conv.kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    checkpoint = TrainingCheckpoint(str(tmp_path), {"model": model}, model.optimizer)
    with pytest.raises(
        TrainingError, match=rf"non-finite loss at {where}: loss = nan.*ckpt-000001"
    ):
        run_phase(
            model,
            dataset(),
            name="phase",
            total_steps=6,
            steps_per_epoch=2,
            checkpoint=checkpoint,
            callbacks=[Diverge()],
            verbose=0,
        )
    assert sorted(os.listdir(tmp_path)) == ["ckpt-000001"]
    assert open(tmp_path / "ckpt-000001" / "state.npz", "rb").read() == saved


def test_checkpoint_from_another_model_is_refused(tmp_path):
    model = compiled_teacher()
    TrainingCheckpoint(str(tmp_path), {"model": model}, model.optimizer).save(1)
    other = SegNet("depth", width_multiplier=1 / 8)
    with pytest.raises(ModelFileError, match="has shape"):
        TrainingCheckpoint(str(tmp_path), {"model": other}).restore_latest()


def test_execution_steps_divide_the_epoch():
    assert execution_steps(10, 50) == 10
    assert execution_steps(10, 12) == 6
    assert execution_steps(10, 7) == 7
    assert execution_steps(10, 3) == 3
    assert execution_steps(1, 50) == 1
    with pytest.raises(ConfigError, match="steps_per_execution must be >= 1"):
        execution_steps(0, 50)


def test_several_steps_per_execution_train_like_one_step_each(tmp_path):
    models = {}
    for n in (1, 2):
        models[n] = compiled_teacher(steps_per_execution=n)
        run(models[n], str(tmp_path / f"spe{n}"), steps=4)
        assert int(models[n].optimizer.iterations) == 4
    for a, b in zip(models[1].get_weights(), models[2].get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
