"""tools/benchmark.py --sections=tflite: the mobile latency table's schema and bad input."""

from __future__ import annotations

import functools
import os
import types

import pytest

from benchmarks import tflite_latency
from tests.helpers import assert_one_line_error, run_tool
from tests.test_benchmark_tool import _run_bench

QUANTS = ("fp32", "fp16", "dynamic", "int8")


@functools.cache
def _one_op_file_bytes(height: int, width: int) -> bytes:
    return tflite_latency.one_op_model((1, height, width, 3))


def _fake_export(model, name, size, calibration, directory):
    """Stands in for ka_tf's export (minutes of conversion): one ADD at the size."""
    assert len(calibration) == tflite_latency.CALIBRATION_IMAGES
    assert calibration[0].shape == (*size, 3)
    os.makedirs(directory)
    paths = {}
    for quant in tflite_latency.QUANTIZATIONS:
        paths[quant] = os.path.join(directory, f"{name}_{quant}.tflite")
        with open(paths[quant], "wb") as handle:
            handle.write(_one_op_file_bytes(*size))
    return paths


def _tiny_setup():
    def model(params):
        return types.SimpleNamespace(count_params=lambda: params)

    return types.SimpleNamespace(
        student=model(10),
        teachers={"semseg": model(20), "depth": model(30)},
        image_size=(32, 64),
        sources={"student": "fake", "teacher_semseg": "fake", "teacher_depth": "fake"},
        timing=lambda: {"repeats": 2, "min_time_s": 0.001, "warmup": 1},
    )


def _assert_spread(spread):
    assert len(spread["runs"]) >= 1 and spread["min"] <= spread["median"] <= spread["max"]


def test_section_writes_every_model_size_quantization_and_thread(tmp_path):
    pytest.importorskip("ai_edge_litert")
    result = tflite_latency.bench_tflite(_tiny_setup(), [(64, 32)], [2, 1], export=_fake_export)
    sizes = ["32x64", "64x32"]
    assert result["sizes"] == sizes and result["threads"] == [1, 2] and result["batch"] == 1
    assert "random uniform" in result["int8_calibration"]
    assert "benchmark_model" in result["runtime"] and "invoke()" in result["timed_call"]
    models = result["models"]
    assert sorted(models) == ["student", "teacher_depth", "teacher_semseg"]
    assert models["teacher_depth"]["params"] == 30
    for name in models:
        for size in sizes:
            assert sorted(models[name][size]) == sorted(QUANTS)
            for quant in QUANTS:
                entry = models[name][size][quant]
                assert entry["size_bytes"] > 0 and entry["size_mb"] == entry["size_bytes"] / 1e6
                assert entry["xnnpack"]["partitions"] == 1
                assert entry["xnnpack"]["ops_in_xnnpack"] == entry["xnnpack"]["ops"] == 1
                assert entry["xnnpack"]["ops_outside"] == "none"
                for threads in (1, 2):
                    _assert_spread(entry[f"threads_{threads}"]["latency_ms"])
    for key in (
        "teachers_in_turn_ms",
        "student_vs_fp32_teachers",
        "student_vs_teachers_same_quantization",
    ):
        for size in sizes:
            for threads in (1, 2):
                figures = result[key][size][f"threads_{threads}"]
                assert sorted(figures) == sorted(QUANTS) and all(v > 0 for v in figures.values())
    speedups = result["student_vs_fp32_teachers"]["32x64"]["threads_1"]
    in_turn = result["teachers_in_turn_ms"]["32x64"]["threads_1"]["fp32"]
    student = models["student"]["32x64"]["int8"]["threads_1"]["latency_ms"]["median"]
    assert speedups["int8"] == pytest.approx(in_turn / student)
    target = result["target"]
    assert target["threshold"] == 3.0
    for size in sizes:
        assert (
            target[size]["speedup"] == result["student_vs_fp32_teachers"][size]["threads_1"]["int8"]
        )
        assert target[size]["met"] in (True, False)
    check = result["xnnpack_off_check"]
    assert check["size"] == "32x64" and check["threads"] == 1
    for quant in QUANTS:
        _assert_spread(check[quant]["xnnpack_ms"])
        _assert_spread(check[quant]["builtin_kernels_ms"])
        assert check[quant]["xnnpack_speedup"] > 0
    overhead = result["python_overhead"]
    _assert_spread(overhead["empty_model"]["invoke_us"])
    for size in sizes:
        _assert_spread(overhead[size]["invoke_only_ms"])
        _assert_spread(overhead[size]["set_invoke_get_ms"])
        assert isinstance(overhead[size]["io_copy_ms_of_minima"], float)


