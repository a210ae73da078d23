"""tools/benchmark.py and benchmarks.harness: sections write sane JSON; bad input is one line."""

from __future__ import annotations

import itertools
import json
import os
import time

import pytest

from benchmarks import harness as benchmarking
from tests.helpers import assert_one_line_error, run_tool

# Tiny settings shared by the tool runs: 32x64 images, batch 2, one short repeat.
TINY = (
    "--gin_file=gin/demo.gin",
    "--image_size=32,64",
    "--batch_size=2",
    "--repeats=1",
    "--min_time_s=0.02",
    "--gin_bindings=synth_benchmark.splits = {'teacher': 4, 'transfer': 4}",
)


def _run_bench(tmp_path, *args: str, timeout: float = 600) -> dict:
    output = tmp_path / "bench.json"
    result = run_tool(
        "tools/benchmark.py",
        *TINY,
        *args,
        f"--output={output}",
        timeout=timeout,
        env={"KA_TF_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    report["_stdout"] = result.stdout
    return report


def _assert_timing(entry: dict, batch: int) -> None:
    """A time_calls result: positive figures, consistent latency and images/s."""
    assert entry["batch"] == batch and entry["calls_per_repeat"] >= 1
    for key in ("latency_ms", "images_per_s"):
        spread = entry[key]
        assert len(spread["runs"]) >= 1 and all(v > 0 for v in spread["runs"])
        assert spread["min"] <= spread["median"] <= spread["max"]
    fastest = batch / (entry["latency_ms"]["min"] / 1000.0)
    assert entry["images_per_s"]["max"] == pytest.approx(fastest, rel=1e-6)


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


@pytest.mark.slow
@pytest.mark.extended  # the harness end to end: beyond CI's time budget
def test_inference_keras_and_machine_sections(tmp_path):
    """End to end (builds the models, traces 6 forwards): ~30-60 s on a loaded 2-core box."""
    report = _run_bench(
        tmp_path, "--sections=inference,machine", "--formats=keras", "--matmul_size=128"
    )
    assert report["image_size"] == [32, 64] and report["batch_size"] == 2
    inference = report["inference"]
    models = inference["models"]
    assert models["student"]["class"] == "TargetNet"
    for name in ("student", "teacher_semseg", "teacher_depth"):
        assert models[name]["params"] > 0 and models[name]["flops"] == 2 * models[name]["conv_macs"]
    assert models["teachers"]["params"] == (
        models["teacher_semseg"]["params"] + models["teacher_depth"]["params"]
    )
    assert inference["student_vs_teachers_params"] == pytest.approx(
        models["student"]["params"] / models["teachers"]["params"]
    )
    keras_runs = inference["runs"]["keras"]
    for group in ("student", "teachers"):
        for batch in (1, 2):
            _assert_timing(keras_runs[group][f"batch_{batch}"], batch)
    speedup = inference["student_vs_teachers_speedup"]["keras"]
    for batch in (1, 2):
        expected = (
            keras_runs["teachers"][f"batch_{batch}"]["latency_ms"]["median"]
            / keras_runs["student"][f"batch_{batch}"]["latency_ms"]["median"]
        )
        assert speedup[f"batch_{batch}"] == pytest.approx(expected)
    machine = report["machine"]
    assert machine["matmul_gflops"]["median"] > 0
    _assert_timing(machine["student_forward"], 2)
    assert machine["student_forward"]["flops_per_image"] == models["student"]["flops"]
    fraction = machine["student_fraction_of_matmul_peak"]["median"]
    gflops = machine["student_forward_gflops"]["median"]
    assert fraction > 0 and gflops > 0
    for section in ("inference", "machine"):
        assert report[section]["peak_rss_mb"] > 100 and report[section]["wall_s"] > 0
        assert 0 <= report[section]["cpu_steal_pct"] <= 100
    assert "student_vs_teachers_speedup.keras.batch_1" in report["_stdout"]


@pytest.mark.parametrize(
    ("flag", "fragment"),
    [
        ("--image_size=30,64", "--image_size"),
        ("--formats=keras,coreml", "coreml"),
        ("--branch_points=semseg", "--branch_points"),
        ("--repeats=0", "--repeats"),
        ("--sections=synth,warp", "warp"),
    ],
)
def test_bad_flag_is_a_one_line_error(flag, fragment):
    assert_one_line_error(run_tool("tools/benchmark.py", flag), fragment)


def test_unavailable_runtime_is_skipped_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(
        benchmarking,
        "runtime_modules",
        lambda fmt: ("ka_tf_no_such_runtime",) if fmt == "onnx" else (),
    )
    paths, unavailable, failed = benchmarking.export_artifacts(
        {"student": None}, ["keras", "onnx"], (32, 64), str(tmp_path)
    )
    assert "ka_tf_no_such_runtime" in unavailable["onnx"] and "not installed" in unavailable["onnx"]
    assert paths == {"student": {}} and failed == {}


def test_conv_macs_count_every_conv_at_its_resolution():
    from ka_tf.models import SegNet
    from ka_tf.models.arch import VGG_CONVS, scaled_channels

    height, width, classes = 32, 64, 5
    model = SegNet("semseg", num_classes=classes, width_multiplier=0.125)
    widths = scaled_channels((64, 128, 256, 512, 512), 0.125)
    expected, c_in = 0, 3
    for block, convs in enumerate(VGG_CONVS["vgg16"]):  # encoder down1..down5
        pixels = (height >> block) * (width >> block)
        for _ in range(convs):
            expected += pixels * 9 * c_in * widths[block]
            c_in = widths[block]
    for block in reversed(range(5)):  # decoder up5..up1, then the head at full size
        pixels = (height >> block) * (width >> block)
        convs = VGG_CONVS["vgg16"][block]
        out = widths[block - 1] if block else classes
        expected += pixels * 9 * widths[block] * widths[block] * (convs - 1)
        expected += pixels * 9 * widths[block] * out
    assert benchmarking.conv_macs(model, (height, width)) == expected
    summary = benchmarking.model_summary(model, (height, width), "test")
    assert summary["flops"] == 2 * expected and summary["params"] == model.count_params()


def test_time_calls_measures_per_call_latency_and_interleaves():
    def sleeper():
        time.sleep(0.01)

    result = benchmarking.time_calls(sleeper, batch=4, repeats=3, min_time_s=0.03)
    assert result["calls_per_repeat"] >= 3 and len(result["latency_ms"]["runs"]) == 3
    assert 9.0 <= result["latency_ms"]["min"] and result["latency_ms"]["median"] < 50.0
    assert result["images_per_s"]["median"] == pytest.approx(
        4 / (result["latency_ms"]["median"] / 1000.0)
    )
    order = []
    both = benchmarking.time_interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        batch=1,
        repeats=3,
        min_time_s=1e-9,
        warmup=1,
    )
    # Warm-up and calibration first (a a b b), then timed runs alternate.
    assert order[4:] == ["a", "b"] * 3
    assert sorted(both) == ["a", "b"] and len(both["a"]["images_per_s"]["runs"]) == 3


def test_time_calls_reports_per_step_figures_for_multi_step_calls():
    def four_steps():
        time.sleep(0.02)  # one call = 4 steps of 5 ms

    result = benchmarking.time_calls(
        four_steps, batch=2, repeats=2, min_time_s=0.02, steps_per_call=4
    )
    assert result["steps_per_call"] == 4
    assert 4.5 <= result["latency_ms"]["min"] < 15.0
    _assert_timing(result, 2)
    both = benchmarking.time_interleaved(
        {"multi": four_steps, "single": lambda: time.sleep(0.005)},
        batch=2,
        repeats=2,
        min_time_s=0.02,
        steps_per_call={"multi": 4},
    )
    assert "steps_per_call" not in both["single"]
    assert both["multi"]["latency_ms"]["min"] < 15.0 <= 4 * both["multi"]["latency_ms"]["min"]


def test_steal_percent_from_two_readings():
    assert benchmarking.steal_percent((10, 1000), (40, 1300)) == pytest.approx(10.0)
    assert benchmarking.steal_percent(None, (40, 1300)) is None
    assert benchmarking.steal_percent((10, 1000), (10, 1000)) is None
    reading = benchmarking.cpu_times()
    if os.path.exists("/proc/stat"):
        steal, total = reading
        assert 0 <= steal <= total


def test_keras_train_steps_runs_steps_per_execution_steps_a_call():
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=3)
    x = np.ones((4, 3), "float32")
    call = benchmarking.keras_train_steps(model, (x, np.zeros((4, 1), "float32")))
    assert call() == 3 and call() == 6
    assert int(model.optimizer.iterations) == 6


