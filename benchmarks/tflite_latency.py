"""The ``tflite`` section of ``tools/benchmark.py``: a mobile latency table.

Every model of the set-up (the student and each teacher) is exported with
:func:`ka_tf.export.export_model`, the files ``tools/export.py`` ships, as TFLite
``fp32``, ``fp16`` (float16 weights), ``dynamic`` (int8 weights, dynamic-range
quantisation) and ``int8`` (full integer, float32 input and outputs), at the set-up's
image size (the demo's) and at each ``--tflite_sizes``. ``int8`` is calibrated on
random uniform images: latency does not depend on the calibrated scales (quality is
not measured here). Each file is timed in LiteRT's Python interpreter
(``ai_edge_litert``, the ``export`` extra) with its default XNNPACK delegate, batch 1,
with each of ``--tflite_threads`` threads; figures are median, min and max over
``--repeats`` timed runs (``benchmarks.harness.time_interleaved``: all files of one
size and thread count alternate, so machine load hits them alike).

What is timed is ``Interpreter.invoke()`` on an input set once, as LiteRT's C++
``benchmark_model`` times ``Invoke``. No registry package ships that binary
(ai-edge-litert's ``litert-benchmark`` is a Python script over the same library;
litert-cli downloads ``benchmark_model`` from outside the registry at run time), so
the section measures what Python adds and states it (``python_overhead``): one
``invoke()`` of a one-op model (the floor under every figure) and, per size, the
student's ``set_tensor + invoke + get_tensor`` against ``invoke()`` alone (the input
and output copies a Python caller pays on top).

XNNPACK: ``Interpreter(experimental_op_resolver_type=AUTO)``, the default, applies the
XNNPACK delegate with the interpreter's ``num_threads`` when the tensors are
allocated; each file's graph is then inspected (``xnnpack``: delegate partitions,
operators inside them, the operators left to the builtin kernels), and the student's
files at the first size are timed once more with
``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (``xnnpack_off_check``), which proves it on.

Derived figures, per size and thread count: ``teachers_in_turn_ms`` (the teachers'
medians summed), ``student_vs_fp32_teachers`` (the student in each quantisation
against the float32 teachers in turn), ``student_vs_teachers_same_quantization``, and
``target``: the int8 student at least 3x faster than the fp32 teachers in turn at 1
thread.
"""

from __future__ import annotations

import collections
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ka_tf.errors import ConfigError

# Table key -> ka_tf.export's quantisation name.
QUANTIZATIONS = {"fp32": "none", "fp16": "fp16", "dynamic": "dynamic", "int8": "int8"}
CALIBRATION_IMAGES = 8
TARGET_SPEEDUP = 3.0
LITERT_MODULE = "ai_edge_litert"
SIZE_DIVISOR = 32

RUNTIME_NOTE = (
    "LiteRT's Python Interpreter (ai_edge_litert): no registry package ships LiteRT's "
    "benchmark_model binary (ai-edge-litert's litert-benchmark is a Python script over "
    "the same library; litert-cli downloads benchmark_model from outside the registry)"
)
TIMED_CALL = (
    "Interpreter.invoke() on an input set once (as benchmark_model times Invoke); "
    "the Python cost on top is in python_overhead"
)
XNNPACK_NOTE = (
    "LiteRT's default XNNPACK delegate, applied by Interpreter(experimental_op_resolver_type="
    "AUTO) (the default) with the interpreter's num_threads at allocate_tensors; library "
    "default delegate flags. Per file: its delegate partitions and the operators left to "
    "the builtin kernels (from the graph); xnnpack_off_check times the student without it"
)
QUANTIZATION_NOTES = {
    "fp32": "float32 weights and compute",
    "fp16": "float16 weights, dequantized to float32 at load: XNNPACK computes in float32 "
    "(this interpreter does not ask it for float16 inference)",
    "dynamic": "int8 weights, float32 activations quantized on the fly (dynamic range)",
    "int8": "full integer: int8 weights and activations, float32 input and outputs",
}


def size_key(size: Sequence[int]) -> str:
    """``(256, 512)`` -> ``"256x512"`` (the table's size key)."""
    return f"{int(size[0])}x{int(size[1])}"


