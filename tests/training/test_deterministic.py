"""``--deterministic``: two uninterrupted runs of tools/train.py give bit-identical students."""

import json
import subprocess

import numpy as np
import pytest

from tests.helpers import REPO_ROOT
from tests.training.tiny_train import (
    TRAIN_STEPS,
    assert_identical,
    make_inputs,
    student_weights,
    train_command,
)


def _train(model_dir, teachers, images):
    return subprocess.run(
        train_command(model_dir, teachers, images, "--deterministic", "--seed=3"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow  # two tools/train.py processes, ~25 s each on 2 cores
def test_two_deterministic_runs_give_identical_students(tmp_path):
    teachers, images = make_inputs(tmp_path)
    runs = [tmp_path / "first", tmp_path / "second"]
    for run in runs:
        result = _train(run, teachers, images)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Deterministic run: seed 3, op determinism on." in result.stderr
    first, second = (student_weights(run / "student.keras") for run in runs)
    assert_identical(second, first)
    # Both runs took every step.
    for run in runs:
        final = run / "checkpoints" / "finetune" / f"ckpt-{TRAIN_STEPS:06d}"
        assert json.loads((final / "progress.json").read_text())["epoch"] == TRAIN_STEPS
        with np.load(final / "state.npz") as state:
            assert int(state["optimizer/iteration"]) == TRAIN_STEPS  # optimizer.iterations
