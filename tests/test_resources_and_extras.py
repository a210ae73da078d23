"""Shipped files found from anywhere, missing extras named, and quiet tool start-up."""

import os
import subprocess
import sys

import pytest

from ka_tf import cli, config, extras, resources
from ka_tf.errors import ConfigError
from tests.helpers import REPO_ROOT, run_tool


def test_checkout_is_the_shipped_root():
    assert resources.shipped_root() == REPO_ROOT
    assert os.path.isfile(resources.shipped_path("gin/street_zoo.gin"))
    assert os.path.isdir(resources.shipped_path("zoo/street_semseg"))


def test_relative_gin_path_resolves_to_the_shipped_recipe_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.resolve_gin_file("gin/demo.gin", ["."]) == os.path.join(
        REPO_ROOT, "gin", "demo.gin"
    )
    # ... and its includes (gin/data/..., gin/optim/...) resolve too.
    config.parse_gin_config(["gin/street_zoo.gin"])


def test_a_file_in_the_working_directory_wins_over_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gin").mkdir()
    (tmp_path / "gin" / "demo.gin").write_text("TRAIN_STEPS = 3\n")
    assert config.resolve_gin_file("gin/demo.gin", ["."]) == "gin/demo.gin"


def test_missing_gin_file_names_every_place_searched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        config.resolve_gin_file("gin/absent.gin", ["/some/where"])
    message = str(raised.value)
    assert "--gin_file=gin/absent.gin" in message
    assert str(tmp_path) in message and "/some/where" in message and REPO_ROOT in message


def test_missing_extra_names_the_extra_and_the_install_command(monkeypatch):
    monkeypatch.setitem(extras.EXTRA_OF_MODULE, "ka_tf_absent_module", "synth")
    with pytest.raises(extras.MissingExtraError) as raised:
        extras.require("ka_tf_absent_module", "rendering the synthetic benchmark")
    message = str(raised.value)
    assert "rendering the synthetic benchmark needs ka_tf_absent_module" in message
    assert "'synth' extra" in message and "pip install 'ka_tf[synth]'" in message
    with pytest.raises(extras.MissingExtraError):
        extras.check("ka_tf_absent_module", "x")


def test_present_extra_imports_the_module():
    assert extras.require("onnxruntime", "running an ONNX model").__name__ == "onnxruntime"


def test_export_checks_its_format_tools_before_any_work(monkeypatch):
    from ka_tf.export import exporter, formats

    monkeypatch.setattr(formats.ONNXFormat, "requires", ("ka_tf_absent_module",))
    monkeypatch.setitem(extras.EXTRA_OF_MODULE, "ka_tf_absent_module", "export")
    with pytest.raises(extras.MissingExtraError, match="--formats=onnx needs"):
        exporter.check_format_dependencies(["saved_model", "onnx"])
    exporter.check_format_dependencies(["saved_model"])


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["tool"], False),
        (["tool", "--verbosity=1"], True),
        (["tool", "-v", "2"], True),
        (["tool", "--verbosity=0"], False),
        (["tool", "--verbosity=-1"], False),
        (["tool", "--verbosity=loud"], False),
    ],
)
def test_tensorflow_logs_follow_verbosity(argv, expected):
    assert cli._tensorflow_logs_requested(argv) is expected


def test_tools_print_nothing_from_tensorflows_cpp_logger():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "tools/evaluate.py", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Evaluates" in result.stdout
    assert result.stderr.strip() == "", result.stderr[-2000:]


def test_front_script_help_shows_the_command_docstring():
    result = run_tool("tools/zoo.py", "--help")
    assert result.returncode == 0, result.stderr
    assert "\n  --action:" in result.stdout
    assert result.stdout.splitlines()[0].strip()  # the command's own summary line
    assert "tools/zoo.py`: the same command as" not in result.stdout
