"""tools/evaluate.py end to end: table + JSON on a saved model, one-line errors.

The tool reads datasets by name through ``ka_tf.data.load``. To run it on a tiny
dataset written by the test, a small launcher registers an ``npz`` loader with
``ka_tf.data.register_dataset`` and then runs the unmodified tool as ``__main__``.
"""

import json
import os
import textwrap

import keras
import numpy as np
import pytest

from ka_tf.evaluation import predict_dense
from ka_tf.metrics import compute_metrics, metric_names
from tests.helpers import REPO_ROOT, assert_one_line_error, run_tool
from tests.test_evaluation import NUM_CLASSES, tiny_arrays, tiny_dense_model

LAUNCHER = textwrap.dedent(
    """
    import os, runpy, sys
    import numpy as np
    import tensorflow as tf
    import ka_tf.data

    def load_npz(data_dir, split, **options):
        with np.load(os.path.join(data_dir, split + ".npz")) as arrays:
            return tf.data.Dataset.from_tensor_slices(dict(arrays))

    ka_tf.data.register_dataset("tiny_npz", load_npz)
    tool = os.path.join({root!r}, "tools", "evaluate.py")
    sys.argv = [tool, *sys.argv[1:]]
    runpy.run_path(tool, run_name="__main__")
    """
)


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    """A saved tiny model (semseg + depth) and a test split with and without labels."""
    directory = tmp_path_factory.mktemp("evaluate_tool")
    keras.utils.set_random_seed(3)
    model = tiny_dense_model(tasks=("semseg", "depth"))
    model.save(directory / "tiny.keras")
    arrays = tiny_arrays(n=5)
    np.savez(directory / "test.npz", **arrays)
    np.savez(directory / "unlabelled.npz", image=arrays["image"])
    (directory / "launch.py").write_text(LAUNCHER.format(root=REPO_ROOT))
    keras.backend.clear_session()
    return directory


def _evaluate(fixture_dir, output, *flags):
    """The tool on the fixture's tiny model and test split, writing ``output``."""
    return run_tool(
        str(fixture_dir / "launch.py"),
        f"--model={fixture_dir / 'tiny.keras'}",
        "--dataset=tiny_npz",
        f"--data_dir={fixture_dir}",
        "--split=test",
        *flags,
        "--noprogress",
        f"--output={output}",
    )


# The depth cap from the flag, or from gin as the dataset gin files bind it: the flag
# must not override a gin binding it was not given for.
@pytest.mark.parametrize(
    "depth_cap", ["--max_depth=2.5", "--gin_bindings=evaluate_model.max_depth = 2.5"]
)
def test_tool_prints_table_and_writes_json(fixture_dir, tmp_path, depth_cap):
    output = tmp_path / "report" / "report.json"
    result = _evaluate(fixture_dir, output, "--batch_size=2", "--max_examples=3", depth_cap)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    # Same numbers as the Python API on the first 3 examples.
    model = keras.saving.load_model(fixture_dir / "tiny.keras")
    arrays = {key: value[:3] for key, value in tiny_arrays(n=5).items()}
    expected = compute_metrics(
        predict_dense(model, arrays["image"]), arrays, NUM_CLASSES, max_depth=2.5
    )
    assert list(report) == list(expected)
    assert report == pytest.approx(expected, rel=1e-6, abs=1e-9)
    table = result.stdout.splitlines()
    headers = [line for line in table if line.startswith("model")]
    assert len(headers) == 2  # one table per task
    assert "semseg/miou ↑" in headers[0] and "depth/rmse ↓" in headers[1]
    rows = [line.split() for line in table if line.startswith("tiny.keras")]
    assert rows[0][1:] == [f"{expected[key]:.4f}" for key in list(expected)[:3]]
    assert rows[1][1:] == [f"{expected[key]:.4f}" for key in list(expected)[3:]]
    assert f"wrote {output}" in result.stdout
    assert not [name for name in os.listdir(output.parent) if name != "report.json"]


