"""tools/predict.py: panels and raw outputs for images of any size, any runtime."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from PIL import Image

from ka_tf.export.exporter import convert_tflite
from ka_tf.export.runtimes import KerasRunner, load_runner, resize_images, resize_outputs
from tests.helpers import assert_one_line_error, run_tool
from tests.test_export import NUM_CLASSES, labelled_arrays, tiny_student

SIZES = {"small.png": (40, 50), "sub/wide.jpg": (70, 150)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny 3-task student as .keras and .tflite, and two images of other sizes."""
    directory = tmp_path_factory.mktemp("predict_tool")
    model = tiny_student(seed=2)
    model.save(directory / "student.keras")
    (directory / "student.tflite").write_bytes(convert_tflite(KerasRunner(model).module, "none"))
    images = directory / "images"
    source = labelled_arrays(2, seed=3)["image"]
    for (name, (height, width)), image in zip(SIZES.items(), source, strict=True):
        os.makedirs(images / os.path.dirname(name), exist_ok=True)
        Image.fromarray(image).resize((width, height)).save(images / name)
    keras.backend.clear_session()
    return directory


@pytest.mark.parametrize(
    "model_file",
    # The .keras case (~12 s) runs with the slow tests (CI: make test-slow).
    ["student.tflite", pytest.param("student.keras", marks=pytest.mark.slow)],
)
def test_panels_and_outputs_at_image_size(files, tmp_path, model_file):
    out_dir = tmp_path / "pred"
    result = run_tool(
        "tools/predict.py",
        f"--model={files / model_file}",
        f"--input={files / 'images'}",
        f"--out_dir={out_dir}",
        "--noprogress",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runner = load_runner(str(files / model_file))
    for name, (height, width) in SIZES.items():
        stem = out_dir / os.path.splitext(name)[0]
        panel = np.asarray(Image.open(f"{stem}_panel.png"))
        assert panel.shape[0] > height and panel.shape[1] > 4 * width  # 4 columns + legend
        semseg = np.load(f"{stem}_semseg.npy")
        assert semseg.shape == (height, width) and semseg.dtype == np.int32
        assert semseg.min() >= 0 and semseg.max() < NUM_CLASSES
        assert np.load(f"{stem}_semseg_probs.npy").shape == (height, width, NUM_CLASSES)
        depth = np.load(f"{stem}_depth.npy")
        assert depth.shape == (height, width) and np.all(depth > 0)
        normals = np.load(f"{stem}_normals.npy")
        np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-3)
        # The same numbers as the runtime on the resized image, resized back.
        image = np.asarray(Image.open(files / "images" / name).convert("RGB"))
        expected = resize_outputs(
            runner(resize_images(image[None], runner.image_size)), image.shape[:2]
        )
        np.testing.assert_array_equal(semseg, expected["semseg"][0])
        np.testing.assert_allclose(depth, expected["depth"][0], rtol=1e-5)


def _load_tool():
    from ka_tf.commands import predict

    return predict


def test_class_names_from_flag_or_count():
    from ka_tf.constants import CITYSCAPES_CLASSES, NYU13_CLASSES
    from ka_tf.errors import ConfigError

    tool = _load_tool()
    assert tool.class_names_and_palette("auto", 19)[0] == list(CITYSCAPES_CLASSES)
    assert tool.class_names_and_palette("auto", 13)[0] == list(NYU13_CLASSES)
    names, palette = tool.class_names_and_palette("auto", 5)
    assert names == [f"class {i}" for i in range(5)] and np.asarray(palette).shape == (5, 3)
    with pytest.raises(ConfigError, match="cityscapes has 19 classes but the model predicts 5"):
        tool.class_names_and_palette("cityscapes", 5)


def test_own_size_rounds_to_multiples_of_32():
    tool = _load_tool()
    assert tool.own_size(40, 50) == (32, 64)
    assert tool.own_size(70, 150) == (64, 160)
    assert tool.own_size(10, 1000) == (32, 992)


@pytest.mark.slow  # ~20 s: a .keras model traced at two image sizes
def test_fully_convolutional_model_runs_each_image_at_its_own_size(files, tmp_path):
    from ka_tf.models import TargetNet

    keras.utils.set_random_seed(4)
    model = TargetNet(
        ("semseg", "depth"),
        num_classes=NUM_CLASSES,
        branch_points={"semseg": 3, "depth": 2},
        width_multiplier=1 / 16,
        image_shape=(None, None, 3),
    )
    model.save(tmp_path / "fcn.keras")
    out_dir = tmp_path / "pred"
    result = run_tool(
        "tools/predict.py",
        f"--model={tmp_path / 'fcn.keras'}",
        f"--input={files / 'images'}",
        f"--out_dir={out_dir}",
        "--noprogress",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "runs at its own size rounded to a multiple of 32" in result.stdout
    runner = KerasRunner(model, (64, 160))
    image = np.asarray(Image.open(files / "images" / "sub" / "wide.jpg").convert("RGB"))
    expected = resize_outputs(runner(resize_images(image[None], (64, 160))), image.shape[:2])
    depth = np.load(out_dir / "sub" / "wide_depth.npy")
    assert depth.shape == (70, 150)
    np.testing.assert_allclose(depth, expected["depth"][0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (
            ["--model={files}/student.tflite", "--input={files}/none"],
            ["--input=", "does not exist"],
        ),
        (["--model={files}/student.txt", "--input={files}/images"], ["does not exist"]),
        (["--model={files}/images/small.png", "--input={files}/images"], ["unknown kind", ".png"]),
        (["--model={files}/images", "--input={files}/images"], ["without a SavedModel"]),
        (
            ["--model={files}/student.tflite", "--input={files}/images", "--class_names=nyu13"],
            ["--class_names=nyu13 has 13 classes"],
        ),
    ],
)
def test_bad_inputs(files, tmp_path, args, fragments):
    result = run_tool(
        "tools/predict.py", *[a.format(files=files) for a in args], f"--out_dir={tmp_path}/o"
    )
    assert_one_line_error(result, *fragments)