def test_timing_worker_runs_alternate_with_local_runs():
    """A RemoteCall is timed in its own process, its runs between the local ones."""
    stamps = []
    with benchmarking.TimingWorker({"KA_TF_WORKER_PROBE": "on"}) as worker:
        assert worker.call("os:getenv", "KA_TF_WORKER_PROBE") == "on"
        assert worker.call("os:getpid") != os.getpid()
        remote = worker.build("functools:partial", time.sleep, 0.05)
        both = benchmarking.time_interleaved(
            {"local": lambda: stamps.append(time.monotonic()), "remote": remote},
            batch=2,
            repeats=3,
            min_time_s=0.04,
        )
        with pytest.raises(benchmarking.WorkerError, match="no_such_function"):
            worker.call("os:no_such_function")
        process = worker._process
    assert process.poll() is not None  # closed with the context
    _assert_timing(both["remote"], 2)
    assert both["remote"]["latency_ms"]["min"] >= 50.0
    assert both["local"]["latency_ms"]["median"] < 5.0
    # Each remote run (calibration, then between timed local runs) leaves a gap of at
    # least its 50 ms sleep in the local calls' timestamps: at least `repeats` gaps.
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert sum(gap >= 0.05 for gap in gaps) >= 3


@pytest.mark.slow
@pytest.mark.extended  # the harness end to end: beyond CI's time budget
def test_training_section(tmp_path):
    report = _run_bench(tmp_path, "--sections=training", "--noxla")
    training = report["training"]
    for key in ("teacher_step_semseg", "teacher_step_depth", "amalgamation_step"):
        _assert_timing(training[key], 2)
        assert training[key]["total_s"] > 0
    assert "teacher_step_semseg_xla" not in training
    pipeline = training["input_pipeline"]
    assert pipeline["dataset"] == "transfer/make_dataset"
    _assert_timing(pipeline, 2)
    assert training["input_pipeline_vs_amalgamation_step"] == pytest.approx(
        pipeline["images_per_s"]["median"] / training["amalgamation_step"]["images_per_s"]["median"]
    )


