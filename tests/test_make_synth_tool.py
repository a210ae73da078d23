"""tools/make_synth.py: writes a loadable split and a preview; bad input is one line."""

from __future__ import annotations

import os

import gin
import numpy as np
from PIL import Image

import ka_tf.data.synth.config  # noqa: F401 - registers scene_config with gin
from ka_tf.data import load, tfrecord_io
from ka_tf.data.synth import generate
from tests.helpers import assert_one_line_error, run_tool


def test_help_explains_every_flag():
    result = run_tool("tools/make_synth.py", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    for flag in (
        "scene",
        "split",
        "num_frames",
        "height",
        "width",
        "seed",
        "out_dir",
        "workers",
        "preview",
        "gin_file",
        "gin_bindings",
        "gin_search_paths",
    ):
        assert f"\n  --{flag}:" in result.stdout, flag  # a described flag, not the usage text


def test_writes_split_and_preview(tmp_path):
    out_dir, preview = str(tmp_path / "data"), str(tmp_path / "sheet.png")
    result = run_tool(
        "tools/make_synth.py",
        "--scene=indoor",
        "--split=transfer",
        "--num_frames=3",
        "--height=32",
        "--width=64",
        "--seed=1",
        f"--out_dir={out_dir}",
        "--workers=1",
        f"--preview={preview}",
        "--gin_bindings=scene_config.sensor_noise_std = 0.0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    elements = list(load("synth_indoor", data_dir=out_dir, split="transfer"))
    assert len(elements) == 3 and elements[0]["image"].shape == (32, 64, 3)
    sheet = np.asarray(Image.open(preview))
    assert sheet.shape[1] >= 4 * 64 and sheet.shape[0] >= 3 * 32  # 4 columns, 3 rows
    assert "3/3" in result.stderr  # the progress bar counts the last frame

    # Byte-identical across processes: the same split rendered here, in this process.
    gin.bind_parameter("scene_config.sensor_noise_std", 0.0)
    try:
        again = generate.generate_split(
            "indoor", "transfer", 3, 32, 64, 1, str(tmp_path / "again"), workers=1, progress=False
        )
    finally:
        gin.clear_config()
    shards = tfrecord_io.read_spec(os.path.join(out_dir, "indoor", "transfer"))["shards"]
    assert [s["sha256"] for s in tfrecord_io.read_spec(again)["shards"]] == [
        s["sha256"] for s in shards
    ]


def _bad(tmp_path, *flags: str):
    defaults = {
        "--scene": "street",
        "--split": "val",
        "--num_frames": "2",
        "--height": "32",
        "--width": "64",
        "--out_dir": str(tmp_path / "out"),
    }
    for flag in flags:
        name, value = flag.split("=", 1)
        defaults[name] = value
    return run_tool("tools/make_synth.py", *[f"{k}={v}" for k, v in defaults.items()])


def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path):
    assert_one_line_error(_bad(tmp_path, "--scene=forest"), "--scene", "forest")
    assert_one_line_error(_bad(tmp_path, "--split=train"), "--split", "train")
    assert_one_line_error(_bad(tmp_path, "--num_frames=0"), "--num_frames=0")
    assert_one_line_error(_bad(tmp_path, "--height=-32"), "--height=-32")
    assert_one_line_error(_bad(tmp_path, "--width=100"), "--width=100", "multiple of 32")
    assert not os.path.exists(tmp_path / "out")
    (tmp_path / "a_file").write_text("keep me")
    below = str(tmp_path / "a_file" / "sub")
    assert_one_line_error(_bad(tmp_path, f"--out_dir={below}"), below, "is not writable")
    assert (tmp_path / "a_file").read_text() == "keep me"
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    assert_one_line_error(_bad(tmp_path, f"--out_dir={a_file}"), str(a_file), "is a file")
    assert a_file.read_text() == "keep me"
    assert_one_line_error(
        _bad(tmp_path, "--gin_bindings=scene_config.fov_deg = (60, 40)"), "fov_deg"
    )