def test_per_class_lists_each_class_iou_and_shares(fixture_dir, tmp_path):
    output = tmp_path / "report.json"
    result = _evaluate(fixture_dir, output, "--per_class")
    assert result.returncode == 0, result.stderr[-3000:]
    from ka_tf.metrics.semseg import confusion_matrix

    model = keras.saving.load_model(fixture_dir / "tiny.keras")
    arrays = tiny_arrays(n=5)
    matrix = confusion_matrix(
        predict_dense(model, arrays["image"])["semseg"], arrays["semseg"], NUM_CLASSES
    ).astype(float)
    share = matrix.sum(axis=1) / matrix.sum()
    report = json.loads(output.read_text())
    rows = report["semseg/per_class"]
    assert list(rows) == [f"class {i}" for i in np.argsort(-share, kind="stable")]  # 3 classes
    for i in range(NUM_CLASSES):
        row = rows[f"class {i}"]
        union = matrix[i].sum() + matrix[:, i].sum() - matrix[i, i]
        assert row["pixels"] == pytest.approx(share[i])
        assert row["predicted"] == pytest.approx(matrix[:, i].sum() / matrix.sum())
        if union:
            assert row["IoU"] == pytest.approx(matrix[i, i] / union)
    # The per-class IoUs of the classes that occur average to the reported mIoU.
    ious = [row["IoU"] for row in rows.values() if "IoU" in row]
    assert np.mean(ious) == pytest.approx(report["semseg/miou"])
    assert any(line.startswith("class ") and "IoU" in line for line in result.stdout.splitlines())


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--model=/nonexistent/teacher.keras"], ["model file not found", "/nonexistent/"]),
        (["--model={dir}/test.npz"], ["test.npz is not a .keras file"]),
        (["--dataset=no_such_dataset"], ["unknown dataset", "no_such_dataset"]),
        (["--split=unlabelled"], ["no labels for any of model", "['semseg', 'depth']"]),
        (["--multi_view_scales=1.5,1"], ["--multi_view_scales=1.5,1", "1,1.25,1.5"]),
        (["--multi_view_scales=1,x"], ["--multi_view_scales=1,x", "1 first"]),
        (["--per_class=true", "--tasks=depth"], ["--per_class", "predict no classes"]),
    ],
)
def test_tool_bad_input_is_one_line(fixture_dir, args, fragments):
    flags = {
        "--model": f"{fixture_dir / 'tiny.keras'}",
        "--dataset": "tiny_npz",
        "--data_dir": str(fixture_dir),
        "--split": "test",
    }
    for arg in args:
        name, value = arg.split("=", 1)
        flags[name] = value.format(dir=fixture_dir)
    result = run_tool(
        str(fixture_dir / "launch.py"),
        "--noprogress",
        *(f"{name}={value}" for name, value in flags.items()),
    )
    assert_one_line_error(result, *fragments)


def test_tool_help_and_required_flags():
    result = run_tool("tools/evaluate.py", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    for flag in ("--model", "--dataset", "--data_dir", "--split", "--output", "--max_depth"):
        assert flag in result.stdout, flag
    missing = run_tool("tools/evaluate.py", "--dataset=synth_street", "--data_dir=/tmp")
    assert_one_line_error(missing, "--model is required")


def test_tool_reads_the_synthetic_benchmark(tmp_path):
    """Loaders register gin configurables on import; the tool must not lock gin first."""
    from ka_tf.data.synth_dataset import ensure_generated
    from ka_tf.models import SegNet

    data_dir = ensure_generated(
        "street", "test", 2, 32, 64, data_dir=str(tmp_path / "synth"), workers=1
    )
    model_path = str(tmp_path / "depth.keras")
    SegNet("depth", width_multiplier=1 / 16).save(model_path)
    output = tmp_path / "report.json"
    result = run_tool(
        "tools/evaluate.py",
        f"--model={model_path}",
        "--dataset=synth_street",
        f"--data_dir={data_dir}",
        "--split=test",
        f"--output={output}",
        "--noprogress",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert set(report) == {name for name in metric_names() if name.startswith("depth/")}


def test_tool_scores_the_multi_view_average(fixture_dir, tmp_path):
    """--multi_view_scales scores what a teacher's multi-view fine-tuning targets are."""
    from ka_tf.amalgamation.target_views import MultiViewModel

    output = tmp_path / "views.json"
    result = _evaluate(fixture_dir, output, "--multi_view_scales=1,1.5", "--max_depth=2.5")
    assert result.returncode == 0, result.stderr[-3000:]
    model = keras.saving.load_model(fixture_dir / "tiny.keras")
    arrays = tiny_arrays(n=5)
    views = MultiViewModel(model, (1.0, 1.5))
    expected = compute_metrics(
        predict_dense(views, arrays["image"]), arrays, NUM_CLASSES, max_depth=2.5
    )
    single = compute_metrics(
        predict_dense(model, arrays["image"]), arrays, NUM_CLASSES, max_depth=2.5
    )
    assert json.loads(output.read_text()) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert expected["depth/rmse"] != pytest.approx(single["depth/rmse"], rel=1e-6)
