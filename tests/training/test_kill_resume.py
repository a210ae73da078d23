"""Kill -9 a real tools/train.py mid fine-tuning, start it again: nothing is lost.

The resumed run must end at the same step with bit-identical student weights and
optimizer state as an uninterrupted run (both ``--deterministic``). The fast test
pins the reason resuming needs a fresh input pipeline per phase.
"""

import json
import os
import re
import signal
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from ka_tf.training.phase import training_input
from tests.helpers import REPO_ROOT
from tests.training.tiny_train import (
    TRAIN_STEPS,
    assert_identical,
    make_inputs,
    student_weights,
    train_command,
    wait_for_checkpoint,
)


def _shuffled():
    return tf.data.Dataset.range(8).shuffle(8, seed=0, reshuffle_each_iteration=True).repeat()


def _first(dataset, n=6):
    return [int(x) for x in dataset.take(n).as_numpy_iterator()]


def test_each_phase_reads_a_fresh_pipeline_from_a_factory():
    """However often the input is opened, and whatever ran before, a phase sees the same
    batches: those of a fresh pipeline after the skipped ones."""
    model = SimpleNamespace(distribute_strategy=tf.distribute.get_strategy())
    expected = _first(_shuffled(), 8)[2:]
    _first(training_input(model, _shuffled))  # an earlier phase of the same process
    resumed = training_input(model, _shuffled, skip=2)
    _first(resumed, 1)  # what Keras' fit does first: one batch to learn the shapes
    assert _first(resumed) == expected
    assert _first(resumed) == expected
    # Why a factory: a dataset object keeps its shuffle state across iterators, so a
    # second iterator (the one fit trains on) reads another order.
    shared = training_input(model, _shuffled(), skip=2)
    _first(shared, 1)
    assert _first(shared) != expected


def _final_state(model_dir):
    final = model_dir / "checkpoints" / "finetune" / f"ckpt-{TRAIN_STEPS:06d}"
    progress = json.loads((final / "progress.json").read_text())
    with np.load(final / "state.npz") as state:
        return progress, {key: state[key] for key in state.files}


@pytest.mark.slow  # three tools/train.py processes (one killed), ~25 s each on 2 cores
def test_sigkill_during_finetuning_then_resume_matches_uninterrupted_run(tmp_path):
    teachers, images = make_inputs(tmp_path)
    reference, killed = tmp_path / "reference", tmp_path / "killed"

    def command(model_dir):
        return train_command(model_dir, teachers, images, "--deterministic")

    def finish(model_dir):
        result = subprocess.run(
            command(model_dir), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    finish(reference)

    checkpoints = killed / "checkpoints" / "finetune"
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(command(killed), cwd=REPO_ROOT, stdout=log, stderr=log)
    try:
        wait_for_checkpoint(process, checkpoints, lambda: "the run ended before it could be killed")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "student.keras").exists(), "killed too late: the run had finished"
    epochs_at_kill = [int(p.name.split("-")[1]) for p in checkpoints.glob("ckpt-*")]
    assert 1 <= max(epochs_at_kill) < TRAIN_STEPS

    resumed = finish(killed)
    found = re.search(r"finetune: resumed from \S+ckpt-(\d+) \(epoch (\d+)/(\d+)\)", resumed.stderr)
    assert found, resumed.stderr[-3000:]
    assert int(found[2]) >= max(epochs_at_kill) and int(found[3]) == TRAIN_STEPS
    assert not list(checkpoints.glob(".tmp-ckpt-*")), "a half-written checkpoint was left"

    # Same final step, same progress, bit-identical weights and optimizer state.
    (ref_progress, ref_state), (progress, state) = _final_state(reference), _final_state(killed)
    assert progress["epoch"] == ref_progress["epoch"] == TRAIN_STEPS
    assert int(state["optimizer/iteration"]) == TRAIN_STEPS  # optimizer.iterations
    assert sorted(state) == sorted(ref_state)
    for key in ref_state:
        assert np.array_equal(state[key], ref_state[key]), key
    assert_identical(
        student_weights(killed / "student.keras"), student_weights(reference / "student.keras")
    )
