"""A tiny real ``tools/train.py`` run: two 1/16-width teachers, an image folder, fine-tuning only.

Shared by the deterministic, kill-and-resume and multi-worker tests. Block-wise
training is skipped (fixed branch points) because its five traced phases take
minutes on the 2-core CI machine; the fine-tuning phase is the one interrupted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import REPO_ROOT

TRAIN_STEPS = 6


def make_inputs(root) -> tuple[dict[str, str], str]:
    """Writes the two teachers and six random 32x64 images under ``root``."""
    from ka_tf.models import SegNet

    images = os.path.join(root, "images")
    os.makedirs(images, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        pixels = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(images, f"{i}.png"))
    teachers = {}
    for task in ("semseg", "depth"):
        teachers[task] = os.path.join(root, f"{task}.keras")
        SegNet(task, num_classes=19 if task == "semseg" else None, width_multiplier=1 / 16).save(
            teachers[task]
        )
    return teachers, images


def train_command(model_dir, teachers: dict[str, str], images: str, *flags: str) -> list[str]:
    """The ``tools/train.py`` command line of the tiny run (one checkpoint per step)."""
    bindings = [
        f"TEACHERS = {teachers!r}",
        "IMAGE_SIZE = (32, 64)",
        "BATCH_SIZE = 2",
        "DATASET = 'image_folder'",
        f"DATA_DIR = '{images}'",
        "transfer/make_dataset.split = 'all'",
        "amalgamate.val_data = None",
        "amalgamate.test_data = None",
        "BLOCKWISE_STEPS = 0",
        "amalgamate.branch_points = {'semseg': 3, 'depth': 2}",
        f"TRAIN_STEPS = {TRAIN_STEPS}",
        "amalgamate.steps_per_epoch = 1",
    ]
    return [
        sys.executable,
        os.path.join(REPO_ROOT, "tools", "train.py"),
        "--gin_file=gin/demo.gin",
        f"--model_dir={model_dir}",
        *[f"--gin_bindings={b}" for b in bindings],
        *flags,
    ]


def student_weights(path) -> list[np.ndarray]:
    """The weights of a saved student, in order."""
    import keras

    import ka_tf.registry_all  # noqa: F401  (registers TargetNet)

    return keras.saving.load_model(str(path)).get_weights()


def assert_identical(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    """Asserts two weight lists are bit-identical (same count, shapes and bytes)."""
    assert len(actual) == len(expected)
    for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.shape == e.shape and a.dtype == e.dtype, index
        assert np.array_equal(a, e), f"weight {index} differs by {np.max(np.abs(a - e))}"


def wait_for_checkpoint(
    process: subprocess.Popen,
    checkpoints: Path,
    ended_early: Callable[[], str],
    timeout_s: float = 240.0,
) -> None:
    """Polls until ``checkpoints`` holds a ``ckpt-*`` of the running ``process``.

    Fails with ``ended_early()`` if the process exits first, or after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while not (checkpoints.is_dir() and any(checkpoints.glob("ckpt-*"))):
        assert process.poll() is None, ended_early()
        assert time.monotonic() < deadline, f"no checkpoint in {checkpoints} within {timeout_s} s"
        time.sleep(0.02)
