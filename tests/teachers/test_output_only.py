"""Output-only teachers: one foreign model in four files (.keras, SavedModel, .tflite,
and an NCHW .onnx graph built the way a PyTorch export is) gives the same targets
through its declared conventions; TFLite/ONNX outputs are cached per image, keyed by
the model's bytes; bad declarations are refused with the fix."""

import glob
import json
import os

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import ka_tf.registry_all  # noqa: F401
from ka_tf import config
from ka_tf.amalgamation.run import amalgamate, load_teachers
from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.models import SegNet
from ka_tf.teachers import (
    OUTPUT_ONLY,
    Preprocessing,
    load_teacher,
    model_file_kinds,
    teacher_spec,
    teacher_tier,
)
from tests.helpers import REPO_ROOT

SIZE = (32, 32)  # the foreign model's input
CLASSES = 4
PRE = {
    "input_size": SIZE,
    "scale": 1 / 255,
    "mean": (0.5, 0.4, 0.3),
    "std": (0.25, 0.2, 0.3),
    "channel_order": "bgr",
}


def _foreign_model(size=SIZE, classes=CLASSES) -> keras.Model:
    """A model ka_tf did not write: BGR input in normalised units, two outputs."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((*size, 3), name="pixels")
    scores = keras.layers.Conv2D(classes, 3, padding="same", name="scores")(inputs)
    aux = keras.layers.Conv2D(1, 1, name="aux")(inputs)
    return keras.Model(inputs, {"scores": scores, "aux": aux})


def _onnx_nchw(model: keras.Model, path: str, size=SIZE, batch="batch") -> None:
    """The same two convolutions as an NCHW ONNX graph (PyTorch's layout)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers, nodes = [], []
    classes = model.get_layer("scores").filters
    for name in ("scores", "aux"):
        kernel, bias = model.get_layer(name).get_weights()
        initializers += [
            numpy_helper.from_array(kernel.transpose(3, 2, 0, 1).copy(), f"{name}_w"),
            numpy_helper.from_array(bias, f"{name}_b"),
        ]
        pad = kernel.shape[0] // 2
        nodes.append(
            helper.make_node("Conv", ["input.1", f"{name}_w", f"{name}_b"], [name], pads=[pad] * 4)
        )
    graph = helper.make_graph(
        nodes,
        "foreign",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, *size])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, classes, *size]),
            helper.make_tensor_value_info("aux", TensorProto.FLOAT, [batch, 1, *size]),
        ],
        initializers,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("foreign")
    model = _foreign_model()
    paths = {"model": model, "keras": str(root / "foreign.keras")}
    model.save(paths["keras"])
    paths["saved_model"] = str(root / "foreign_saved_model")
    model.export(paths["saved_model"], format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(paths["saved_model"])
    paths["tflite"] = str(root / "foreign.tflite")
    with open(paths["tflite"], "wb") as handle:
        handle.write(converter.convert())
    paths["onnx"] = str(root / "foreign.onnx")
    _onnx_nchw(model, paths["onnx"])
    return paths


def _images(batch: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch, 24, 40, 3)).astype(np.float32)


