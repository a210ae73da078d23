"""Atomic writes, writable-dir probes, visualisation and the optimizer factory."""

import os

import numpy as np
import pytest

from ka_tf import io_utils, optim, visualize
from ka_tf.errors import ConfigError, UserInputError


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "report.json"
    io_utils.atomic_write_json(str(path), {"a": 1})

    def broken_write(tmp):
        with open(tmp, "w") as handle:
            handle.write("{half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        io_utils.atomic_write(str(path), broken_write)
    assert path.read_text().strip() == '{\n  "a": 1\n}'
    assert os.listdir(tmp_path) == ["report.json"]


def test_ensure_writable_dir_rejects_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(UserInputError, match=r"--model_dir=.*is a file"):
        io_utils.ensure_writable_dir(str(target))


def test_colorize_labels_palette_and_ignore():
    labels = np.array([[0, 1], [255, 1]], np.uint8)
    out = visualize.colorize_labels(labels, [(10, 20, 30), (40, 50, 60)])
    assert out[0, 0].tolist() == [10, 20, 30]
    assert out[1, 1].tolist() == [40, 50, 60]
    assert out[1, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="label 7"):
        visualize.colorize_labels(np.array([[7]]), [(1, 2, 3)])


def test_colorize_depth_orders_near_dark():
    depth = np.array([[1.0, 10.0, 0.0]], np.float32)
    out = visualize.colorize_depth(depth).astype(int)
    assert out[0, 0].sum() < out[0, 1].sum()
    assert out[0, 2].tolist() == [0, 0, 0]


def test_make_grid_and_png(tmp_path):
    a = np.zeros((4, 6, 3), np.uint8)
    b = np.full((3, 5), 200, np.uint8)
    grid = visualize.make_grid([[a, b], [a]], pad=1)
    assert grid.shape == (2 * 5 + 1, 2 * 7 + 1, 3)
    path = tmp_path / "g.png"
    visualize.save_png(str(path), grid)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_optimizer_schedule():
    optimizer = optim.build_optimizer(
        total_steps=100, name="adamw", learning_rate=0.1, warmup_steps=10
    )
    schedule = optimizer._learning_rate  # the LearningRateSchedule object
    assert float(schedule(0)) == pytest.approx(0.0)
    assert float(schedule(10)) == pytest.approx(0.1)
    assert float(schedule(100)) == pytest.approx(0.001, rel=1e-3)
    with pytest.raises(ConfigError, match="adamx"):
        optim.build_optimizer(total_steps=10, name="adamx")
