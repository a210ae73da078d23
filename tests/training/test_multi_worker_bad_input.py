"""Bad multi-worker set-ups end in one ``error:`` line (exit 2) and write nothing.

A TF_CONFIG that is missing, not JSON or names an index outside its cluster; a
worker whose peers never come up (it must give up within ``worker_timeout_s``, not
wait forever); and workers whose ``--model_dir`` is not one shared directory
(detected, not run as two unrelated trainings).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import assert_one_line_error, run_tool, snapshot_files
from tests.training.strategy_matrix import free_ports, start_and_wait

pytestmark = pytest.mark.slow

SENTINEL = b"a previous run's file\n"


def _train_args(model_dir, *bindings):
    return [
        "tools/train.py",
        "--gin_file=gin/demo.gin",
        f"--model_dir={model_dir}",
        "--strategy=multi_worker",
        *[f"--gin_bindings={b}" for b in bindings],
    ]


def _model_dir(tmp_path, name="run"):
    model_dir = tmp_path / name
    model_dir.mkdir()
    (model_dir / "config.gin").write_bytes(SENTINEL)
    return model_dir


def _tf_config(workers, index):
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


@pytest.mark.parametrize(
    ("tf_config", "fragments"),
    [
        (None, ["--strategy=multi_worker needs the TF_CONFIG environment variable"]),
        ("{'cluster': 1}", ["TF_CONFIG is not JSON", "Received: TF_CONFIG={'cluster': 1}"]),
        (
            _tf_config(["127.0.0.1:1", "127.0.0.1:2"], 5),
            ["task index 5, outside the cluster of 2 worker(s)", "0..1"],
        ),
    ],
    ids=["missing", "not-json", "index-outside"],
)
def test_bad_tf_config(tmp_path, monkeypatch, tf_config, fragments):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    model_dir = _model_dir(tmp_path)
    before = snapshot_files(tmp_path)
    result = run_tool(
        *_train_args(model_dir), env={"TF_CONFIG": tf_config} if tf_config else None, timeout=120
    )
    assert_one_line_error(result, *fragments)
    assert snapshot_files(tmp_path) == before


@pytest.mark.parametrize("index", [0, 1], ids=["leader-alone", "worker-alone"])
def test_a_worker_whose_peers_never_come_up_gives_up_in_time(tmp_path, index):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    model_dir = _model_dir(tmp_path)
    before = snapshot_files(tmp_path)
    started = time.monotonic()
    result = run_tool(
        *_train_args(model_dir, "get_strategy.worker_timeout_s = 3"),
        env={"TF_CONFIG": _tf_config(workers, index)},
        timeout=120,
    )
    assert_one_line_error(
        result,
        f"worker {index} could not reach the cluster",
        "within get_strategy.worker_timeout_s=3 s",
        f"the others: ['{workers[1 - index]}']",
    )
    # TensorFlow start-up (~10 s here) and the 3 s timeout, not forever.
    assert time.monotonic() - started < 90
    assert snapshot_files(tmp_path) == before


def test_workers_whose_model_dirs_differ_are_stopped(tmp_path):
    import os

    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    chief_dir, other_dir = _model_dir(tmp_path, "chief"), _model_dir(tmp_path, "other")
    before = snapshot_files(tmp_path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    # The same command on both workers but for --model_dir: the second worker's is a
    # directory of its own, as a local path on another machine would be.
    base = [a for a in _train_args(chief_dir) if not a.startswith("--model_dir")]
    import sys

    command = [sys.executable, *base]
    outputs, codes = start_and_wait(
        command,
        workers,
        env,
        tmp_path / "logs",
        timeout=240,
        per_worker={0: [f"--model_dir={chief_dir}"], 1: [f"--model_dir={other_dir}"]},
    )
    for index, (code, output) in enumerate(zip(codes, outputs, strict=True)):
        assert code == 2, (index, output[-3000:])
        lines = [line for line in output.strip().splitlines() if line.strip()]
        assert lines[-1].startswith("error: --model_dir="), (index, output[-3000:])
        assert "is not shared between the workers" in lines[-1]
        assert "Traceback" not in output
    assert "this worker does not see" in outputs[1] and "another worker does not" in outputs[0]
    after = {k: v for k, v in snapshot_files(tmp_path).items() if "/logs/" not in k}
    assert after == before
