"""Benchmarks of ka_tf, by section; prints a table and writes JSON.

Usage:
    python tools/benchmark.py --gin_file=gin/demo.gin --output=bench.json \\
        [--image_size=H,W] [--batch_size=B] --sections=inference,training,machine[,synth,tflite] \\
        [--compare_pytorch] [--demo [--demo_bindings=...]] [--noxla] \\
        [--student=s.keras --teachers=a.keras,b.keras] [--formats=keras,saved_model,...] \\
        [--tflite_sizes=256x512] [--tflite_threads=1,2]

Models: by default the teachers are built from the gin configuration with fresh
weights (speed does not depend on weights): the ``build_teacher`` bindings of
``--model_gin`` (parsed first) and ``--gin_file`` (parsed after it), one teacher per
task of the ``TEACHERS`` macro, ``NUM_CLASSES`` classes. The student is a ka_tf
TargetNet assembled from them as the amalgamation does, at the width the gin
configuration binds (``amalgamate.student_width_multiplier``; unbound: the teachers'),
branching at ``--branch_points`` (the demo's choice, semseg:1,depth:1). ``--student`` and
``--teachers`` load ``.keras`` files instead. ``--image_size`` and ``--batch_size``
default to the gin macros ``IMAGE_SIZE`` and ``BATCH_SIZE`` (and are bound back into
gin, so the input pipeline reads the same size). Everything runs in float32.

Every figure is the median, min and max over ``--repeats`` timed runs after a warm-up;
one timed run repeats its call until it lasts ``--min_time_s`` (``calls_per_repeat``).
TensorFlow (and PyTorch, ONNX Runtime) use ``--threads`` threads (default: all cores).
Sections:

- ``inference``: images/s and latency (per batch) of the student and of the two
  teachers run one after the other, in each of ``--formats``: ``keras`` (a
  ``tf.function``-wrapped model call; also ``keras_frozen``, its weights frozen into
  the graph as in every ka_tf export), ``saved_model`` (``serving_default``, uint8
  input), ``tflite`` (LiteRT with 1 and with 2 threads; the files take batch 1 only)
  and ``onnx`` (ONNX Runtime CPU), at batch 1 and batch B. The artifacts come from
  ``ka_tf.export.export_model`` (exported outputs include argmax and softmax).
  ``student_vs_teachers_speedup`` per runtime and batch = teachers' latency /
  student's. Per model: parameters, conv MACs and FLOPs (= 2 x conv MACs, counted
  analytically from the Keras Conv2D layers; see ``benchmarks.harness``).
- ``training``: images/s of the supervised teacher step (the compiled teacher's
  train function, as ``fit`` runs it, ``--steps_per_execution`` steps a call, the gin
  optimizer, task loss ``ce``/``log_l1``; latency is per step) per teacher, and of
  the amalgamation step (``Amalgamator`` in ``finetune`` mode, flip-averaged targets),
  each also with ``jit_compile=True`` (XLA; the error is recorded where it fails;
  ``--noxla`` leaves it out, compiling takes minutes), and the amalgamation step fed
  cached teacher targets (``amalgamate.cache_targets``: the teachers do not run;
  ``cached_targets_speedup``); ``total_s`` includes building, compiling and warm-up. The
  input pipeline alone (``transfer/make_dataset``, images/s; it renders the synthetic
  data on first use).
- ``machine``: float32 GFLOP/s of a ``--matmul_size`` square ``tf.linalg.matmul`` (the
  CPU's practical ceiling) and the student forward's achieved GFLOP/s at batch B, as a
  fraction of it.
- ``synth``: synthetic-data rendering throughput (frames/s) at ``--synth_height`` x
  ``--synth_width`` with ``--synth_workers`` processes over ``--synth_frames`` frames,
  after a warm-up that starts the workers. Rendering includes the layout, pybullet,
  labels, depth and normals; not the TFRecord encoding and writing.
- ``tflite`` (not run by default; needs the ``export`` extra): a mobile latency table
  (``benchmarks/tflite_latency.py``). The student and each teacher exported by
  ``ka_tf.export`` as TFLite fp32, fp16, dynamic and int8 (int8 calibrated on random
  images), at the image size and at each ``--tflite_sizes`` (default 256x512), timed in
  LiteRT's Python interpreter with XNNPACK, batch 1, ``--tflite_threads`` threads
  (default 1 and 2): ``models.<model>.<HxW>.<quantization>.threads_<n>.latency_ms``,
  file size, the operators XNNPACK runs; the teachers in turn, the student vs the fp32
  teachers (``target``: int8 student >= 3x at 1 thread), XNNPACK on vs off, and the
  Python overhead of the timed call.

``--compare_pytorch`` adds ``pytorch``: the same SegNet (semseg teacher: arch, width,
classes, batch, image size) in PyTorch (``benchmarks/pytorch_reference.py``) timed
alternately with the Keras one (repeats interleaved): an SGD training step (Keras:
``--steps_per_execution`` steps per train-function call, as ka_tf trains) and an
eval forward at batch 1 and B through three TensorFlow paths (``keras``: a
``tf.function`` reading the variables; ``keras_frozen``: the weights frozen into the
graph, as every ka_tf export endpoint is; ``saved_model``: ka_tf's SavedModel,
``serving_default``); ``tf_vs_pytorch`` = TensorFlow images/s / PyTorch images/s
(> 1: ka_tf faster), per path. PyTorch runs in a worker process of its own with its default
OpenMP settings, as its users run it (``OMP_WAIT_POLICY`` from the environment is
passed on and recorded); libgomp's spin-waiting threads make its timings swing by
up to 10x on a loaded machine, so benchmark on a quiet one. The worker times its runs
on command, between the Keras runs; the two never overlap. ``--demo`` runs
``tools/demo.py`` in a temporary run directory and records ``demo_wall_s``. Each
section records ``peak_rss_mb`` (getrusage: this process's peak so far, so it includes
the sections before it; not the PyTorch worker's), ``wall_s`` and ``cpu_steal_pct``
(the % of CPU time the hypervisor gave other guests meanwhile, from ``/proc/stat``;
null where unreadable): on a shared VM, a high value means the timings swing.

A runtime that is not installed or a format that does not export is a row
``{"skipped": "<reason>"}``, never a zero. Add a section by writing
``def bench_<name>(setup) -> dict`` and listing it in :data:`SECTIONS`.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from absl import flags

from ka_tf import cli, path_flags
from ka_tf.config import define_gin_flags
from ka_tf.errors import ConfigError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_SECTIONS = ("inference", "training", "machine")
DEFAULT_GIN = "gin/demo.gin"

define_gin_flags()
flags.DEFINE_list(
    "sections",
    list(MODEL_SECTIONS),
    "Comma-separated sections to run: inference, training, machine, synth, tflite.",
)
path_flags.define_path("output", None, "Optional JSON file for the results (written atomically).")
flags.DEFINE_integer("repeats", 3, "Timed repeats per measurement (after a warm-up), >= 1.")
flags.DEFINE_float(
    "min_time_s",
    0.5,
    "Minimum length of one timed repeat, in seconds (> 0): a call is "
    "repeated until it lasts this long.",
)
flags.DEFINE_integer("warmup", 1, "Untimed calls before timing each measurement, >= 1.")
flags.DEFINE_integer(
    "threads", 0, "Intra- and inter-op threads of TF/PyTorch/ONNX Runtime; 0 = all cores."
)
path_flags.define_path(
    "model_gin",
    "gin/models/segnet_vgg16_w0.125.gin",
    "Gin file with the teachers' build_teacher settings, parsed before --gin_file (whose "
    "bindings win); '' to rely on --gin_file alone.",
)
flags.DEFINE_list("image_size", None, "H,W (multiples of 32); default: gin IMAGE_SIZE.")
flags.DEFINE_integer("batch_size", None, "Batch B; default: gin BATCH_SIZE.")
path_flags.define_path("student", None, "A student .keras file (default: built, fresh weights).")
path_flags.define_path_list("teachers", None, "Teacher .keras files (default: built from gin).")
flags.DEFINE_list(
    "branch_points", ["semseg:1", "depth:1"], "TASK:INDEX branch points of the built student."
)
flags.DEFINE_list(
    "formats", ["keras", "saved_model", "tflite", "onnx"], "inference: runtimes to time."
)
flags.DEFINE_boolean(
    "xla", True, "training: also time each step with jit_compile=True (compiling takes minutes)."
)
flags.DEFINE_integer(
    "steps_per_execution",
    10,
    "training: steps per call of the compiled train function, as train_teacher and "
    "amalgamate run them by default (1: one step per call, like train_on_batch).",
    lower_bound=1,
)
flags.DEFINE_integer("matmul_size", 2048, "machine: side of the square matmul, >= 64.")
flags.DEFINE_boolean("compare_pytorch", False, "Also time the same SegNet in PyTorch.")
flags.DEFINE_boolean("demo", False, "Also run tools/demo.py and record demo_wall_s.")
flags.DEFINE_multi_string(
    "demo_bindings", [], "--demo: gin bindings passed to tools/demo.py (repeatable)."
)
flags.DEFINE_integer("synth_frames", 48, "synth: frames per timed repeat, >= 1.")
flags.DEFINE_integer("synth_height", 128, "synth: image height (multiple of 32).")
flags.DEFINE_integer("synth_width", 256, "synth: image width (multiple of 32).")
flags.DEFINE_integer("synth_workers", 2, "synth: rendering processes, >= 1.")
flags.DEFINE_enum("synth_scene", "street", ["street", "indoor"], "synth: scene to render.")
flags.DEFINE_list(
    "tflite_sizes",
    ["256x512"],
    "tflite: HxW sizes (multiples of 32) timed besides the image size; '' for none.",
)
flags.DEFINE_list("tflite_threads", ["1", "2"], "tflite: LiteRT thread counts (>= 1).")
FLAGS = flags.FLAGS


@dataclass
class Setup:
    """What the model sections share: sizes, timing options, models and their sources."""

    image_size: tuple[int, int]
    batch_size: int
    repeats: int
    min_time_s: float
    warmup: int
    threads: int
    steps_per_execution: int = 1
    teachers: dict[str, Any] = field(default_factory=dict)
    student: Any = None
    sources: dict[str, str] = field(default_factory=dict)
    gin_files: list[str] = field(default_factory=list)
    thread_report: dict[str, int] = field(default_factory=dict)

    def timing(self) -> dict[str, Any]:
        """The keyword arguments of ``time_calls``."""
        return {"repeats": self.repeats, "min_time_s": self.min_time_s, "warmup": self.warmup}


def _spread(values: list[float]) -> dict[str, Any]:
    from benchmarks.harness import spread

    return spread(values)


# --- set-up --------------------------------------------------------------------------------


def _gin_macro(name: str, default: Any = None) -> Any:
    import gin

    try:
        return gin.query_parameter(f"%{name}")
    except ValueError:
        return default


def _gin_parameter(name: str, default: Any = None) -> Any:
    import gin

    try:
        return gin.query_parameter(name)
    except ValueError:
        return default


def _parse_image_size() -> tuple[int, int] | None:
    if not FLAGS.image_size:
        return None
    try:
        size = tuple(int(v) for v in FLAGS.image_size)
    except ValueError:
        size = ()
    if len(size) != 2 or any(v <= 0 or v % 32 for v in size):
        raise ConfigError(
            f"--image_size must be H,W with both positive multiples of 32. Received: "
            f"--image_size={','.join(FLAGS.image_size)}."
        )
    return size  # type: ignore[return-value]


def build_setup() -> Setup:
    """Parses gin, resolves sizes and builds (or loads) the teachers and the student."""
    from ka_tf.config import parse_gin_config

    size = _parse_image_size()
    if FLAGS.batch_size is not None and FLAGS.batch_size < 1:
        raise ConfigError(f"--batch_size must be >= 1. Received: --batch_size={FLAGS.batch_size}.")
    gin_files = list(FLAGS.gin_file) or [DEFAULT_GIN]
    if FLAGS.model_gin:
        gin_files = [FLAGS.model_gin, *gin_files]
    bindings = list(FLAGS.gin_bindings)
    if size:
        bindings.append(f"IMAGE_SIZE = ({size[0]}, {size[1]})")
    if FLAGS.batch_size:
        bindings.append(f"BATCH_SIZE = {FLAGS.batch_size}")
    parse_gin_config(gin_files, bindings, FLAGS.gin_search_paths)
    size = size or tuple(_gin_macro("IMAGE_SIZE", (64, 128)))
    setup = Setup(
        image_size=(int(size[0]), int(size[1])),
        batch_size=int(FLAGS.batch_size or _gin_macro("BATCH_SIZE", 8)),
        repeats=FLAGS.repeats,
        min_time_s=FLAGS.min_time_s,
        warmup=FLAGS.warmup,
        threads=FLAGS.threads or os.cpu_count() or 1,
        steps_per_execution=FLAGS.steps_per_execution,
        gin_files=gin_files,
    )
    _load_models(setup)
    return setup


def _load_models(setup: Setup) -> None:
    from benchmarks import harness as benchmarking
    from ka_tf.amalgamation.student_builder import check_teacher
    from ka_tf.evaluation import load_model_file

    if FLAGS.teachers:
        for path in FLAGS.teachers:
            model = load_model_file(path)
            for task in getattr(model, "tasks", ()):
                check_teacher(task, model, path)
                setup.teachers[task] = model
                setup.sources[f"teacher_{task}"] = path
    else:
        tasks = list(_gin_macro("TEACHERS", None) or benchmarking.DEFAULT_BRANCH_POINTS)
        num_classes = _gin_macro("NUM_CLASSES", None)
        setup.teachers = benchmarking.build_teachers_from_gin(tasks, num_classes)
        for task in tasks:
            setup.sources[f"teacher_{task}"] = "built from gin (fresh weights)"
    if FLAGS.student:
        setup.student = load_model_file(FLAGS.student)
        setup.sources["student"] = FLAGS.student
    else:
        points = benchmarking.parse_branch_points(FLAGS.branch_points)
        width = _gin_parameter("amalgamate.student_width_multiplier")
        setup.student = benchmarking.build_student(setup.teachers, points, width)
        setup.sources["student"] = (
            f"TargetNet built from the teachers, branch points {setup.student.branch_points}, "
            f"width {'the teachers' if width is None else width} (gin "
            f"amalgamate.student_width_multiplier; fresh weights)"
        )


# --- sections ------------------------------------------------------------------------------


def _images(batch: int, size: tuple[int, int], seed: int = 0):
    import numpy as np

    return np.random.default_rng(seed).uniform(0, 255, (batch, *size, 3)).astype(np.float32)


def _batches(setup: Setup) -> list[int]:
    return sorted({1, setup.batch_size})


def _speedups(runs: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.harness import median_of, ratio

    speedups = {}
    for row, groups in runs.items():
        student, teachers = groups.get("student", {}), groups.get("teachers", {})
        if "skipped" in groups or "skipped" in student or "skipped" in teachers:
            continue
        speedups[row] = {
            key: ratio(
                median_of(teachers[key], "latency_ms"), median_of(student[key], "latency_ms")
            )
            for key in student
            if median_of(student[key], "latency_ms")
            and median_of(teachers.get(key, {}), "latency_ms")
        }
    return speedups


def bench_inference(setup: Setup) -> dict[str, Any]:
    """Student vs the two teachers in turn, per runtime and batch (see the module docstring)."""
    from benchmarks import harness as benchmarking

    teacher_names = {f"teacher_{task}": model for task, model in setup.teachers.items()}
    models = {"student": setup.student, **teacher_names}
    summaries = {
        name: benchmarking.model_summary(model, setup.image_size, setup.sources[name])
        for name, model in models.items()
    }
    summaries["teachers"] = {
        key: sum(summaries[name][key] for name in teacher_names)
        for key in ("params", "conv_macs", "flops")
        if all(key in summaries[name] for name in teacher_names)
    }
    groups = {"student": ["student"], "teachers": list(teacher_names)}
    images = {batch: _images(batch, setup.image_size) for batch in _batches(setup)}
    runs: dict[str, Any] = {}
    formats = list(dict.fromkeys(FLAGS.formats))
    if "keras" in formats:
        for row, forward in (
            ("keras", benchmarking.keras_forward),
            ("keras_frozen", benchmarking.keras_frozen_forward),
        ):
            runs[row] = {
                group: {
                    f"batch_{b}": benchmarking.time_calls(
                        forward([models[n] for n in names], images[b]), b, **setup.timing()
                    )
                    for b in images
                }
                for group, names in groups.items()
            }
    exported = [f for f in formats if f != "keras"]
    if exported:
        with tempfile.TemporaryDirectory(prefix="ka_tf_bench_") as tmp:
            paths, unavailable, failed = benchmarking.export_artifacts(
                models, exported, setup.image_size, tmp
            )
            for fmt in exported:
                rows = [(f"tflite_{n}_thread{'s' if n > 1 else ''}", n) for n in (1, 2)]
                if fmt != "tflite":
                    rows = [(fmt, setup.threads)]
                for row, threads in rows:
                    if fmt in unavailable:
                        runs[row] = {"skipped": unavailable[fmt]}
                        continue
                    runs[row] = {}
                    for group, names in groups.items():
                        runs[row][group] = _time_runtime(
                            fmt, names, paths, failed, images, threads, setup
                        )
    return {
        "image_size": list(setup.image_size),
        "batch_size": setup.batch_size,
        "threads": setup.threads,
        "models": summaries,
        "student_vs_teachers_params": benchmarking.ratio(
            summaries["student"]["params"], summaries["teachers"].get("params")
        ),
        "student_vs_teachers_speedup": _speedups(runs),
        "runs": runs,
    }


def _time_runtime(fmt, names, paths, failed, images, threads, setup) -> dict[str, Any]:
    from benchmarks import harness as benchmarking

    reasons = [failed[n] for n in names if n in failed]
    if reasons:
        return {"skipped": reasons[0]}
    batches = [1] if fmt == "tflite" else list(images)
    result = {}
    for b in batches:
        try:
            call = benchmarking.runtime_call(
                fmt, [paths[n][fmt] for n in names], images[b], threads
            )
            result[f"batch_{b}"] = benchmarking.time_calls(call, b, **setup.timing())
        except Exception as error:  # a runtime that cannot run the file is a skipped row
            result[f"batch_{b}"] = {"skipped": benchmarking.short_error("run failed", error)}
    if fmt == "tflite" and setup.batch_size != 1:
        result[f"batch_{setup.batch_size}"] = {"skipped": "TFLite files take batch 1 only"}
    return result


def _supervised_call(teacher, task: str, batch: int, setup: Setup, jit_compile: bool):
    import numpy as np
    import tensorflow as tf

    from benchmarks import harness as benchmarking
    from ka_tf.losses import build_loss
    from ka_tf.optim import build_optimizer

    model = benchmarking.clone_model(teacher)
    model.trainable = True
    loss = {"semseg": "ce", "depth": "log_l1", "normals": "cosine"}[task]
    model.compile(
        optimizer=build_optimizer(total_steps=10_000),
        loss={task: build_loss(task, loss)},
        jit_compile=jit_compile,
        steps_per_execution=setup.steps_per_execution,
    )
    rng = np.random.default_rng(1)
    height, width = setup.image_size
    if task == "semseg":
        target = rng.integers(0, model.num_classes, (batch, height, width)).astype(np.int32)
    elif task == "depth":
        target = rng.uniform(1.0, 50.0, (batch, height, width)).astype(np.float32)
    else:
        target = rng.normal(size=(batch, height, width, 3)).astype(np.float32)
        target /= np.linalg.norm(target, axis=-1, keepdims=True)
    x = tf.constant(_images(batch, setup.image_size))
    return benchmarking.keras_train_steps(model, (x, {task: tf.constant(target)}))


def _amalgamation_call(setup: Setup, batch: int, jit_compile: bool, cached: bool = False):
    import tensorflow as tf

    from benchmarks import harness as benchmarking
    from ka_tf.amalgamation.amalgamator import Amalgamator
    from ka_tf.amalgamation.target_cache import storage_form, stored_target
    from ka_tf.constants import IMAGE, TEACHER_TARGET
    from ka_tf.optim import build_optimizer

    teachers = {task: benchmarking.clone_model(t) for task, t in setup.teachers.items()}
    losses = benchmarking.finetune_losses(teachers)
    amalgamator = Amalgamator(
        benchmarking.clone_model(setup.student),
        teachers,
        losses,
        mode="finetune",
        flip_average_targets=True,
    )
    amalgamator.compile(
        optimizer=build_optimizer(total_steps=10_000),
        jit_compile=jit_compile,
        steps_per_execution=setup.steps_per_execution,
    )
    images = tf.constant(_images(batch, setup.image_size))
    amalgamator.prepare(images)
    if not cached:
        return benchmarking.keras_train_steps(amalgamator, images)
    # The batch as a teacher-target cache serves it: the targets stored as the cache
    # stores them (classes for hard_ce, float16 maps), the teachers not run.
    data = {IMAGE: images}
    for task, target in amalgamator.teacher_targets(images).items():
        form = storage_form(task, losses[task])
        data[f"{TEACHER_TARGET}{task}"] = tf.constant(stored_target(form, target["output"]))
    return benchmarking.keras_train_steps(amalgamator, data)


def _timed_or_error(make: Callable[[], Callable[[], Any]], batch: int, setup: Setup) -> dict:
    from benchmarks import harness as benchmarking

    started = time.perf_counter()
    try:
        call = make()
        result = benchmarking.time_calls(
            call, batch, steps_per_call=setup.steps_per_execution, **setup.timing()
        )
    except Exception as error:  # e.g. an op XLA cannot compile: recorded, not fatal
        result = {"error": benchmarking.short_error("failed", error, limit=600)}
    # Building, compiling, tracing and the warm-up included.
    result["total_s"] = time.perf_counter() - started
    return result


def _pipeline_call(batch: int):
    import gin

    from ka_tf.data.pipeline import make_dataset

    for scope in ("transfer", "labelled_train"):
        try:
            with gin.config_scope(scope):
                dataset = make_dataset()
        except TypeError:  # this gin file does not configure that dataset
            continue
        iterator = iter(dataset)
        return scope, lambda it=iterator: next(it)
    raise ConfigError("no transfer/ or labelled_train/make_dataset in the gin configuration")


def bench_training(setup: Setup) -> dict[str, Any]:
    """Teacher and amalgamation steps (plain and XLA) and the input pipeline alone."""
    from benchmarks import harness as benchmarking

    batch = setup.batch_size
    result: dict[str, Any] = {"batch_size": batch, "image_size": list(setup.image_size)}
    variants = [("", False)] + ([("_xla", True)] if FLAGS.xla else [])
    for task, teacher in setup.teachers.items():
        for suffix, jit in variants:
            result[f"teacher_step_{task}{suffix}"] = _timed_or_error(
                lambda t=teacher, k=task, j=jit: _supervised_call(t, k, batch, setup, j),
                batch,
                setup,
            )
    for suffix, jit in variants:
        result[f"amalgamation_step{suffix}"] = _timed_or_error(
            lambda j=jit: _amalgamation_call(setup, batch, j), batch, setup
        )
    result["amalgamation_step_cached_targets"] = _timed_or_error(
        lambda: _amalgamation_call(setup, batch, False, cached=True), batch, setup
    )
    result["cached_targets_speedup"] = benchmarking.ratio(
        benchmarking.median_of(result["amalgamation_step"], "latency_ms"),
        benchmarking.median_of(result["amalgamation_step_cached_targets"], "latency_ms"),
    )
    try:
        scope, call = _pipeline_call(batch)
        result["input_pipeline"] = {
            "dataset": f"{scope}/make_dataset",
            **benchmarking.time_calls(call, batch, **setup.timing()),
        }
    except Exception as error:  # no synthetic data / no dataset in this gin
        result["input_pipeline"] = {"skipped": benchmarking.short_error("unavailable", error)}
    result["input_pipeline_vs_amalgamation_step"] = benchmarking.ratio(
        benchmarking.median_of(result["input_pipeline"]),
        benchmarking.median_of(result["amalgamation_step"]),
    )
    return result


def bench_machine(setup: Setup) -> dict[str, Any]:
    """The CPU's float32 matmul GFLOP/s and the student forward's share of it."""
    import tensorflow as tf

    from benchmarks import harness as benchmarking

    n = FLAGS.matmul_size
    if n < 64:
        raise ConfigError(f"--matmul_size must be >= 64. Received: --matmul_size={n}.")
    a = tf.random.stateless_normal([n, n], seed=[1, 2])
    b = tf.random.stateless_normal([n, n], seed=[3, 4])
    matmul = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))
    timing = benchmarking.time_calls(lambda: matmul().numpy(), 1, **setup.timing())
    gflop = 2.0 * n**3 / 1e9
    peak = [gflop / (ms / 1000.0) for ms in timing["latency_ms"]["runs"]]
    batch = setup.batch_size
    forward = benchmarking.time_calls(
        benchmarking.keras_forward([setup.student], _images(batch, setup.image_size)),
        batch,
        **setup.timing(),
    )
    macs = benchmarking.conv_macs(setup.student, setup.image_size)
    achieved = [2.0 * macs * batch / 1e9 / (ms / 1000.0) for ms in forward["latency_ms"]["runs"]]
    return {
        "matmul_size": n,
        "threads": setup.threads,
        "matmul_gflops": _spread(peak),
        "student_forward": {"batch": batch, "flops_per_image": 2 * macs, **forward},
        "student_forward_gflops": _spread(achieved),
        "student_fraction_of_matmul_peak": _spread(
            [x / p for x, p in zip(achieved, peak, strict=True)]
        ),
        "flops_counting": "2 x conv MACs, analytic from the Keras Conv2D layers",
    }


def bench_synth(setup: Setup | None = None) -> dict[str, Any]:
    """Rendering throughput of the synthetic benchmark (frames/s)."""
    import multiprocessing

    from ka_tf.data.synth.config import resolve_scene_config
    from ka_tf.data.synth.generate import render_task, validate_request

    del setup
    scene, workers = FLAGS.synth_scene, FLAGS.synth_workers
    height, width, frames = FLAGS.synth_height, FLAGS.synth_width, FLAGS.synth_frames
    validate_request(scene, "val", frames, height, width)
    if workers < 1:
        raise ConfigError(f"--synth_workers must be >= 1. Received: {workers}.")
    config = resolve_scene_config(scene)

    def tasks(start: int, count: int) -> list[tuple]:
        return [(scene, "val", 0, i, height, width, config) for i in range(start, start + count)]

    fps = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        list(pool.imap(render_task, tasks(10_000, 2 * workers), chunksize=2))  # warm-up
        for repeat in range(FLAGS.repeats):
            started = time.perf_counter()
            list(pool.imap(render_task, tasks(repeat * frames, frames), chunksize=2))
            fps.append(frames / (time.perf_counter() - started))
    return {
        "scene": scene,
        "height": height,
        "width": width,
        "workers": workers,
        "frames_per_repeat": frames,
        "frames_per_s": _spread(fps),
        "target_frames_per_s": 30.0,
        "cpu_count": os.cpu_count(),
    }


def bench_pytorch(setup: Setup) -> dict[str, Any]:
    """The semseg SegNet in Keras and in PyTorch, timed alternately (``tf_vs_pytorch``).

    PyTorch runs in a :class:`~benchmarks.harness.TimingWorker` process (its OpenMP
    threads apart from TensorFlow's pools, PyTorch's default OpenMP settings), which
    times its runs on command between the Keras runs timed here.
    """
    from benchmarks import harness as benchmarking

    reason = benchmarking.module_missing("torch")
    if reason:
        return {"skipped": reason}
    task = "semseg" if "semseg" in setup.teachers else None
    if task is None:
        return {"skipped": "no semseg teacher to compare"}
    teacher = setup.teachers[task]
    arch = f"segnet_{teacher.arch}{'_bn' if teacher.batch_norm else ''}"
    model_options = {
        "num_classes": teacher.num_classes,
        "width_multiplier": teacher.width_multiplier,
        "arch": arch,
        "channels": list(teacher.channels),
    }
    options = {**model_options, "image_size": list(setup.image_size)}
    reference = "benchmarks.pytorch_reference"
    with benchmarking.TimingWorker({}, [REPO_ROOT]) as worker:
        threads = worker.call(f"{reference}:set_threads", setup.threads)
        result: dict[str, Any] = {
            "model": f"SegNet {arch} width x{teacher.width_multiplier} semseg "
            f"({teacher.num_classes} classes)",
            "threads": {**setup.thread_report, **threads},
            "pytorch_process": "separate worker process, timed alternately with Keras",
            "training_optimizer": "SGD lr 0.01, no momentum (both)",
            "params_trainable": {
                "keras": int(sum(int(v.numpy().size) for v in teacher.trainable_variables)),
                "pytorch": int(worker.call(f"{reference}:model_parameter_count", **model_options)),
            },
        }
        batch = setup.batch_size
        keras_step = _keras_sgd_step(teacher, batch, setup)
        torch_step = worker.build(f"{reference}:train_step_call", batch=batch, **options)
        result["training_step"] = benchmarking.time_interleaved(
            {"keras": keras_step, "pytorch": torch_step},
            batch,
            steps_per_call={"keras": setup.steps_per_execution},
            **setup.timing(),
        )
        result["inference"] = {}
        result["inference_paths"] = {
            "keras": "a tf.function of model(x, training=False): weights read as variables, "
            "BatchNorm folded into each conv on every call",
            "keras_frozen": "the same forward with its weights frozen into the graph "
            "(ka_tf.export.dense_export_module.frozen_function)",
            "saved_model": "ka_tf's SavedModel export, serving_default (uint8 in; argmax "
            "and softmax out, which PyTorch's forward does not compute)",
            "pytorch": "model.eval() under torch.inference_mode()",
        }
        with tempfile.TemporaryDirectory(prefix="ka_tf_bench_sm_") as tmp:
            for b in _batches(setup):
                images = _images(b, setup.image_size)
                calls = {
                    "keras": benchmarking.keras_forward([teacher], images),
                    "keras_frozen": benchmarking.keras_frozen_forward([teacher], images),
                    "saved_model": benchmarking.saved_model_forward(
                        [teacher], images, os.path.join(tmp, f"batch_{b}")
                    ),
                    "pytorch": worker.build(f"{reference}:inference_call", batch=b, **options),
                }
                result["inference"][f"batch_{b}"] = benchmarking.time_interleaved(
                    calls, b, **setup.timing()
                )

    def tf_vs_pytorch(entry: dict, path: str = "keras") -> float | None:
        return benchmarking.ratio(
            benchmarking.median_of(entry[path]), benchmarking.median_of(entry["pytorch"])
        )

    result["tf_vs_pytorch"] = {"training_step": tf_vs_pytorch(result["training_step"])}
    for key, entry in result["inference"].items():
        for path in ("keras", "keras_frozen", "saved_model"):
            suffix = "" if path == "keras" else f"_{path}"
            result["tf_vs_pytorch"][f"inference_{key}{suffix}"] = tf_vs_pytorch(entry, path)
    return result


def _keras_sgd_step(teacher, batch: int, setup: Setup):
    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks import harness as benchmarking
    from ka_tf.losses import build_loss

    model = benchmarking.clone_model(teacher)
    model.trainable = True
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss={model.task: build_loss(model.task, "ce")},
        steps_per_execution=setup.steps_per_execution,
    )
    height, width = setup.image_size
    labels = np.random.default_rng(2).integers(0, model.num_classes, (batch, height, width))
    x = tf.constant(_images(batch, setup.image_size, seed=1))
    y = {model.task: tf.constant(labels.astype(np.int32))}
    return benchmarking.keras_train_steps(model, (x, y))


def bench_demo(setup: Setup | None = None) -> dict[str, Any]:
    """Wall time of ``tools/demo.py`` end to end, in a fresh temporary run directory."""
    del setup
    with tempfile.TemporaryDirectory(prefix="ka_tf_demo_") as run_dir:
        command = [sys.executable, "tools/demo.py", f"--run_dir={run_dir}"]
        command += [f"--gin_bindings={b}" for b in FLAGS.demo_bindings]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
    result: dict[str, Any] = {"demo_wall_s": wall, "returncode": done.returncode}
    if done.returncode != 0:
        result["error"] = " ".join(done.stderr.strip().splitlines()[-3:])[-600:]
    if FLAGS.demo_bindings:
        result["gin_bindings"] = list(FLAGS.demo_bindings)
    return result


def bench_tflite(setup: Setup) -> dict[str, Any]:
    """The mobile latency table (``benchmarks/tflite_latency.py``)."""
    from benchmarks import tflite_latency

    return tflite_latency.bench_tflite(
        setup,
        tflite_latency.parse_sizes(FLAGS.tflite_sizes),
        tflite_latency.parse_threads(FLAGS.tflite_threads),
    )


SECTIONS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "inference": bench_inference,
    "training": bench_training,
    "machine": bench_machine,
    "synth": bench_synth,
    "tflite": bench_tflite,
}


# --- output --------------------------------------------------------------------------------


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _rows(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict) and "median" in value and "runs" in value:
        return [
            (
                prefix,
                f"{value['median']:.4g} (min {value['min']:.4g}, max {value['max']:.4g})",
            )
        ]
    if isinstance(value, dict):
        rows = []
        for key, item in value.items():
            if key in ("calls_per_repeat", "batch") or (key == "runs" and isinstance(item, list)):
                continue
            rows += _rows(f"{prefix}.{key}" if prefix else key, item)
        return rows
    return [(prefix, _format_value(value))]


def print_table(results: dict[str, dict[str, Any]]) -> None:
    """Prints every figure as ``section  key.path  median (min, max)``."""
    rows = []
    for section, result in results.items():
        rows += [(section, key, text) for key, text in _rows("", result)]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for section, key, text in rows:
        print(f"{section:<{widths[0]}}  {key:<{widths[1]}}  {text}")


def _run_section(name: str, function: Callable, setup: Any) -> dict[str, Any]:
    from benchmarks.harness import cpu_times, peak_rss_mb, steal_percent

    started, ticks = time.perf_counter(), cpu_times()
    result = function(setup)
    result["wall_s"] = time.perf_counter() - started
    result["peak_rss_mb"] = peak_rss_mb()
    result["cpu_steal_pct"] = steal_percent(ticks, cpu_times())
    return result


def main(argv: list[str]) -> int:
    del argv
    unknown = [name for name in FLAGS.sections if name not in SECTIONS]
    if unknown or not FLAGS.sections:
        raise ConfigError(
            f"unknown benchmark section(s). Received: --sections={','.join(FLAGS.sections)}. "
            f"Expected a comma-separated subset of {sorted(SECTIONS)}."
        )
    if FLAGS.repeats < 1:
        raise ConfigError(f"--repeats must be >= 1. Received: --repeats={FLAGS.repeats}.")
    if FLAGS.min_time_s <= 0 or FLAGS.warmup < 1 or FLAGS.threads < 0:
        raise ConfigError(
            f"--min_time_s must be > 0, --warmup >= 1 and --threads >= 0. Received: "
            f"--min_time_s={FLAGS.min_time_s}, --warmup={FLAGS.warmup}, "
            f"--threads={FLAGS.threads}."
        )
    from benchmarks.harness import parse_branch_points, runtimes

    bad = [f for f in FLAGS.formats if f not in runtimes()]
    if bad or not FLAGS.formats:
        raise ConfigError(
            f"unknown inference format(s) {bad}. Received: --formats={','.join(FLAGS.formats)}. "
            f"Expected a comma-separated subset of {','.join(runtimes())}."
        )
    parse_branch_points(FLAGS.branch_points)
    _parse_image_size()
    if FLAGS.output and os.path.isdir(FLAGS.output):
        raise ConfigError(f"--output={FLAGS.output} is a directory, expected a JSON file path.")
    if "tflite" in FLAGS.sections:
        from benchmarks.tflite_latency import check_options

        check_options(FLAGS.tflite_sizes, FLAGS.tflite_threads)
    needs_models = FLAGS.compare_pytorch or any(
        s in (*MODEL_SECTIONS, "tflite") for s in FLAGS.sections
    )
    setup = None
    threads: dict[str, Any] = {}
    if needs_models:
        from benchmarks.harness import set_threads

        threads = set_threads(FLAGS.threads or os.cpu_count() or 1)
        setup = build_setup()
        setup.thread_report = threads
    results = {name: _run_section(name, SECTIONS[name], setup) for name in FLAGS.sections}
    if FLAGS.compare_pytorch:
        results["pytorch"] = _run_section("pytorch", bench_pytorch, setup)
    if FLAGS.demo:
        results["demo"] = _run_section("demo", bench_demo, setup)
    print_table(results)
    if FLAGS.output:
        from ka_tf.io_utils import atomic_write_json

        header: dict[str, Any] = {
            "machine": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        }
        if setup is not None:
            header.update(
                gin_files=setup.gin_files,
                image_size=list(setup.image_size),
                batch_size=setup.batch_size,
                precision="float32",
                threads=threads,
            )
        atomic_write_json(FLAGS.output, {**header, **results})
        print(f"wrote {FLAGS.output}")
    return 0


def run() -> None:
    """`python tools/benchmark.py` (a checkout tool: it needs benchmarks/ and torch)."""
    cli.run(main)


if __name__ == "__main__":
    run()
