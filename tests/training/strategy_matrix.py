"""One cell of the strategy matrix: a shipped recipe, run by its tool under one strategy.

A cell is ``tools/train.py`` (or ``tools/train_teacher.py``) on a shipped gin file,
shrunk by bindings to a few steps of 32x64 images, with two steps per execution in
every phase and the block-wise validation on. ``default`` and ``mirrored`` (two
logical CPUs) are one process; ``multi_worker`` is two processes on 127.0.0.1 with
their own ``TF_CONFIG``, run ``--deterministic`` with synchronized BatchNorm, so the
two replicas must end bit-identical. Each cell returns its wall time, for the table
in the issue note (``KA_TF_MATRIX_LOG``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO_ROOT

DIGEST = re.compile(
    r"^(?:student|teacher) weights sha256: ([0-9a-f]{64}) \(chief: (True|False)\)$", re.M
)
STRATEGIES = ("default", "mirrored", "multi_worker")
# Without synchronized BatchNorm each worker keeps moving averages of its own half
# batch, and the replicas' saved weights differ in those alone.
SYNCHRONIZED_BN = {
    "train.py": "amalgamate.synchronized_bn = True",
    "train_teacher.py": "build_teacher.synchronized_bn = True",
}

# A few steps everywhere: 2 per epoch, so 2 steps per execution in every phase.
_STEPS = ["amalgamate.steps_per_epoch = 2", "amalgamate.steps_per_execution = 2"]
_TINY_AMALGAMATION = [
    "IMAGE_SIZE = (32, 64)",
    "BATCH_SIZE = 2",
    "BLOCKWISE_STEPS = 2",
    "TRAIN_STEPS = 2",
    "amalgamate.val_batches = 2",
    "amalgamate.eval_max_batches = 1",
    "amalgamate.num_panels = 1",
    *_STEPS,
]
_TINY_SYNTH = ["synth_benchmark.splits = {'teacher': 8, 'transfer': 8, 'val': 4, 'test': 4}"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A shipped gin file and the tool that runs it."""

    name: str
    tool: str
    gin_file: str
    teachers: tuple[tuple[str, int | None], ...] = ()  # (task, classes) of tiny teachers
    bindings: tuple[str, ...] = ()
    data: str | None = None  # a fixture writer's name in tests.data.fixtures


RECIPES = (
    Recipe(
        "demo",
        "train.py",
        "gin/demo.gin",
        (("semseg", 19), ("depth", None)),
        (*_TINY_AMALGAMATION, *_TINY_SYNTH),
    ),
    Recipe(
        "synth_indoor_3task",
        "train.py",
        "gin/synth_indoor_3task.gin",
        (("semseg", 13), ("depth", None), ("normals", None)),
        (*_TINY_AMALGAMATION, *_TINY_SYNTH),
    ),
    Recipe(
        "teacher synth_street_semseg",
        "train_teacher.py",
        "gin/teachers/synth_street_semseg.gin",
        (),
        (
            "IMAGE_SIZE = (32, 64)",
            "BATCH_SIZE = 2",
            "TRAIN_STEPS = 2",
            "train_teacher.steps_per_epoch = 2",
            "train_teacher.steps_per_execution = 2",
            "train_teacher.val_batches = 2",
            "train_teacher.eval_max_batches = 1",
            "train_teacher.baseline_batches = 1",
            "build_teacher.width_multiplier = 0.0625",
            *_TINY_SYNTH,
        ),
    ),
    Recipe(
        "nyuv2 (fixture files)",
        "train.py",
        "gin/nyuv2.gin",
        (("semseg", 13), ("depth", None)),
        (*_TINY_AMALGAMATION, "amalgamate.val_batches = 1"),
        data="write_nyu_npy",
    ),
    Recipe(
        "cityscapes (fixture files)",
        "train.py",
        "gin/cityscapes.gin",
        (("semseg", 19), ("depth", None)),
        (*_TINY_AMALGAMATION, "amalgamate.val_batches = 1"),
        data="write_cityscapes",
    ),
)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def prepare(recipe: Recipe, root: Path) -> list[str]:
    """Writes the recipe's tiny teachers and data under ``root``; returns its bindings."""
    from ka_tf.models import SegNet
    from tests.data import fixtures

    bindings = list(recipe.bindings)
    if recipe.teachers:
        teachers = {}
        for task, classes in recipe.teachers:
            path = root / f"{task}.keras"
            if not path.exists():
                SegNet(task, num_classes=classes, width_multiplier=1 / 16).save(str(path))
            teachers[task] = str(path)
        bindings.append(f"TEACHERS = {teachers!r}")
    if recipe.data:
        data_dir = root / "data"
        if not data_dir.exists():
            getattr(fixtures, recipe.data)(str(data_dir))
        bindings.append(f"DATA_DIR = '{data_dir}'")
    return bindings


