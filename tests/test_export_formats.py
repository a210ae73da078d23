"""Export formats are a registry: a new format is one class, and every consumer sees it.

The dummy format below (``keras_copy``: the float32 model saved whole, under its own
suffix) is registered in one place; ``export_model`` writes and checks it,
``existing_export`` finds it, ``load_runner`` runs it, ``--formats`` accepts it and the
benchmark times it, without any other module knowing its name.
"""

import os
import shutil
import tempfile

import numpy as np
import pytest

from benchmarks import harness as benchmarking
from ka_tf.errors import ConfigError
from ka_tf.export import exporter, formats
from ka_tf.export.runtimes import KerasRunner, load_runner
from tests.test_export import H, W, tiny_student

SUFFIX = ".kerascopy"


class KerasCopyFormat(formats.ExportFormat):
    """The float32 model as a .keras zip under another suffix (a stand-in format)."""

    name = "keras_copy"

    def artifacts(self, name, quantizations):
        return [f"{name}{SUFFIX}"]

    def write(self, context):
        filename = f"{context.name}{SUFFIX}"
        staging = context.path(f"{context.name}.staging.keras")
        context.module.model.save(staging)
        os.replace(staging, context.path(filename))
        return [filename]

    def owns(self, path):
        return os.path.isfile(path) and path.endswith(SUFFIX)

    def load(self, path):
        import keras

        with tempfile.TemporaryDirectory() as directory:
            copy = os.path.join(directory, "model.keras")
            shutil.copyfile(path, copy)
            model = keras.saving.load_model(copy)
        return KerasRunner(model, (H, W), path)


@pytest.fixture
def keras_copy_format():
    formats.register_format(KerasCopyFormat)
    yield formats.get_format("keras_copy")
    formats.unregister_format("keras_copy")


def test_shipped_formats_in_order():
    assert formats.format_names()[:3] == ("saved_model", "tflite", "onnx")
    assert formats.get_format("tflite").requires == ("ai_edge_litert",)
    with pytest.raises(ConfigError, match="unknown export format 'coreml'"):
        formats.get_format("coreml")


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="already registered"):
        formats.register_format(formats.TFLiteFormat)


def test_a_registered_format_is_written_checked_found_and_run(keras_copy_format, tmp_path):
    assert "keras_copy" in formats.format_names()
    model = tiny_student(seed=1)
    out_dir = str(tmp_path / "export")
    report = exporter.export_model(model, out_dir, formats=("keras_copy",), image_size=(H, W))
    entry = report["artifacts"]["student.kerascopy"]
    assert entry["format"] == "keras" and entry["size_bytes"] > 0
    assert entry["max_abs_diff"]["depth"] == 0.0  # the same float32 model, run alike
    assert exporter.existing_export(out_dir) == ["export_report.json", "student.kerascopy"]
    with pytest.raises(ConfigError, match="already holds an export"):
        exporter.export_model(model, out_dir, formats=("keras_copy",), image_size=(H, W))
    runner = load_runner(os.path.join(out_dir, "student.kerascopy"))
    images = np.random.default_rng(0).uniform(0, 255, (2, H, W, 3))
    expected = KerasRunner(model, (H, W))(images)
    np.testing.assert_allclose(runner(images)["depth"], expected["depth"], rtol=1e-6)
    # ... and the benchmark times it like any other runtime.
    assert "keras_copy" in benchmarking.runtimes()
    (timed,) = benchmarking.runtime_call(
        "keras_copy", [os.path.join(out_dir, "student.kerascopy")], images, threads=1
    )()
    np.testing.assert_allclose(timed["depth"], expected["depth"], rtol=1e-6)


def test_unknown_format_lists_the_registered_ones(keras_copy_format):
    with pytest.raises(ConfigError, match="keras_copy"):
        exporter.check_choices(["coreml"], formats.format_names(), "--formats")
