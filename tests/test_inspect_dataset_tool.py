"""tools/inspect_dataset.py on each real-format fixture, and its one-line errors."""

import io
import os
import re

import numpy as np
from PIL import Image

from tests.data import fixtures
from tests.helpers import assert_one_line_error, run_tool

TOOL = "tools/inspect_dataset.py"


def _class_row(stdout: str, name: str) -> tuple[int, int]:
    match = re.search(rf"^\s+(\d+)\s+{re.escape(name)}\s+(\d+)\s", stdout, re.MULTILINE)
    assert match, (name, stdout)
    return int(match.group(1)), int(match.group(2))


def test_nyu_mat_report_and_preview(tmp_path):
    fixture = fixtures.write_nyu_mat(str(tmp_path / "nyu"))
    out = str(tmp_path / "preview.png")
    result = run_tool(
        TOOL, "--dataset=nyuv2", f"--data_dir={fixture.data_dir}", "--split=train", f"--out={out}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "examples     3" in result.stdout and "image sizes  24x32 (3)" in result.stdout
    labels = fixture.labels[..., [n - 1 for n in fixture.train]]
    assert _class_row(result.stdout, "wall") == (0, int((labels == 21).sum()))
    assert _class_row(result.stdout, "television") == (24, int((labels == 172).sum()))
    assert _class_row(result.stdout, "sofa") == (5, 0)
    ignore = (labels == 0).mean()
    assert f"{ignore:.1%} ignore (255)" in result.stdout
    depths = fixture.depths[..., [n - 1 for n in fixture.train]]
    assert f"range {depths.min():.3f} .. {depths.max():.3f} m" in result.stdout
    preview = np.asarray(Image.open(out))
    # 3 rows of 24-pixel cells (+ a title strip, legend, scale bar), 3 columns of 32.
    assert preview.shape[1] == 3 * 32 + 4 * 2 and preview.shape[0] > 3 * 24 + 12


def test_cityscapes_npy_and_folder_reports(tmp_path):
    tree = fixtures.write_cityscapes(str(tmp_path / "cs"))
    result = run_tool(TOOL, "--dataset=cityscapes", f"--data_dir={tree.data_dir}", "--split=val")
    assert result.returncode == 0, result.stderr[-2000:]
    ids = np.stack([frame[2] for frame in tree.frames["val"]])
    disparity = np.stack([frame[3] for frame in tree.frames["val"]])
    assert f"examples     {len(ids)}" in result.stdout
    assert _class_row(result.stdout, "road") == (0, int((ids == 7).sum()))
    assert _class_row(result.stdout, "bicycle") == (18, int((ids == 33).sum()))
    valid = (disparity > 1).mean()
    assert f"depth        {valid:.1%} of pixels valid" in result.stdout
    npy = fixtures.write_nyu_npy(str(tmp_path / "npy"))
    result = run_tool(
        TOOL, "--dataset=nyuv2", f"--data_dir={npy.data_dir}", "--split=train", "--max_examples=2"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "examples     2" in result.stdout and "normals      100.0% of pixels valid" in result.stdout
    )
    assert _class_row(result.stdout, "window")[0] == 12
    fixtures.write_image_folder(str(tmp_path / "images"))
    out = str(tmp_path / "images.png")
    result = run_tool(
        TOOL,
        "--dataset=image_folder",
        f"--data_dir={tmp_path / 'images'}",
        "--split=all",
        "--option=size=(32, 64)",
        "--option=resize_mode=resize_crop",
        f"--out={out}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "examples     5" in result.stdout and "image sizes  32x64 (5)" in result.stdout
    assert "semseg" not in result.stdout and os.path.getsize(out) > 0


def test_one_line_errors(tmp_path):
    result = run_tool(TOOL, "--dataset=nyuv2", f"--data_dir={tmp_path / 'nope'}", "--split=train")
    assert_one_line_error(result, "does not exist", str(tmp_path / "nope"))
    result = run_tool(TOOL, "--dataset=nyu", f"--data_dir={tmp_path}", "--split=train")
    assert_one_line_error(result, "dataset='nyu'", "nyuv2")
    result = run_tool(TOOL, "--dataset=image_folder", f"--data_dir={tmp_path}", "--split=all",
                      "--option=sizes")  # fmt: skip
    assert_one_line_error(result, "--option='sizes' is not key=value")
    # A JPEG cut after its header fails while decoding, inside tf.data: still one line.
    (tmp_path / "imgs").mkdir()
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG", quality=95)
    (tmp_path / "imgs" / "cut.jpg").write_bytes(buffer.getvalue()[:2000])
    result = run_tool(TOOL, "--dataset=image_folder", f"--data_dir={tmp_path / 'imgs'}",
                      "--split=all")  # fmt: skip
    assert_one_line_error(result, "corrupt or unreadable image file", "cut.jpg", "on_corrupt")


def test_help_lists_flags():
    result = run_tool(TOOL, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    for flag in ("--dataset", "--data_dir", "--split", "--out", "--max_examples", "--option"):
        assert flag in result.stdout, flag