def _command(recipe: Recipe, model_dir: Path, bindings: list[str], *flags: str) -> list[str]:
    return [
        sys.executable,
        os.path.join(REPO_ROOT, "tools", recipe.tool),
        f"--gin_file={recipe.gin_file}",
        f"--model_dir={model_dir}",
        "--precision=float32",
        *[f"--gin_bindings={b}" for b in bindings],
        *flags,
    ]


def run_cell(recipe: Recipe, strategy: str, root: Path, env: dict[str, str]) -> dict:
    """Runs one cell; returns ``{"model_dir", "seconds", "outputs"}``. Fails on any error."""
    bindings = prepare(recipe, root)
    model_dir = root / f"run_{strategy}"
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env)
    full_env.pop("TF_CONFIG", None)
    started = time.monotonic()
    if strategy != "multi_worker":
        flags = (
            ["--strategy=one_device"]
            if strategy == "default"
            else [
                "--strategy=mirrored",
                "--gin_bindings=get_strategy.cpu_devices = 2",
            ]
        )
        result = subprocess.run(
            _command(recipe, model_dir, bindings, *flags),
            cwd=REPO_ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert result.returncode == 0, f"{recipe.name} × {strategy}:\n{result.stderr[-4000:]}"
        outputs = [result.stdout + result.stderr]
    else:
        workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
        command = _command(
            recipe,
            model_dir,
            [*bindings, SYNCHRONIZED_BN[recipe.tool]],
            "--strategy=multi_worker",
            "--deterministic",
        )
        outputs = run_workers(command, workers, full_env, root / "logs")
    seconds = time.monotonic() - started
    log = os.environ.get("KA_TF_MATRIX_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(
                json.dumps(
                    {"recipe": recipe.name, "strategy": strategy, "seconds": round(seconds, 1)}
                )
                + "\n"
            )
    return {"model_dir": model_dir, "seconds": seconds, "outputs": outputs}


def run_workers(
    command: list[str],
    workers: list[str],
    env: dict[str, str],
    log_dir: Path,
    timeout: float = 900,
    per_worker: dict[int, list[str]] | None = None,
) -> list[str]:
    """Starts one process per worker address with its ``TF_CONFIG``; waits for all.

    Returns each worker's combined stdout and stderr. Asserts every worker exited 0.
    """
    outputs, returncodes = start_and_wait(command, workers, env, log_dir, timeout, per_worker)
    for index, (code, output) in enumerate(zip(returncodes, outputs, strict=True)):
        assert code == 0, f"worker {index} exited {code}:\n{output[-4000:]}"
    return outputs


def start_and_wait(command, workers, env, log_dir: Path, timeout: float = 900, per_worker=None):
    """Like :func:`run_workers` but returns ``(outputs, returncodes)`` without asserting."""
    processes = start_workers(command, workers, env, log_dir, per_worker)
    return wait_workers(processes, timeout)


def start_workers(command, workers, env, log_dir: Path, per_worker=None):
    """Starts the workers; returns ``[(process, log file)]``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = []
    for index in range(len(workers)):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        log = open(log_dir / f"worker{index}_{time.monotonic_ns()}.log", "w+")
        argv = [*command, *((per_worker or {}).get(index, []))]
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=dict(env, TF_CONFIG=json.dumps(tf_config)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append((process, log))
    return processes


def wait_workers(processes, timeout: float = 900) -> tuple[list[str], list[int]]:
    """Waits for the workers (killing any still running after ``timeout``)."""
    deadline = time.monotonic() + timeout
    outputs, codes = [], []
    try:
        for process, _ in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.seek(0)
            outputs.append(log.read())
            log.close()
            codes.append(process.returncode)
    return outputs, codes