@pytest.mark.slow
@pytest.mark.extended  # the harness end to end: beyond CI's time budget
def test_inference_every_runtime(tmp_path):
    report = _run_bench(tmp_path, "--sections=inference")
    runs = report["inference"]["runs"]
    assert sorted(runs) == sorted(
        ["keras", "saved_model", "tflite_1_thread", "tflite_2_threads", "onnx"]
    )
    for row in ("keras", "saved_model", "onnx"):
        for group in ("student", "teachers"):
            for batch in (1, 2):
                _assert_timing(runs[row][group][f"batch_{batch}"], batch)
    for row in ("tflite_1_thread", "tflite_2_threads"):
        for group in ("student", "teachers"):
            _assert_timing(runs[row][group]["batch_1"], 1)
            assert "batch 1 only" in runs[row][group]["batch_2"]["skipped"]
    speedups = report["inference"]["student_vs_teachers_speedup"]
    assert speedups["onnx"]["batch_2"] > 0 and speedups["tflite_1_thread"]["batch_1"] > 0


@pytest.mark.slow
@pytest.mark.extended  # the harness end to end: beyond CI's time budget
def test_compare_pytorch(tmp_path):
    report = _run_bench(tmp_path, "--sections=machine", "--matmul_size=128", "--compare_pytorch")
    torch_part = report["pytorch"]
    threads = torch_part["threads"]
    assert threads["torch_intra_op"] == threads["tf_intra_op"]
    assert threads["torch_omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY", "unset")
    assert "separate worker process" in torch_part["pytorch_process"]
    params = torch_part["params_trainable"]
    assert params["keras"] == params["pytorch"]
    for framework in ("keras", "pytorch"):
        _assert_timing(torch_part["training_step"][framework], 2)
        for batch in (1, 2):
            _assert_timing(torch_part["inference"][f"batch_{batch}"][framework], batch)
    ratios = torch_part["tf_vs_pytorch"]
    assert ratios["training_step"] == pytest.approx(
        torch_part["training_step"]["keras"]["images_per_s"]["median"]
        / torch_part["training_step"]["pytorch"]["images_per_s"]["median"]
    )
    assert ratios["inference_batch_1"] > 0 and ratios["inference_batch_2"] > 0