def parse_sizes(items: Sequence[str]) -> list[tuple[int, int]]:
    """``["256x512"]`` -> ``[(256, 512)]``, deduplicated, in order.

    Raises:
        ConfigError: on an item that is not ``HxW`` with positive multiples of 32.
    """
    sizes = []
    for item in items:
        height, sep, width = item.strip().lower().partition("x")
        try:
            size = (int(height), int(width)) if sep else None
        except ValueError:
            size = None
        if size is None or any(v <= 0 or v % SIZE_DIVISOR for v in size):
            raise ConfigError(
                f"bad --tflite_sizes item {item!r}. Expected HxW sizes, both positive "
                f"multiples of {SIZE_DIVISOR}, e.g. --tflite_sizes=256x512."
            )
        sizes.append(size)
    return list(dict.fromkeys(sizes))


def parse_threads(items: Sequence[str]) -> list[int]:
    """``["1", "2"]`` -> ``[1, 2]``, deduplicated and sorted.

    Raises:
        ConfigError: on an empty list or an item that is not an integer >= 1.
    """
    try:
        threads = [int(item) for item in items]
    except ValueError:
        threads = []
    if not threads or any(n < 1 for n in threads):
        raise ConfigError(
            f"--tflite_threads must be thread counts >= 1. Received: "
            f"--tflite_threads={','.join(items)}. Expected e.g. --tflite_threads=1,2."
        )
    return sorted(set(threads))


def check_options(sizes: Sequence[str], threads: Sequence[str]) -> None:
    """Validates the section's flags and that LiteRT is installed, before any work.

    Raises:
        ConfigError: a bad ``--tflite_sizes`` or ``--tflite_threads``.
        ka_tf.extras.MissingExtraError: ``ai_edge_litert`` is missing (one line naming
            the ``export`` extra).
    """
    from ka_tf import extras

    parse_sizes(sizes)
    parse_threads(threads)
    extras.check(LITERT_MODULE, "--sections=tflite (the TFLite latency table)")


# --- files ---------------------------------------------------------------------------------


def export_tflite(
    model: Any, name: str, size: tuple[int, int], calibration: list[np.ndarray], directory: str
) -> dict[str, str]:
    """Exports ``model`` at ``size`` in every quantisation; returns table key -> file path.

    :func:`ka_tf.export.export_model` with ``formats=["tflite"]``: the files
    ``tools/export.py`` writes (float32 rebuild at ``size``, outputs with argmax and
    softmax, builtin operators only, parity-checked on one image).
    """
    from ka_tf.export import export_model
    from ka_tf.export.formats import tflite_filename

    export_model(
        model,
        directory,
        formats=["tflite"],
        tflite_quantizations=list(QUANTIZATIONS.values()),
        image_size=size,
        representative_images=calibration,
        parity_images=np.stack(calibration[:1]),
        parity_source="one random uniform image (the first calibration image)",
        name=name,
    )
    return {
        key: os.path.join(directory, tflite_filename(quant, name))
        for key, quant in QUANTIZATIONS.items()
    }


def one_op_model(shape: Sequence[int] = (1, 1)) -> bytes:
    """A TFLite model of one ADD on a float32 tensor of ``shape`` (delegated to XNNPACK)."""
    import tensorflow as tf

    def add_one(x):
        return x + 1.0

    function = tf.function(
        add_one, input_signature=[tf.TensorSpec(list(shape), tf.float32)], autograph=False
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], tf.Module()
    )
    return converter.convert()


# --- LiteRT --------------------------------------------------------------------------------


def load_interpreter(source: str | bytes, threads: int, xnnpack: bool = True) -> tuple[Any, int]:
    """A LiteRT interpreter with its tensors allocated, and the model's operator count.

    ``source`` is a ``.tflite`` path or the model's bytes. ``xnnpack=False`` uses
    ``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (the builtin kernels alone).
    """
    from ka_tf import extras

    extras.require(LITERT_MODULE, "--sections=tflite (the TFLite latency table)")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    source_kwarg = (
        {"model_content": source} if isinstance(source, bytes) else {"model_path": source}
    )
    interpreter = Interpreter(
        **source_kwarg, num_threads=threads, experimental_op_resolver_type=resolver
    )
    model_ops = len(interpreter._get_ops_details())  # before the delegate adds its nodes
    interpreter.allocate_tensors()
    return interpreter, model_ops


