"""tools/benchmark.py: the synth section measures frames/s and writes JSON atomically."""

from __future__ import annotations

import json

from tests.helpers import assert_one_line_error, run_tool


def test_synth_section_writes_json(tmp_path):
    output = tmp_path / "bench.json"
    result = run_tool(
        "tools/benchmark.py",
        "--sections=synth",
        "--repeats=2",
        "--synth_frames=4",
        "--synth_height=32",
        "--synth_width=64",
        "--synth_workers=2",
        f"--output={output}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    synth = report["synth"]
    assert synth["workers"] == 2 and (synth["height"], synth["width"]) == (32, 64)
    runs = synth["frames_per_s"]["runs"]
    assert len(runs) == 2 and all(value > 0 for value in runs)
    assert synth["frames_per_s"]["min"] <= synth["frames_per_s"]["median"]
    assert "frames_per_s" in result.stdout


def test_unknown_section_is_a_one_line_error():
    assert_one_line_error(run_tool("tools/benchmark.py", "--sections=synth,warp"), "warp")
