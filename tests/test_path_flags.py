"""Path flags expand a leading ``~`` (the shell does not after ``--flag=``), in every tool."""

import os
import re

from absl import flags
from PIL import Image

from ka_tf import path_flags
from tests.data import fixtures
from tests.helpers import REPO_ROOT, run_tool


def _parse(*argv: str) -> flags.FlagValues:
    values = flags.FlagValues()
    path_flags.define_path("model", None, "A file.", flag_values=values)
    path_flags.define_path("out_dir", "runs/x", "A folder.", flag_values=values)
    path_flags.define_multi_path("gin_file", [], "Files.", flag_values=values)
    path_flags.define_path_list("teachers", None, "Files.", flag_values=values)
    values(["tool", *argv])
    return values


def test_leading_tilde_is_expanded_in_single_and_repeated_flags(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    values = _parse(
        "--model=~/m.keras", "--gin_file=~/a.gin", "--gin_file=b/c.gin", "--teachers=~/s,d"
    )
    assert values.model == os.path.join(str(tmp_path), "m.keras")
    assert values.gin_file == [os.path.join(str(tmp_path), "a.gin"), "b/c.gin"]
    assert values.teachers == [os.path.join(str(tmp_path), "s"), "d"]
    assert values.out_dir == "runs/x"  # an unset flag keeps its default


def test_paths_without_a_leading_tilde_are_kept_verbatim(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    values = _parse("--model=a/~/m.keras", "--out_dir=/abs/dir")
    assert values.model == "a/~/m.keras" and values.out_dir == "/abs/dir"
    assert values["model"].serialize() == "--model=a/~/m.keras"


# Flags named like these hold a file or folder: each must be a path flag, so that a new
# tool cannot bring back the literal-"~" bug by defining one with DEFINE_string.
_PATH_FLAG_NAMES = (
    "model|model_dir|data_dir|eval_data_dir|out_dir|out|output|input|images|run_dir|zoo_dir|"
    "cache_dir|pth|record|checkpoint|gin_file|preview|student|teachers|fixture_dir|"
    "representative_data"
)
_PLAIN_DEFINE = re.compile(
    r"flags\.DEFINE_(?:string|multi_string|list)\(\s*\"(" + _PATH_FLAG_NAMES + r")\""
)


def _tool_sources() -> list[str]:
    found = []
    for folder in ("ka_tf", "tools", "benchmarks"):
        for root, _, files in os.walk(os.path.join(REPO_ROOT, folder)):
            found += [os.path.join(root, name) for name in files if name.endswith(".py")]
    return found


def test_no_tool_defines_a_path_flag_as_a_plain_string():
    offenders = []
    for path in _tool_sources():
        with open(path) as handle:
            source = handle.read()
        offenders += [
            f"{os.path.relpath(path, REPO_ROOT)}: --{match}"
            for match in _PLAIN_DEFINE.findall(source)
        ]
    assert not offenders, offenders


def test_the_scan_finds_a_plain_string_path_flag():
    assert _PLAIN_DEFINE.findall('flags.DEFINE_string(\n    "out_dir", None, "x")') == ["out_dir"]


def test_a_tool_writes_where_a_tilde_path_points(tmp_path):
    home = tmp_path / "home"
    data = fixtures.write_nyu_npy(str(home / "npy"))
    result = run_tool(
        "tools/inspect_dataset.py",
        "--dataset=nyuv2",
        f"--data_dir=~/{os.path.relpath(data.data_dir, home)}",
        "--split=train",
        "--max_examples=2",
        "--out=~/preview.png",
        env={"HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert not os.path.exists(os.path.join(REPO_ROOT, "~")), "wrote into a folder named ~"
    with Image.open(home / "preview.png") as preview:
        assert preview.size[0] > 0