def delegation(interpreter: Any, model_ops: int) -> dict[str, Any]:
    """Which of the model's operators the default delegate (XNNPACK) took.

    After ``allocate_tensors`` the graph holds the model's nodes and then one
    ``DELEGATE`` node per partition; an operator is inside a partition when it lies
    between the partition's inputs and outputs.
    """
    ops = interpreter._get_ops_details()
    model, delegates = ops[:model_ops], ops[model_ops:]
    producer = {int(t): op["index"] for op in model for t in op["outputs"] if t >= 0}
    inside: set[int] = set()
    for node in delegates:
        boundary = {int(t) for t in node["inputs"] if t >= 0}
        stack = [int(t) for t in node["outputs"] if t >= 0]
        while stack:
            tensor = stack.pop()
            op = producer.get(tensor)
            if tensor in boundary or op is None or op in inside:
                continue
            inside.add(op)
            stack += [int(t) for t in ops[op]["inputs"] if t >= 0]
    outside = collections.Counter(op["op_name"] for op in model if op["index"] not in inside)
    return {
        "partitions": len(delegates),
        "ops": len(model),
        "ops_in_xnnpack": len(inside),
        "ops_outside": ", ".join(f"{n} x{c}" for n, c in sorted(outside.items())) or "none",
    }


def _input(interpreter: Any, seed: int = 0) -> tuple[int, np.ndarray]:
    detail = interpreter.get_input_details()[0]
    image = np.random.default_rng(seed).uniform(0, 255, detail["shape"])
    return detail["index"], image.astype(detail["dtype"])


def invoke_call(interpreter: Any) -> Callable[[], Any]:
    """``interpreter.invoke`` with a random image (0..255) set as its input, once."""
    index, image = _input(interpreter)
    interpreter.set_tensor(index, image)
    return interpreter.invoke


def full_call(interpreter: Any) -> Callable[[], list[np.ndarray]]:
    """``set_tensor + invoke + get_tensor`` of every output: a Python caller's whole call."""
    index, image = _input(interpreter)
    outputs = [detail["index"] for detail in interpreter.get_output_details()]

    def run() -> list[np.ndarray]:
        interpreter.set_tensor(index, image)
        interpreter.invoke()
        return [interpreter.get_tensor(i) for i in outputs]

    return run


# --- the section ---------------------------------------------------------------------------


def _latency(timed: Mapping[str, Any]) -> dict[str, Any]:
    return {"latency_ms": timed["latency_ms"], "calls_per_repeat": timed["calls_per_repeat"]}


def _time_files(
    table: dict[str, Any],
    key: str,
    files: Mapping[tuple[str, str], str],
    threads: Sequence[int],
    timing: Mapping[str, Any],
) -> None:
    """Times every file of one size with each thread count, files alternating."""
    from benchmarks import harness

    for n in threads:
        calls = {}
        for (name, quant), path in files.items():
            entry = table[name][key][quant]
            try:
                interpreter, model_ops = load_interpreter(path, n)
                if "xnnpack" not in entry:
                    entry["xnnpack"] = delegation(interpreter, model_ops)
                call = invoke_call(interpreter)
                call()  # a file LiteRT cannot run is a skipped row, not a failed section
            except Exception as error:
                entry[f"threads_{n}"] = {"skipped": harness.short_error("LiteRT failed", error)}
                continue
            calls[f"{name}/{quant}"] = call
        if not calls:
            continue
        timed = harness.time_interleaved(calls, 1, **timing)
        for label, result in timed.items():
            name, quant = label.split("/")
            table[name][key][quant][f"threads_{n}"] = _latency(result)
        del calls, timed  # the interpreters go before the next thread count loads its own


def _xnnpack_off_check(
    files: Mapping[tuple[str, str], str], key: str, threads: int, timing: Mapping[str, Any]
) -> dict[str, Any]:
    """The student's files at one size: XNNPACK vs the builtin kernels, alternating."""
    from benchmarks import harness

    check: dict[str, Any] = {"size": key, "threads": threads, "model": "student"}
    for (name, quant), path in files.items():
        if name != "student":
            continue
        try:
            with_xnnpack = invoke_call(load_interpreter(path, threads)[0])
            builtin = invoke_call(load_interpreter(path, threads, xnnpack=False)[0])
            timed = harness.time_interleaved(
                {"xnnpack": with_xnnpack, "builtin": builtin}, 1, **timing
            )
        except Exception as error:
            check[quant] = {"skipped": harness.short_error("LiteRT failed", error)}
            continue
        check[quant] = {
            "xnnpack_ms": timed["xnnpack"]["latency_ms"],
            "builtin_kernels_ms": timed["builtin"]["latency_ms"],
            "xnnpack_speedup": harness.ratio(
                harness.median_of(timed["builtin"], "latency_ms"),
                harness.median_of(timed["xnnpack"], "latency_ms"),
            ),
        }
    return check


