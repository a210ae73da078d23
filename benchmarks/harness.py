"""Measurements behind ``tools/benchmark.py``: timing, FLOPs, models, and the sections.

Every figure is a wall-clock measurement on this machine, taken as
``repeats`` timed runs after a warm-up; :func:`time_calls` decides how many calls
one timed run makes (enough to last ``min_time_s``) and returns the per-call
latency and the images/s as ``{"median", "min", "max", "runs"}``. When two
callables are compared (ka_tf vs PyTorch), :func:`time_interleaved` alternates
their timed runs, so that load from other processes hits both alike. A callable
can also live in a :class:`TimingWorker` (a separate Python process, e.g. for
PyTorch, whose OpenMP threads must not share a process with TensorFlow's thread
pools): its :class:`RemoteCall` is timed there, on command, still alternating.

FLOPs are counted analytically from the Keras layers (:func:`conv_macs`): the
multiply-accumulates of every ``Conv2D`` (kernel height x width x input channels
x output channels per output pixel, at the resolution of its block), times 2 for
FLOPs. BatchNorm, ReLU, pooling, unpooling, the channel-coding gates and the
output transforms are not counted (well under 1% of the convolutions here).

A runtime or format that is not available is never a zero: its row is a dict
``{"skipped": "<reason>"}``.

Example:
    >>> seconds = time_calls(lambda: model(x), batch=8, repeats=3, min_time_s=0.5)
    >>> seconds["images_per_s"]["median"]
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import os
import pickle
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ka_tf.errors import ConfigError


@contextlib.contextmanager
def git_checkout(revision: str):
    """A directory holding ``revision`` of this repository: the directory itself if
    ``revision`` is one, else a temporary git worktree, removed afterwards."""
    if os.path.isdir(revision):
        yield os.path.abspath(revision)
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory(prefix="ka_tf_rev_") as parent:
        path = os.path.join(parent, "tree")
        subprocess.run(
            ["git", "-C", root, "worktree", "add", "--detach", "-q", path, revision],
            check=True,
        )
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", root, "worktree", "remove", "--force", path], check=False)


def runtimes() -> tuple[str, ...]:
    """Runtimes of the inference section, in table order: Keras, then every registered
    export format (ka_tf/export/formats.py)."""
    from ka_tf.export.formats import format_names

    return ("keras", *format_names())


def runtime_modules(fmt: str) -> tuple[str, ...]:
    """Modules runtime ``fmt`` needs (checked before trying it): its format's ``requires``."""
    from ka_tf.export.formats import get_format

    return () if fmt == "keras" else get_format(fmt).requires


DEFAULT_BRANCH_POINTS = {"semseg": 1, "depth": 1}


# --- timing -----------------------------------------------------------------------------


def spread(values: Sequence[float]) -> dict[str, Any]:
    """``{"median", "min", "max", "runs"}`` of repeated measurements."""
    values = [float(v) for v in values]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def _calibrate(fn: Callable[[], Any], min_time_s: float, warmup: int) -> int:
    """Runs ``fn`` ``warmup`` times, then returns how many calls last ``min_time_s``.

    The duration of one call is the fastest of up to three timed calls (fewer when
    they already last ``min_time_s``), so that one call slowed down by other load
    does not shrink ``calls_per_repeat`` to 1.
    """
    for _ in range(max(1, warmup)):
        fn()
    times: list[float] = []
    while len(times) < 3 and sum(times) < min_time_s:
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    once = max(min(times), 1e-6)
    return max(1, math.ceil(min_time_s / once))