def test_a_model_that_does_not_export_is_a_skipped_row():
    pytest.importorskip("ai_edge_litert")

    def export(model, name, size, calibration, directory):
        if name == "teacher_depth":
            raise RuntimeError("no such op")
        return _fake_export(model, name, size, calibration, directory)

    result = tflite_latency.bench_tflite(_tiny_setup(), [], [1], export=export)
    assert (
        "export failed: RuntimeError: no such op"
        in result["models"]["teacher_depth"]["32x64"]["skipped"]
    )
    assert result["models"]["teacher_semseg"]["32x64"]["int8"]["threads_1"]["latency_ms"]
    # The teachers in turn need both teachers: no figure rather than a wrong one.
    assert result["teachers_in_turn_ms"]["32x64"]["threads_1"]["fp32"] is None
    assert result["target"]["32x64"] == {"speedup": None, "met": None}


def test_derived_figures_sum_the_teachers_and_apply_the_target():
    def row(ms):
        return {"threads_1": {"latency_ms": {"median": ms}}}

    table = {
        "student": {
            "s": {"fp32": row(12.0), "fp16": row(12.0), "dynamic": row(8.0), "int8": row(9.0)}
        },
        "teacher_a": {"s": {q: row(10.0) for q in QUANTS}},
        "teacher_b": {"s": {q: row(20.0) for q in QUANTS}},
    }
    figures = tflite_latency.derived_figures(table, ["s"], [1], ["teacher_a", "teacher_b"])
    assert figures["teachers_in_turn_ms"]["s"]["threads_1"]["fp32"] == 30.0
    assert figures["student_vs_fp32_teachers"]["s"]["threads_1"]["int8"] == pytest.approx(30 / 9)
    assert figures["student_vs_teachers_same_quantization"]["s"]["threads_1"][
        "dynamic"
    ] == pytest.approx(30 / 8)
    assert figures["target"]["s"] == {"speedup": pytest.approx(30 / 9), "met": True}


@pytest.mark.parametrize(
    ("flag", "fragment"),
    [
        ("--tflite_sizes=256x500", "--tflite_sizes"),
        ("--tflite_sizes=256", "--tflite_sizes"),
        ("--tflite_threads=0", "--tflite_threads"),
    ],
)
def test_bad_tflite_flag_is_a_one_line_error(flag, fragment):
    assert_one_line_error(run_tool("tools/benchmark.py", "--sections=tflite", flag), fragment)


def test_missing_litert_names_the_export_extra(tmp_path):
    """The section needs ai_edge_litert: one line naming the extra, before any model work."""
    (tmp_path / "sitecustomize.py").write_text(
        "import importlib.util\n"
        "_find_spec = importlib.util.find_spec\n"
        "def _hidden(name, package=None):\n"
        "    if name.split('.')[0] == 'ai_edge_litert':\n"
        "        return None\n"
        "    return _find_spec(name, package)\n"
        "importlib.util.find_spec = _hidden\n"
    )
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    result = run_tool("tools/benchmark.py", "--sections=tflite", env={"PYTHONPATH": path})
    assert_one_line_error(result, "--sections=tflite", "ai_edge_litert", "'export' extra")


@pytest.mark.slow
@pytest.mark.extended  # the harness end to end: beyond CI's time budget
def test_tflite_section_end_to_end(tmp_path):
    """Real exports of the three tiny models (12 conversions): a few minutes."""
    pytest.importorskip("ai_edge_litert")
    report = _run_bench(tmp_path, "--sections=tflite", "--tflite_sizes=", "--tflite_threads=1")
    tflite = report["tflite"]
    assert tflite["sizes"] == ["32x64"] and tflite["threads"] == [1]
    for name in ("student", "teacher_semseg", "teacher_depth"):
        files = tflite["models"][name]["32x64"]
        for quant in QUANTS:
            assert files[quant]["xnnpack"]["partitions"] >= 1
            assert files[quant]["xnnpack"]["ops_in_xnnpack"] > 0
            _assert_spread(files[quant]["threads_1"]["latency_ms"])
        assert files["int8"]["size_bytes"] < files["fp32"]["size_bytes"]
    assert tflite["target"]["32x64"]["speedup"] > 0
    assert "tflite" in report["_stdout"] and "student.32x64.int8.threads_1" in report["_stdout"]