@pytest.mark.slow
@pytest.mark.extended  # the harness end to end: beyond CI's time budget
def test_demo_failure_is_recorded_with_its_wall_time(tmp_path):
    """--demo runs tools/demo.py; a failing demo (bad binding) is recorded, not hidden."""
    report = _run_bench(
        tmp_path,
        "--sections=synth",
        "--synth_frames=2",
        "--synth_height=32",
        "--synth_width=64",
        "--demo",
        "--demo_bindings=NO_SUCH = @x",
    )
    demo = report["demo"]
    assert demo["demo_wall_s"] > 0 and demo["returncode"] != 0
    assert demo["error"] and demo["gin_bindings"] == ["NO_SUCH = @x"]


@pytest.mark.slow  # three worker processes build and time SegNets: ~1-2 min
def test_revision_ab_times_two_checkouts_and_pytorch(tmp_path):
    pytest.importorskip("torch")
    output = tmp_path / "ab.json"
    result = run_tool(
        "benchmarks/revision_ab.py",
        "--old=HEAD",
        "--new=.",
        "--repeats=1",
        "--min_time_s=0.01",
        f"--output={output}",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    # The old side really is a separate checkout, the new one this tree.
    assert report["ka_tf"]["old"] != report["ka_tf"]["new"]
    assert os.path.samefile(report["ka_tf"]["new"], os.path.dirname(os.path.dirname(__file__)))
    for name in ("inference_batch_1", "inference_batch_8", "training_step_batch_8"):
        for side in ("old", "new", "pytorch"):
            assert report[name]["latency_ms"][side]["median"] > 0
        assert report[name]["new_vs_old_speedup"] > 0
    assert "training_step_batch_8:" in result.stdout


@pytest.mark.slow  # builds, freezes and times a demo SegNet three ways: ~30 s
def test_call_overhead_times_three_call_paths_of_one_graph():
    result = run_tool(
        "benchmarks/call_overhead.py", "--batch=1", "--repeats=1", "--calls=2", timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["batch"] == 1
    assert set(report["latency"]) == {"tf_function", "frozen_function", "tf1_session"}
    assert all(entry["median_ms"] > 0 for entry in report["latency"].values())


def test_finetune_losses_of_a_class_balanced_recipe_run_on_a_batch():
    # gin/street_zoo.gin (make demo) balances scene-parsing classes; its fine-tuning
    # step must be timeable without a target cache to measure the frequencies.
    import types

    import gin
    import numpy as np

    import ka_tf.registry_all  # noqa: F401
    from ka_tf import config
    from tests.helpers import REPO_ROOT

    config.parse_gin_config(["gin/street_zoo.gin"], search_paths=[REPO_ROOT])
    try:
        teachers = {"semseg": types.SimpleNamespace(num_classes=19), "depth": object()}
        losses = benchmarking.finetune_losses(teachers)
    finally:
        gin.clear_config()
    semseg = losses["semseg"]
    assert semseg.class_balance == 0.5 and semseg.class_weights == [1.0] * 19
    labels = np.random.default_rng(0).integers(0, 19, (2, 4, 4))
    logits = np.random.default_rng(1).normal(size=(2, 4, 4, 19)).astype("float32")
    assert np.isfinite(float(semseg(labels, logits)))