def _io_overhead(path: str, threads: int, timing: Mapping[str, Any]) -> dict[str, Any]:
    """``invoke()`` alone vs ``set_tensor + invoke + get_tensor`` on one file, alternating."""
    from benchmarks import harness

    try:
        interpreter = load_interpreter(path, threads)[0]
        timed = harness.time_interleaved(
            {"invoke": invoke_call(interpreter), "full": full_call(interpreter)}, 1, **timing
        )
    except Exception as error:
        return {"skipped": harness.short_error("LiteRT failed", error)}
    invoke, full = timed["invoke"]["latency_ms"], timed["full"]["latency_ms"]
    return {
        "invoke_only_ms": invoke,
        "set_invoke_get_ms": full,
        # The fastest runs are the least disturbed by other load; medians can swing by
        # more than the copies cost.
        "io_copy_ms_of_minima": full["min"] - invoke["min"],
    }


def _empty_invoke(threads: int, timing: Mapping[str, Any]) -> dict[str, Any]:
    """One ``invoke()`` of a one-op model, in microseconds: the floor of every figure."""
    from benchmarks import harness

    try:
        call = invoke_call(load_interpreter(one_op_model(), threads)[0])
        timed = harness.time_calls(call, 1, **timing)
    except Exception as error:
        return {"skipped": harness.short_error("failed", error)}
    return {
        "model": "one ADD on a [1, 1] float32 tensor (delegated to XNNPACK)",
        "invoke_us": harness.spread([1000.0 * ms for ms in timed["latency_ms"]["runs"]]),
    }


def _median(table: Mapping[str, Any], name: str, key: str, quant: str, threads: int):
    from benchmarks import harness

    entry = table.get(name, {}).get(key, {}).get(quant, {})
    return harness.median_of(entry.get(f"threads_{threads}", {}), "latency_ms")


def derived_figures(
    table: Mapping[str, Any], keys: Sequence[str], threads: Sequence[int], teachers: Sequence[str]
) -> dict[str, Any]:
    """Teachers in turn, speed-ups and the target from the latency table (medians)."""
    from benchmarks import harness

    in_turn: dict[str, Any] = {}
    vs_fp32: dict[str, Any] = {}
    same: dict[str, Any] = {}
    target: dict[str, Any] = {
        "rule": f"int8 student >= {TARGET_SPEEDUP:g}x faster than the fp32 teachers in turn, "
        f"1 thread",
        "threshold": TARGET_SPEEDUP,
    }
    for key in keys:
        for n in threads:
            thread_key = f"threads_{n}"
            summed = {}
            for quant in QUANTIZATIONS:
                medians = [_median(table, t, key, quant, n) for t in teachers]
                summed[quant] = (
                    sum(medians) if medians and all(m is not None for m in medians) else None
                )
            student = {q: _median(table, "student", key, q, n) for q in QUANTIZATIONS}
            in_turn.setdefault(key, {})[thread_key] = summed
            vs_fp32.setdefault(key, {})[thread_key] = {
                q: harness.ratio(summed["fp32"], student[q]) for q in QUANTIZATIONS
            }
            same.setdefault(key, {})[thread_key] = {
                q: harness.ratio(summed[q], student[q]) for q in QUANTIZATIONS
            }
            if n == 1:
                speedup = vs_fp32[key][thread_key]["int8"]
                target[key] = {
                    "speedup": speedup,
                    "met": None if speedup is None else speedup >= TARGET_SPEEDUP,
                }
    return {
        "teachers_in_turn_ms": in_turn,
        "student_vs_fp32_teachers": vs_fp32,
        "student_vs_teachers_same_quantization": same,
        "target": target,
    }