def _one_repeat(fn: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def _result(
    seconds: Sequence[float], batch: int, calls: int, steps_per_call: int = 1
) -> dict[str, Any]:
    per_step = [s / steps_per_call for s in seconds]
    result = {
        "batch": int(batch),
        "calls_per_repeat": int(calls),
        "latency_ms": spread([1000.0 * s for s in per_step]),
        "images_per_s": spread([batch / s for s in per_step]),
    }
    if steps_per_call != 1:
        result["steps_per_call"] = int(steps_per_call)
    return result


def time_calls(
    fn: Callable[[], Any],
    batch: int,
    repeats: int,
    min_time_s: float,
    warmup: int = 1,
    steps_per_call: int = 1,
) -> dict[str, Any]:
    """Times ``fn`` (one call = ``steps_per_call`` batches of ``batch`` images).

    Args:
        fn: The call to time; it must block until its result exists.
        batch: Images per batch.
        repeats: Timed runs (each ``calls_per_repeat`` calls, at least ``min_time_s``).
        min_time_s: Minimum duration of one timed run (sets ``calls_per_repeat``).
        warmup: Untimed calls first (tracing, allocation, caches).
        steps_per_call: Batches one call processes (a train function running
            ``steps_per_execution`` steps); latency is reported per batch.

    Returns:
        ``{"batch", "calls_per_repeat", "latency_ms": spread, "images_per_s": spread}``
        (plus ``"steps_per_call"`` when it is not 1); latency is per batch.
    """
    calls = _calibrate(fn, min_time_s, warmup)
    seconds = [_one_repeat(fn, calls) for _ in range(repeats)]
    return _result(seconds, batch, calls, steps_per_call)


class Timer(Protocol):
    """Something :func:`time_interleaved` can time: a local or a :class:`RemoteCall`."""

    def calibrate(self, min_time_s: float, warmup: int) -> int:
        """Warm-up calls, then how many calls one timed run makes."""

    def timed_run(self, calls: int) -> float:
        """Makes ``calls`` calls; returns the seconds per call."""


class LocalCall:
    """A callable of this process, timed here (the :class:`Timer` of a plain callable)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def calibrate(self, min_time_s: float, warmup: int) -> int:
        """See :func:`_calibrate`."""
        return _calibrate(self.fn, min_time_s, warmup)

    def timed_run(self, calls: int) -> float:
        """``calls`` calls; seconds per call."""
        return _one_repeat(self.fn, calls)


def _timer(fn: Callable[[], Any] | Timer) -> Timer:
    return fn if hasattr(fn, "timed_run") else LocalCall(fn)  # type: ignore[return-value]


def time_interleaved(
    fns: Mapping[str, Callable[[], Any] | Timer],
    batch: int,
    repeats: int,
    min_time_s: float,
    warmup: int = 1,
    steps_per_call: Mapping[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Like :func:`time_calls` for several callables, their timed runs alternating.

    ``steps_per_call`` gives, per name, the batches one call processes (default 1).

    Timed runs go a, b, a, b, ... so that a change in machine load affects all of
    them alike. A value may be a :class:`RemoteCall` (timed in its worker process,
    the others waiting) or a plain callable (timed here).
    """
    timers = {name: _timer(fn) for name, fn in fns.items()}
    calls = {name: timer.calibrate(min_time_s, warmup) for name, timer in timers.items()}
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, timer in timers.items():
            seconds[name].append(timer.timed_run(calls[name]))
    steps = steps_per_call or {}
    return {name: _result(seconds[name], batch, calls[name], steps.get(name, 1)) for name in fns}


# --- worker process -----------------------------------------------------------------------


class WorkerError(RuntimeError):
    """A :class:`TimingWorker` request failed, or its process died or timed out."""


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def serve_worker() -> None:
    """The loop of a :class:`TimingWorker` process (reads requests on stdin).

    Requests and replies are pickled tuples; replies go to the original stdout,
    and ``print`` output goes to stderr so that it cannot corrupt them.
    """
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    calls: dict[int, Callable[[], Any]] = {}
    while True:
        try:
            op, *args = pickle.load(requests)
        except EOFError:
            return
        try:
            if op == "stop":
                result: Any = None
            elif op == "call":
                target, call_args, kwargs = args
                result = _resolve(target)(*call_args, **kwargs)
            elif op == "build":
                target, call_args, kwargs = args
                calls[len(calls)] = _resolve(target)(*call_args, **kwargs)
                result = len(calls) - 1
            elif op == "calibrate":
                key, min_time_s, warmup = args
                result = _calibrate(calls[key], min_time_s, warmup)
            elif op == "run":
                key, count = args
                result = _one_repeat(calls[key], count)
            else:
                raise ValueError(f"unknown worker request {op!r}")
            reply = ("ok", result)
        except Exception as error:  # reported to the parent, which raises WorkerError
            reply = ("error", short_error(f"{op} failed in the worker", error, limit=2000))
        pickle.dump(reply, replies)
        replies.flush()
        if op == "stop":
            return


class RemoteCall:
    """A zero-argument callable built inside a :class:`TimingWorker`, timed there."""

    def __init__(self, worker: TimingWorker, key: int, target: str) -> None:
        self.worker = worker
        self.key = key
        self.target = target

    def calibrate(self, min_time_s: float, warmup: int) -> int:
        """Warm-up and calibration in the worker (see :func:`_calibrate`)."""
        return int(self.worker.request("calibrate", self.key, min_time_s, warmup))

    def timed_run(self, calls: int) -> float:
        """``calls`` calls in the worker, timed there; seconds per call."""
        return float(self.worker.request("run", self.key, calls))


class TimingWorker:
    """A separate Python process that builds callables and times them on command.

    Used by ``tools/benchmark.py --compare_pytorch`` for PyTorch: its OpenMP thread
    pool and TensorFlow's would otherwise live in one process, where the idle one's
    spinning threads slow the other down. The worker imports only what the targets
    import (not TensorFlow); the parent drives it one request at a time, so runs in
    the worker and runs in the parent alternate and never overlap.

    Args:
        env: Environment variables of the worker on top of this process's
            (e.g. ``{"OMP_WAIT_POLICY": "PASSIVE"}``; they must be set before the
            worker loads its OpenMP runtime, which is why a process is needed).
        paths: Directories prepended to the worker's ``PYTHONPATH``.
        timeout_s: Longest wait for one reply before :class:`WorkerError`.

    Example:
        >>> with TimingWorker({"OMP_WAIT_POLICY": "PASSIVE"}, [repo_root]) as worker:
        ...     forward = worker.build("benchmarks.pytorch_reference:inference_call", ...)
        ...     time_interleaved({"keras": keras_call, "pytorch": forward}, 8, 3, 0.5)
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        paths: Sequence[str] = (),
        timeout_s: float = 900.0,
    ) -> None:
        self.timeout_s = timeout_s
        self._log = tempfile.TemporaryFile()
        environ = {**os.environ, **(env or {})}
        python_path = [*paths, environ.get("PYTHONPATH", "")]
        environ["PYTHONPATH"] = os.pathsep.join(p for p in python_path if p)
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from benchmarks.harness import serve_worker; serve_worker()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=environ,
        )

    def __enter__(self) -> TimingWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stderr_tail(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(lines[-5:])[-1500:]

    def request(self, op: str, *args: Any) -> Any:
        """Sends one request and returns its result.

        Raises:
            WorkerError: when the request fails in the worker (with its error), or the
                worker dies or does not answer within ``timeout_s``.
        """
        process = self._process
        try:
            pickle.dump((op, *args), process.stdin)
            process.stdin.flush()  # type: ignore[union-attr]
            ready, _, _ = select.select([process.stdout], [], [], self.timeout_s)
            if not ready:
                self.close()
                raise WorkerError(f"timing worker: no reply to {op!r} in {self.timeout_s:.0f} s")
            status, result = pickle.load(process.stdout)  # type: ignore[arg-type]
        except (EOFError, BrokenPipeError, pickle.UnpicklingError) as error:
            code = process.poll()
            raise WorkerError(
                f"timing worker died (exit code {code}) during {op!r}: {self._stderr_tail()}"
            ) from error
        if status != "ok":
            raise WorkerError(f"timing worker: {result}")
        return result

    def call(self, target: str, *args: Any, **kwargs: Any) -> Any:
        """Runs ``module:function(*args, **kwargs)`` in the worker; returns its (picklable)
        result."""
        return self.request("call", target, args, kwargs)

    def build(self, target: str, *args: Any, **kwargs: Any) -> RemoteCall:
        """Calls the factory ``module:function(*args, **kwargs)`` in the worker; the
        zero-argument callable it returns stays there, as a :class:`RemoteCall`."""
        return RemoteCall(self, int(self.request("build", target, args, kwargs)), target)

    def close(self) -> None:
        """Stops the worker (politely, then by force) and waits for it."""
        process = self._process
        if process.poll() is None:
            try:
                pickle.dump(("stop",), process.stdin)
                process.stdin.close()  # type: ignore[union-attr]
                process.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self._log.close()


def median_of(entry: Mapping[str, Any], key: str = "images_per_s") -> float | None:
    """The median of ``entry[key]``, or None for a skipped/failed entry."""
    value = entry.get(key) if isinstance(entry, Mapping) else None
    return None if not isinstance(value, Mapping) else float(value["median"])


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


# --- memory -----------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``getrusage``), in MiB.

    The peak is process-wide and never falls: a section's figure is the peak up to
    its end, including the sections run before it.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def current_rss_mb() -> float | None:
    """Resident memory now, from ``/proc/self/status`` (None where unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_times() -> tuple[int, int] | None:
    """``(steal, total)`` CPU ticks of the whole machine from ``/proc/stat`` (None where
    unavailable); two readings give :func:`steal_percent`."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


def steal_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """% of CPU time the hypervisor gave other guests between two :func:`cpu_times`.

    On a shared virtual machine this is load the benchmark cannot see otherwise: at
    15-30% steal, timings swing by as much, so figures are best compared within one
    run (as the interleaved ones are) and rerun when it is high.
    """
    if before is None or after is None or after[1] <= before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])


# --- threads ----------------------------------------------------------------------------


def set_threads(threads: int) -> dict[str, int]:
    """Sets TensorFlow's intra- and inter-op thread counts.

    Call before TensorFlow runs its first op. Returns what TensorFlow reports.
    PyTorch is not imported here: ``--compare_pytorch`` sets its threads in its own
    worker process (``benchmarks.pytorch_reference.set_threads``).
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return {
        "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def module_missing(*names: str) -> str | None:
    """A reason string if any of the modules is not importable, else None."""
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (pip install -e '.[dev,convert]')"
    return None


# --- models -----------------------------------------------------------------------------


def parse_branch_points(items: Sequence[str]) -> dict[str, int]:
    """``["semseg:1", "depth:1"]`` -> ``{"semseg": 1, "depth": 1}``.

    Raises:
        ConfigError: on a malformed item.
    """
    points = {}
    for item in items:
        task, _, value = item.partition(":")
        if not task or not value.strip().isdigit():
            raise ConfigError(
                f"bad --branch_points item {item!r}. Expected TASK:INDEX pairs, e.g. "
                f"--branch_points=semseg:1,depth:1."
            )
        points[task.strip()] = int(value)
    return points


def build_teachers_from_gin(tasks: Sequence[str], num_classes: int | None) -> dict[str, Any]:
    """Fresh teachers from the parsed gin's ``build_teacher`` bindings (random weights)."""
    from ka_tf.training.teacher import build_teacher

    return {
        task: build_teacher(task, num_classes=num_classes if task == "semseg" else None)
        for task in tasks
    }


def finetune_losses(teachers: dict) -> dict:
    """The gin configuration's fine-tuning losses, ready to run on one batch.

    A class-balanced loss (``class_balance`` > 0) needs class weights before it runs;
    a real run measures them over the cached transfer split. A step costs the same
    whatever their values, so here every class gets the same frequency (weights 1).
    """
    import gin

    from ka_tf.amalgamation.run import balanced_tasks, distillation_losses
    from ka_tf.amalgamation.student_builder import num_classes_of

    with gin.config_scope("finetune"):
        losses = distillation_losses(tuple(teachers))
    for task in balanced_tasks(losses):
        losses[task].set_class_frequencies([1.0] * num_classes_of(teachers))
    return losses


def build_student(
    teachers: Mapping[str, Any],
    branch_points: Mapping[str, int],
    width_multiplier: float | None = None,
) -> Any:
    """A branched TargetNet assembled the way the amalgamation does it.

    A scratch block-wise student (at ``width_multiplier``, None: the teachers' width)
    and its gates, then :func:`~ka_tf.amalgamation.student_builder.assemble_student` at
    ``branch_points`` (branches and heads copied from the teachers).
    """
    from ka_tf.amalgamation.amalgamator import build_coders
    from ka_tf.amalgamation.lite_student_builder import tap_teacher_channels
    from ka_tf.amalgamation.student_builder import assemble_student, build_blockwise_student

    blockwise = build_blockwise_student(
        teachers, init_from="scratch", width_multiplier=width_multiplier
    )
    coders = build_coders(
        blockwise.candidate_channels(),
        tuple(teachers),
        teacher_channels=tap_teacher_channels(teachers),
    )
    points = {task: int(branch_points.get(task, 1)) for task in teachers}
    return assemble_student(blockwise, coders, teachers, points)


def clone_model(model: Any) -> Any:
    """A fresh copy of a ka_tf model (same config and weights, its own variables)."""
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _conv_layers_at(layer: Any, scale: int) -> list[tuple[Any, int]]:
    import keras

    return [
        (sub, scale)
        for sub in layer._flatten_layers(include_self=True)
        if isinstance(sub, keras.layers.Conv2D)
    ]


def _block_scale(name: str) -> int:
    """Downsampling factor of a SegNet block from its name (``down3`` -> 4, ``up1`` -> 1)."""
    stem = name.rsplit("_", 1)[-1]
    for prefix in ("down", "up"):
        if stem.startswith(prefix) and stem[len(prefix) :].isdigit():
            return 2 ** (int(stem[len(prefix) :]) - 1)
    raise ValueError(f"not a SegNet block name: {name!r}")


def conv_macs(model: Any, image_size: Sequence[int]) -> int:
    """Multiply-accumulates of every Conv2D of a ka_tf SegNet/TargetNet for one image.

    Each conv runs at its block's resolution: encoder block ``down{i}`` at
    ``H / 2**(i-1)``, decoder block ``up{j}`` at ``H / 2**(j-1)``, the heads at full
    size. MACs of one conv = ``h * w * kh * kw * c_in * c_out``.

    Raises:
        ValueError: for a model that is not a ka_tf SegNet or TargetNet.
    """
    height, width = (int(v) for v in image_size)
    blocks = list(getattr(model, "encoder_blocks", None) or [])
    if not blocks or not hasattr(model, "heads"):
        raise ValueError(f"{type(model).__name__} is not a ka_tf SegNet/TargetNet")
    decoder = list(getattr(model, "decoder_blocks", []) or [])
    decoder += list(getattr(model, "trunk_blocks", []) or [])
    for branch in (getattr(model, "branches", None) or {}).values():
        decoder += list(branch)
    convs = []
    for block in blocks + decoder:
        convs += _conv_layers_at(block, _block_scale(block.name))
    for head in model.heads.values():
        convs += _conv_layers_at(head, 1)
    total = 0
    for conv, scale in convs:
        kh, kw, c_in, c_out = (int(v) for v in conv.kernel.shape)
        total += (height // scale) * (width // scale) * kh * kw * c_in * c_out
    return total


def model_summary(model: Any, image_size: Sequence[int], source: str) -> dict[str, Any]:
    """Parameters, conv MACs and FLOPs (= 2 x MACs) of one model for one image."""
    summary: dict[str, Any] = {"class": type(model).__name__, "source": source}
    summary["params"] = int(model.count_params())
    try:
        macs = conv_macs(model, image_size)
        summary["conv_macs"] = macs
        summary["flops"] = 2 * macs
    except ValueError as error:
        summary["flops_skipped"] = str(error)
    return summary


# --- inference ---------------------------------------------------------------------------


def keras_train_steps(model: Any, data: Any) -> Callable[[], int]:
    """A call running ``model.steps_per_execution`` training steps on ``data``, repeated.

    It calls the compiled train function ``Model.fit`` calls between two callback
    rounds, on an iterator of ``data`` (one batch, as ``fit`` gets it from a dataset),
    so one call is what ``fit`` does for that many steps minus callbacks and the
    progress bar. Returns the optimizer's step count, which waits for the steps.
    """
    import tensorflow as tf

    model.make_train_function()
    iterator = iter(tf.data.Dataset.from_tensors(data).repeat())

    def run() -> int:
        model.train_function(iterator)
        return int(model.optimizer.iterations.numpy())

    return run


def keras_forward(models: Sequence[Any], images: Any) -> Callable[[], Any]:
    """A call running each model's ``tf.function``-wrapped forward in turn, to numpy."""
    import tensorflow as tf

    functions = [
        tf.function(lambda x, m=model: m(x, training=False), autograph=False) for model in models
    ]
    tensor = tf.constant(images, tf.float32)

    def run() -> list:
        return [tf.nest.map_structure(lambda t: t.numpy(), fn(tensor)) for fn in functions]

    return run


def keras_frozen_forward(models: Sequence[Any], images: Any) -> Callable[[], Any]:
    """Like :func:`keras_forward`, through each model's forward with its weights frozen
    into the graph (:func:`ka_tf.export.dense_export_module.frozen_function`, the form
    of every ka_tf export endpoint): Grappler folds BatchNorm into the convolutions
    once instead of on every call."""
    import tensorflow as tf

    from ka_tf.export.dense_export_module import frozen_function

    tensor = tf.constant(images, tf.float32)
    spec = [tf.TensorSpec(tensor.shape, tf.float32)]
    functions = [frozen_function(lambda x, m=model: m(x, training=False), spec) for model in models]

    def run() -> list:
        return [tf.nest.map_structure(lambda t: t.numpy(), fn(tensor)) for fn in functions]

    return run


def saved_model_forward(models: Sequence[Any], images: Any, directory: str) -> Callable[[], Any]:
    """Each model exported as ka_tf's SavedModel (``serving_default``: uint8 images, the
    exported outputs) into ``directory``, loaded back and called in turn."""
    import tensorflow as tf

    from ka_tf.export.dense_export_module import SERVING_DEFAULT, DenseExportModule

    signatures = []
    for i, model in enumerate(models):
        module = DenseExportModule(model, images.shape[1:3])
        path = os.path.join(directory, f"saved_model_{i}")
        tf.saved_model.save(module, path, signatures=module.signatures(include_float=False))
        signatures.append(tf.saved_model.load(path))
    tensor = tf.constant(np.clip(np.round(images), 0, 255).astype(np.uint8))

    def run() -> list:
        return [
            {k: v.numpy() for k, v in loaded.signatures[SERVING_DEFAULT](images=tensor).items()}
            for loaded in signatures
        ]

    return run


def export_artifacts(
    models: Mapping[str, Any], formats: Sequence[str], image_size: Sequence[int], out_dir: str
) -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, str]]:
    """Exports each model with :func:`ka_tf.export.export_model` into ``out_dir/<name>``.

    Args:
        models: Artifact name -> float32 ka_tf model.
        formats: Runtimes wanted (``keras`` needs no export and is ignored).
        image_size: ``(H, W)`` of the exported input.
        out_dir: An empty directory.

    Returns:
        ``(name -> {format -> path}, format -> reason it is unavailable,
        name -> reason its export failed)``.
    """
    from ka_tf.export import export_model
    from ka_tf.export.formats import get_format

    wanted = [f for f in formats if f != "keras"]
    unavailable = {}
    for fmt in wanted:
        reason = module_missing(*runtime_modules(fmt))
        if reason:
            unavailable[fmt] = reason
    usable = [f for f in wanted if f not in unavailable]
    paths: dict[str, dict[str, str]] = {name: {} for name in models}
    failed: dict[str, str] = {}
    if not usable:
        return paths, unavailable, failed
    for name, model in models.items():
        directory = os.path.join(out_dir, name)
        try:
            export_model(model, directory, formats=usable, image_size=image_size, name=name)
        except Exception as error:  # any export failure is a skipped row
            failed[name] = short_error("export failed", error)
            continue
        paths[name] = {
            fmt: os.path.join(directory, get_format(fmt).artifacts(name, ("none",))[0])
            for fmt in usable
        }
    return paths, unavailable, failed


def short_error(what: str, error: BaseException, limit: int = 400) -> str:
    """``"<what>: <ErrorType>: <first words of the message>"`` on one line."""
    message = " ".join(str(error).split())
    return f"{what}: {type(error).__name__}: {message}"[:limit]


def runtime_call(
    fmt: str, paths: Sequence[str], images: np.ndarray, threads: int
) -> Callable[[], Any]:
    """A call running the exported models in ``paths`` in turn, in runtime ``fmt``.

    ``saved_model``: the ``serving_default`` signature on uint8 images. ``tflite``:
    the LiteRT interpreter with ``threads`` threads, one image per invoke (the files
    take batch 1). ``onnx``: ONNX Runtime (CPU) with ``threads`` intra-op threads.
    """
    if fmt == "saved_model":
        import tensorflow as tf

        from ka_tf.export.runtimes import SavedModelRunner

        runners = [SavedModelRunner(path) for path in paths]
        tensor = tf.constant(np.clip(np.round(images), 0, 255).astype(np.uint8))

        def run() -> list:
            return [
                {k: v.numpy() for k, v in runner.signature(images=tensor).items()}
                for runner in runners
            ]

        run.keep = runners  # type: ignore[attr-defined]  # the loaded objects must live
        return run
    if fmt == "tflite":
        from ka_tf.export.runtimes import TFLiteRunner

        tflite = [TFLiteRunner(path, num_threads=threads) for path in paths]
        return lambda: [runner(images) for runner in tflite]
    if fmt == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        sessions = [
            onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            for path in paths
        ]
        feeds = [{s.get_inputs()[0].name: images.astype(np.float32)} for s in sessions]
        return lambda: [s.run(None, feed) for s, feed in zip(sessions, feeds, strict=True)]
    if fmt in runtimes():
        # Any other registered format: its own runner, one call per model.
        from ka_tf.export.formats import get_format

        loaded = [get_format(fmt).load(path) for path in paths]
        return lambda: [runner(images) for runner in loaded]
    raise ConfigError(f"unknown runtime {fmt!r}. Expected one of {runtimes()}.")


__all__ = [
    "DEFAULT_BRANCH_POINTS",
    "LocalCall",
    "RemoteCall",
    "Timer",
    "TimingWorker",
    "WorkerError",
    "build_student",
    "build_teachers_from_gin",
    "clone_model",
    "conv_macs",
    "cpu_times",
    "current_rss_mb",
    "export_artifacts",
    "git_checkout",
    "keras_forward",
    "keras_frozen_forward",
    "keras_train_steps",
    "median_of",
    "model_summary",
    "module_missing",
    "parse_branch_points",
    "peak_rss_mb",
    "ratio",
    "runtime_call",
    "runtimes",
    "saved_model_forward",
    "serve_worker",
    "set_threads",
    "short_error",
    "spread",
    "steal_percent",
    "time_calls",
    "time_interleaved",
]
