"""Gin parsing, the shared flags and the one-line errors of the tools."""

import os
import re
import subprocess
import sys

import gin
import keras
import pytest

import ka_tf.optim
from ka_tf import config
from ka_tf.errors import ConfigError
from tests.helpers import assert_one_line_error, run_tool


def test_parse_binds_values_and_returns_config(tmp_path):
    gin_file = tmp_path / "run.gin"
    gin_file.write_text("build_optimizer.learning_rate = 0.5\n")
    text = config.parse_gin_config([str(gin_file)], ["build_optimizer.name = 'sgd'"])
    optimizer = ka_tf.optim.build_optimizer(total_steps=10)
    assert type(optimizer).__name__ == "SGD"
    assert float(optimizer.learning_rate) == pytest.approx(0.5)
    assert "build_optimizer.learning_rate = 0.5" in text


def test_missing_gin_file_names_file():
    with pytest.raises(ConfigError, match=r"--gin_file=nope\.gin"):
        config.parse_gin_config(["nope.gin"])


def test_unterminated_bracket_is_config_error():
    # tokenize.TokenError is not a SyntaxError: it escaped as a traceback (exit 1).
    with pytest.raises(ConfigError, match=r"IMAGE_SIZE = \(30,"):
        config.parse_gin_config([], ["IMAGE_SIZE = (30,"])


def test_unknown_binding_is_config_error():
    with pytest.raises(ConfigError, match="no_such_function"):
        config.parse_gin_config([], ["no_such_function.x = 1"])


def test_write_config_writes_text(tmp_path):
    config.parse_gin_config([], ["build_optimizer.learning_rate = 0.25"])
    path = config.write_config(str(tmp_path))
    assert "build_optimizer.learning_rate = 0.25" in open(path).read()


def test_tool_help_lists_gin_and_training_flags():
    # Flags defined by ka_tf's helpers count as the tool's own, so plain --help shows them.
    result = run_tool("tools/train.py", "--help")
    assert result.returncode == 0, result.stderr
    for flag in ("gin_file", "gin_bindings", "gin_search_paths", "strategy", "precision"):
        assert f"\n  --{flag}:" in result.stdout, flag
    for flag in ("model_dir", "deterministic", "seed"):
        assert f"\n  --{flag}:" in result.stdout or f"\n  --[no]{flag}:" in result.stdout, flag


def test_tool_unknown_binding_exit_2():
    result = run_tool("tools/env_info.py", "--gin_bindings=nothing_here.value = 3")
    assert_one_line_error(result, "nothing_here")


def test_tool_missing_gin_file_exit_2():
    result = run_tool("tools/env_info.py", "--gin_file=missing/file.gin")
    assert_one_line_error(result, "missing/file.gin")


def test_tool_unknown_strategy_exit_2():
    result = run_tool("tools/env_info.py", "--strategy=warp_drive")
    assert_one_line_error(result, "warp_drive", "mirrored")


def test_tool_unknown_precision_exit_2():
    result = run_tool("tools/env_info.py", "--precision=float8")
    assert_one_line_error(result, "float8", "mixed_bfloat16")


def test_keras_optimizers_and_schedules_are_gin_configurable():
    config.parse_gin_config(
        [],
        [
            "keras.optimizers.AdamW.weight_decay = 0.05",
            "keras.optimizers.schedules.CosineDecay.decay_steps = 7",
            "keras.optimizers.AdamW.learning_rate = @keras.optimizers.schedules.CosineDecay()",
            "keras.optimizers.schedules.CosineDecay.initial_learning_rate = 0.5",
        ],
    )
    optimizer = gin.get_configurable("keras.optimizers.AdamW")()
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.weight_decay == pytest.approx(0.05)
    schedule = optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert (schedule.initial_learning_rate, schedule.decay_steps) == (0.5, 7)


def test_tool_unknown_flag_exit_2():
    result = run_tool("tools/env_info.py", "--no_such_flag=1")
    assert_one_line_error(result, "no_such_flag")


def test_tool_prints_environment():
    result = run_tool("tools/env_info.py", "--precision=float32")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^precision policy +float32$", result.stdout, re.M), result.stdout
    # ka_tf turns TensorFlow's oneDNN kernels on unless the user chose otherwise.
    assert re.search(r"^oneDNN CPU kernels +on$", result.stdout, re.M), result.stdout


@pytest.mark.parametrize("user_value, expected", [(None, "True"), ("0", "False")])
def test_importing_ka_tf_turns_onednn_on_unless_the_user_chose(user_value, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if user_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user_value
    code = "import ka_tf; from ka_tf import distribute; print(distribute.onednn_enabled())"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.stdout.strip().splitlines()[-1] == expected, result.stderr[-2000:]
