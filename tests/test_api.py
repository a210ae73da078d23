"""The Python API a notebook uses: ``import ka_tf`` registers ka_tf's Keras classes once
Keras loads (without importing TensorFlow itself), and ``ka_tf.amalgamate`` /
``load_model`` / ``predict`` run the job from Python on a folder of photos."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import ka_tf
from ka_tf.models import SegNet, UNet
from tests.helpers import REPO_ROOT


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    paths = {"segnet": str(root / "segnet.keras"), "unet": str(root / "unet.keras")}
    SegNet("depth", width_multiplier=1 / 16).save(paths["segnet"])
    UNet("depth", width_multiplier=1 / 16).save(paths["unet"])
    return paths


@pytest.mark.parametrize("order", ["ka_tf first", "keras first", "tensorflow first"])
def test_import_ka_tf_is_enough_for_keras_to_load_its_files(model_files, order):
    imports = {
        "ka_tf first": "import ka_tf, keras",
        "keras first": "import keras, ka_tf",
        # TensorFlow's import (as a tool's quiet import) is what registers here.
        "tensorflow first": "import sys, ka_tf, tensorflow\n"
        "assert 'ka_tf.models' in sys.modules\nimport keras",
    }[order]
    result = _python(
        f"{imports}\n"
        f"for path in {sorted(model_files.values())!r}:\n"
        "    print(type(keras.saving.load_model(path)).__name__)\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["SegNet", "UNet"]


def test_import_ka_tf_does_not_import_tensorflow():
    result = _python(
        "import sys, ka_tf, ka_tf.data.synth.generate\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False"]


def test_api_names_resolve_and_unknown_ones_raise():
    assert {"amalgamate", "load_model", "predict", "load_teacher", "teacher_spec"} <= set(
        dir(ka_tf)
    )
    assert ka_tf.teacher_spec.__module__ == "ka_tf.teachers.foreign"
    with pytest.raises(AttributeError, match="has no attribute 'amalgamte'"):
        ka_tf.amalgamte  # noqa: B018


def test_amalgamate_from_python_on_a_photo_folder(model_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the shipped recipe is found outside the checkout too
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(photos / f"{i}.jpg")
    semseg = str(tmp_path / "semseg.keras")
    SegNet("semseg", num_classes=19, width_multiplier=1 / 16).save(semseg)
    student, report = ka_tf.amalgamate(
        str(tmp_path / "run"),
        teachers={"semseg": semseg, "depth": model_files["segnet"]},
        images=str(photos),
        bindings=["IMAGE_SIZE = (32, 64)", "BATCH_SIZE = 2"],
        blockwise_steps=0,
        finetune_steps=1,
        steps_per_epoch=1,
        branch_points={"semseg": 3, "depth": 2},
    )
    assert report["branch_points"] == {"semseg": 3, "depth": 2}
    assert report["teachers"]["depth"] == model_files["segnet"]
    assert report["data"]["count"] == 5 and report["data"]["held_out_for_val"] == 1
    assert report["data"]["holdout_fraction"] == 0.1
    assert student.tasks == ("semseg", "depth")
    assert ka_tf.load_model(str(tmp_path / "run" / "student.keras")).count_params() == (
        student.count_params()
    )
    predictions = ka_tf.predict(student, np.zeros((1, 32, 64, 3), np.uint8))
    assert predictions["semseg"].shape == (1, 32, 64) and predictions["semseg"].dtype == np.int32
    assert predictions["depth"].shape == (1, 32, 64)


def test_any_ka_tf_module_imports_first_in_a_fresh_interpreter():
    """Registration runs when TensorFlow first loads, which may be in the middle of any
    ka_tf module's own import: none of them may then meet a half-imported module."""
    modules = [
        "ka_tf.tasks",
        "ka_tf.losses",
        "ka_tf.data.pipeline",
        "ka_tf.teachers",
        "ka_tf.models.segnet",
        "ka_tf.amalgamation.run",
        "ka_tf.export",
        "ka_tf.evaluation",
        "ka_tf.metrics",
        "ka_tf.training.teacher",
    ]
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", f"import sys, {name}; assert 'ka_tf.models' in sys.modules"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        for name in modules
    }
    failures = {}
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=300)
        if process.returncode:
            failures[name] = stderr.strip().splitlines()[-1]
    assert not failures, failures