def _expected(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The targets by hand: resize, scale, normalise, BGR; run; resize back."""
    x = tf.image.resize(images, SIZE, method="bilinear", antialias=True) / 255.0
    x = (x - np.array(PRE["mean"], np.float32)) / np.array(PRE["std"], np.float32)
    scores = model(x[..., ::-1])["scores"]
    return tf.image.resize(scores, images.shape[1:3], method="bilinear").numpy()


def _tflite_scores_output(path: str) -> str:
    from ka_tf.teachers.model_files import open_model_file

    shapes = open_model_file(path).output_shapes
    return next(name for name, shape in shapes.items() if shape[-1] == CLASSES)


def test_the_four_kinds_are_registered():
    assert model_file_kinds() == ("keras", "saved_model", "tflite", "onnx")


@pytest.mark.parametrize("kind", ["keras", "saved_model", "tflite", "onnx"])
def test_every_file_kind_gives_the_declared_targets(files, kind, tmp_path):
    output = "scores"
    layout = "nhwc"
    if kind == "tflite":
        output = _tflite_scores_output(files["tflite"])
    if kind == "onnx":
        layout = "nchw"
    spec = teacher_spec(
        files[kind],
        {"semseg": {"form": "logits", "output": output}},
        layout=layout,
        cache_dir=str(tmp_path / "cache"),
        **PRE,
    )
    teacher = load_teacher(spec)
    assert teacher_tier(teacher) == OUTPUT_ONLY and teacher.tasks == ("semseg",)
    assert teacher.num_classes == CLASSES
    assert teacher.count_params() == files["model"].get_layer("scores").count_params() + 4
    images = _images()
    # Called inside a compiled function, as training and evaluation call it.
    result = tf.function(lambda x: teacher(x))(tf.constant(images))["semseg"]
    assert result.shape == (2, 24, 40, CLASSES)
    np.testing.assert_allclose(result.numpy(), _expected(files["model"], images), atol=2e-4)


def test_an_onnx_graph_of_fixed_batch_one_runs_image_by_image(files, tmp_path):
    path = str(tmp_path / "batch_one.onnx")
    _onnx_nchw(files["model"], path, batch=1)  # as U²-Net's export
    spec = teacher_spec(
        path,
        {"semseg": {"form": "logits", "output": "scores"}},
        layout="nchw",
        cache_dir=str(tmp_path / "cache"),
        **PRE,
    )
    images = _images(3)
    result = load_teacher(spec)(images)["semseg"].numpy()
    np.testing.assert_allclose(result, _expected(files["model"], images), atol=2e-4)


def test_probabilities_become_logits_with_the_same_softmax(files):
    teacher = load_teacher(
        teacher_spec(files["keras"], {"semseg": {"form": "logits", "output": "scores"}}, **PRE)
    )
    logits = teacher(_images())["semseg"]
    probabilities = tf.nn.softmax(logits)
    from ka_tf.tasks import get_task

    again = get_task("semseg").teacher_target(probabilities, "probabilities")
    np.testing.assert_allclose(tf.nn.softmax(again).numpy(), probabilities.numpy(), atol=1e-5)


def test_onnx_outputs_are_cached_per_image_and_keyed_by_the_model(files, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    spec = teacher_spec(
        files["onnx"],
        {"semseg": {"form": "logits", "output": "scores"}},
        layout="nchw",
        cache_dir=cache,
        **PRE,
    )
    teacher = load_teacher(spec)
    images = _images(3, seed=1)
    first = teacher(images)["semseg"].numpy()
    assert (teacher.cache.misses, teacher.cache.hits) == (3, 0)
    # The same images again, and their mirror images (new inputs, so new entries).
    np.testing.assert_array_equal(teacher(images)["semseg"].numpy(), first)
    teacher(images[:, :, ::-1])
    assert (teacher.cache.misses, teacher.cache.hits) == (6, 3)
    # A fresh teacher of the same file reads the same folder: nothing recomputed.
    again = load_teacher(spec)
    np.testing.assert_array_equal(again(images)["semseg"].numpy(), first)
    assert (again.cache.misses, again.cache.hits) == (0, 3)
    # A cut entry is recomputed, with a warning, never read.
    entry = sorted(glob.glob(os.path.join(again.cache.folder, "*", "*.npz")))[0]
    with open(entry, "r+b") as handle:
        handle.truncate(20)
    np.testing.assert_array_equal(again(images)["semseg"].numpy(), first)
    assert again.cache.misses == 1
    assert "unreadable" in caplog.text
    # Another model (other weights, same file name) gets another folder: the old
    # outputs are never served for it.
    changed = files["model"]
    kernel, bias = changed.get_layer("scores").get_weights()
    changed.get_layer("scores").set_weights([kernel * 2.0, bias])
    try:
        _onnx_nchw(changed, files["onnx"])
        other = load_teacher(spec)
        assert other.cache.folder != teacher.cache.folder
        np.testing.assert_allclose(
            other(images)["semseg"].numpy(), _expected(changed, images), atol=2e-4
        )
        assert other.cache.misses == 3
    finally:
        changed.get_layer("scores").set_weights([kernel, bias])
        _onnx_nchw(changed, files["onnx"])


def test_preprocessing_by_hand():
    images = np.array([[[[10.0, 20.0, 40.0], [30.0, 60.0, 120.0]]]], np.float32)  # [1,1,2,3]
    x = Preprocessing.create(scale="image_max", layout="nchw", channel_order="bgr").apply(images)
    assert x.shape == (1, 3, 1, 2)
    np.testing.assert_allclose(x.numpy()[0, :, 0, 1], [1.0, 0.5, 0.25])  # B, G, R / max
    y = Preprocessing.create(scale=0.5, mean=(1, 2, 3), std=(2, 2, 2)).apply(images)
    np.testing.assert_allclose(y.numpy()[0, 0, 0], [(5 - 1) / 2, (10 - 2) / 2, (20 - 3) / 2])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outputs": {"semseg": "softmax"}}, r"form 'softmax'.*\['logits', 'probabilities'\]"),
        ({"outputs": {}}, "must name the tasks it teaches"),
        ({"outputs": {"semseg": {"form": "logits", "out": 0}}}, r"unknown keys \['out'\]"),
        ({"outputs": {"semseg": "logits"}, "layout": "chw"}, "layout must be one of"),
        ({"outputs": {"semseg": "logits"}, "scale": "max"}, "scale must be a number or"),
        ({"outputs": {"semseg": "logits"}, "std": (1, 0, 1)}, "std must be > 0"),
    ],
)
def test_bad_declarations_say_what_to_write(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        teacher_spec("any.onnx", **kwargs)


def test_bad_files_and_outputs_name_the_fix(files, tmp_path):
    with pytest.raises(ConfigError, match=r"outputs \['scores', 'aux'\]: choose the semseg"):
        load_teacher(teacher_spec(files["keras"], {"semseg": "logits"}, **PRE))
    with pytest.raises(ConfigError, match=r"takes 32x32 images; bind teacher_spec.input_size"):
        load_teacher(
            teacher_spec(files["keras"], {"semseg": {"form": "logits", "output": "scores"}})
        )
    with pytest.raises(ModelFileError, match=r"output 'aux' .* has 1 channels; expected one"):
        load_teacher(
            teacher_spec(files["keras"], {"semseg": {"form": "logits", "output": 1}}, **PRE)
        )
    with pytest.raises(ModelFileError, match=r"depth output 'scores' .* has 4 channels"):
        load_teacher(
            teacher_spec(files["keras"], {"depth": {"form": "metres", "output": 0}}, **PRE)
        )
    with pytest.raises(ModelFileError, match=r"of no known kind \(\.pt\)"):
        (tmp_path / "model.pt").write_bytes(b"x")
        load_teacher(teacher_spec(str(tmp_path / "model.pt"), {"semseg": "logits"}))
    with pytest.raises(ModelFileError, match=r"not a ka_tf \.keras model: declare it with"):
        load_teachers({"semseg": files["onnx"]})


def _street_run(tmp_path, onnx_path, depth_path, *bindings):
    gin.clear_config()
    config.parse_gin_config(
        ["gin/synth_street.gin"],
        [
            "BATCH_SIZE = 2",
            "IMAGE_SIZE = (32, 64)",
            "synth_benchmark.splits = {'transfer': 4, 'val': 2, 'test': 2}",
            "TRAIN_STEPS = 2",
            "transfer/make_dataset.split = 'transfer'",
            "amalgamate.steps_per_epoch = 1",
            "amalgamate.eval_max_batches = 1",
            "amalgamate.num_panels = 1",
            "amalgamate.init_from = 'depth'",
            f"semseg/teacher_spec.path = {onnx_path!r}",
            "semseg/teacher_spec.outputs = {'semseg': {'form': 'logits', 'output': 'scores'}}",
            "semseg/teacher_spec.layout = 'nchw'",
            "semseg/teacher_spec.input_size = (32, 64)",
            f"semseg/teacher_spec.cache_dir = {str(tmp_path / 'teacher_cache')!r}",
            f"TEACHERS = {{'semseg': @semseg/teacher_spec(), 'depth': {depth_path!r}}}",
            *bindings,
        ],
        search_paths=[REPO_ROOT],
    )
    try:
        return amalgamate(str(tmp_path / "run"), tf.distribute.get_strategy())
    finally:
        gin.clear_config()


def _street_teachers(tmp_path):
    onnx_path = str(tmp_path / "street_semseg.onnx")
    _onnx_nchw(_foreign_model((32, 64), classes=19), onnx_path, size=(32, 64))
    depth_path = str(tmp_path / "depth.keras")
    SegNet("depth", width_multiplier=1 / 16).save(depth_path)
    return onnx_path, depth_path


def test_block_wise_phase_refuses_an_output_only_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path / "synth_cache"))
    with pytest.raises(ConfigError, match=r"'semseg' teacher .*\.onnx is output_only: the block"):
        _street_run(tmp_path, *_street_teachers(tmp_path), "BLOCKWISE_STEPS = 1")
    assert not (tmp_path / "run" / "config.gin").exists()


@pytest.mark.slow  # ~40 s on 2 cores
def test_amalgamation_with_an_onnx_teacher_beside_a_splittable_one(tmp_path, monkeypatch):
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path / "synth_cache"))
    report = _street_run(
        tmp_path,
        *_street_teachers(tmp_path),
        "BLOCKWISE_STEPS = 0",
        "amalgamate.branch_points = {'semseg': 2, 'depth': 3}",
    )
    assert report["teacher_tiers"] == {"semseg": "output_only", "depth": "splittable"}
    assert report["student"]["branches"] == {"semseg": "student's own", "depth": "copied"}
    rows = report["metrics"]["test"]
    assert {"student", "teacher/semseg", "teacher/depth"} == set(rows)
    assert 0.0 <= rows["teacher/semseg"]["semseg/miou"] <= 1.0
    assert report["params"]["teachers"]["semseg"] == 19 * 3 * 9 + 19 + 3 + 1
    student = keras.saving.load_model(str(tmp_path / "run" / "student.keras"))
    outputs = student(np.zeros((1, 32, 64, 3), "float32"))
    assert outputs["semseg"].shape == (1, 32, 64, 19) and outputs["depth"].shape == (1, 32, 64)
    # The ONNX teacher ran once per training image and mirror; its outputs are on disk.
    entries = glob.glob(str(tmp_path / "teacher_cache" / "*" / "*" / "*.npz"))
    assert entries
    key = json.loads(
        (
            tmp_path / "teacher_cache" / os.listdir(tmp_path / "teacher_cache")[0] / "key.json"
        ).read_text()
    )
    assert key["kind"] == "onnx" and len(key["model_sha256"]) == 64
    assert "semseg output-only" in (tmp_path / "run" / "amalgamation_report.md").read_text()


def test_the_gin_example_in_docs_parses():
    """docs/teachers.md's recipe binds real configurables with valid values."""
    with open(os.path.join(REPO_ROOT, "docs", "teachers.md"), encoding="utf-8") as handle:
        text = handle.read()
    block = text.split("```gin\n", 1)[1].split("```", 1)[0]
    bindings = [
        line for line in block.splitlines() if line and not line.startswith(("#", "include"))
    ]
    gin.clear_config()
    try:
        config.parse_gin_config(["gin/demo.gin"], bindings, search_paths=[REPO_ROOT])
        assert gin.query_parameter("semseg/teacher_spec.layout") == "nchw"
        assert gin.query_parameter("amalgamate.branch_points") == {"semseg": 2, "depth": 3}
    finally:
        gin.clear_config()