def _litert_version() -> str:
    import importlib.metadata

    try:
        return f"ai-edge-litert {importlib.metadata.version('ai-edge-litert')}"
    except importlib.metadata.PackageNotFoundError:
        return "ai_edge_litert (version unknown)"


def bench_tflite(
    setup: Any,
    sizes: Sequence[tuple[int, int]],
    threads: Sequence[int],
    export: Callable[..., dict[str, str]] = export_tflite,
) -> dict[str, Any]:
    """The ``tflite`` section (see the module docstring).

    Args:
        setup: The benchmark's ``Setup`` (``student``, ``teachers``, ``image_size``,
            ``sources``, ``timing()``).
        sizes: ``(H, W)`` sizes timed after ``setup.image_size``.
        threads: LiteRT thread counts.
        export: ``(model, name, size, calibration, directory) -> {quantisation: path}``
            (default :func:`export_tflite`).

    Returns:
        The section's JSON: ``models`` (model -> size -> quantisation -> ``size_bytes``,
        ``xnnpack``, ``threads_<n>`` latency), the derived figures and how it was measured.
    """
    from benchmarks import harness

    timing = setup.timing()
    teacher_names = [f"teacher_{task}" for task in setup.teachers]
    models = {"student": setup.student}
    models.update({f"teacher_{task}": model for task, model in setup.teachers.items()})
    all_sizes = list(dict.fromkeys([tuple(int(v) for v in setup.image_size), *map(tuple, sizes)]))
    keys = [size_key(size) for size in all_sizes]
    threads = sorted(set(threads))
    first_threads = 1 if 1 in threads else threads[0]
    table: dict[str, Any] = {
        name: {"source": setup.sources.get(name, ""), "params": int(model.count_params())}
        for name, model in models.items()
    }
    overhead: dict[str, Any] = {"empty_model": _empty_invoke(first_threads, timing)}
    xnnpack_off: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ka_tf_tflite_") as tmp:
        for size, key in zip(all_sizes, keys, strict=True):
            rng = np.random.default_rng(1)
            calibration = list(
                rng.uniform(0, 255, (CALIBRATION_IMAGES, *size, 3)).astype(np.float32)
            )
            files: dict[tuple[str, str], str] = {}
            for name, model in models.items():
                try:
                    paths = export(model, name, size, calibration, os.path.join(tmp, key, name))
                except Exception as error:  # a model that does not export is a skipped row
                    table[name][key] = {"skipped": harness.short_error("export failed", error)}
                    continue
                table[name][key] = {}
                for quant, path in paths.items():
                    table[name][key][quant] = {
                        "size_bytes": os.path.getsize(path),
                        "size_mb": os.path.getsize(path) / 1e6,
                    }
                    files[(name, quant)] = path
            _time_files(table, key, files, threads, timing)
            if not xnnpack_off:
                xnnpack_off = _xnnpack_off_check(files, key, first_threads, timing)
            if ("student", "fp32") in files:
                overhead[key] = {
                    "model": f"student fp32, {first_threads} thread(s)",
                    **_io_overhead(files[("student", "fp32")], first_threads, timing),
                }
            for path in files.values():  # 256x512 files of three models add up
                os.remove(path)
    return {
        "runtime": f"{_litert_version()}: {RUNTIME_NOTE}",
        "timed_call": TIMED_CALL,
        "xnnpack": XNNPACK_NOTE,
        "batch": 1,
        "sizes": keys,
        "threads": threads,
        "quantizations": QUANTIZATION_NOTES,
        "export": "ka_tf.export.export_model(formats=['tflite']): the files tools/export.py "
        "ships (builtin operators; outputs include argmax and softmax)",
        "input": "random uniform float32 image in 0..255, [1, H, W, 3] (seed 0)",
        "int8_calibration": f"{CALIBRATION_IMAGES} random uniform images in 0..255 (seed 1): "
        f"latency does not depend on the calibrated scales; quality is not measured here",
        "models": table,
        **derived_figures(table, keys, threads, teacher_names),
        "xnnpack_off_check": xnnpack_off,
        "python_overhead": overhead,
    }


__all__ = [
    "QUANTIZATIONS",
    "bench_tflite",
    "check_options",
    "delegation",
    "derived_figures",
    "export_tflite",
    "full_call",
    "invoke_call",
    "load_interpreter",
    "one_op_model",
    "parse_sizes",
    "parse_threads",
    "size_key",
]
