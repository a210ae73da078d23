"""The bad-input corpus: every tool in tools/, run on wrong inputs, fails cleanly.

Each case runs one tool as a subprocess on one kind of wrong input (missing, corrupt
or truncated file, wrong shape or dtype, wrong channel count, label/image size
mismatch, NaN/inf depth, empty folder, unknown gin binding, bad flag value) and
asserts exit status 2, a single ``error:`` line naming the file or value, and that
nothing on disk changed: every file under the test's folder and the shared fixtures
(sentinels placed at the output paths included) keeps its bytes, and no file is
added. Inputs a tool accepts by design (grayscale/RGBA images converted to RGB,
NaN/inf depth read as invalid pixels) are cases that must succeed with the right
result. Every failing case fails before any training.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from tests.data import fixtures
from tests.helpers import assert_one_line_error, run_tool, snapshot_files

pytestmark = pytest.mark.slow

SENTINEL = b"previous output: must survive a failed run\n"


@dataclasses.dataclass
class Case:
    """One bad input: the tool's arguments and the fragments its error line must hold."""

    args: list[str]
    fragments: list[str] = dataclasses.field(default_factory=list)
    # For inputs the tool accepts by design: a check of the finished process instead.
    accepted: Callable | None = None


def _random_bytes(path: Path, size: int = 4096) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def _truncated(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def _sentinel(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SENTINEL)
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """Valid inputs every case starts from: tiny models and a PyTorch checkpoint."""
    from ka_tf.models import SegNet
    from tests.test_export import tiny_student

    root = tmp_path_factory.mktemp("corpus_shared")
    keras.utils.set_random_seed(0)
    SegNet("semseg", num_classes=13, width_multiplier=1 / 16).save(root / "semseg.keras")
    SegNet("depth", width_multiplier=1 / 16).save(root / "depth.keras")
    tiny_student(("semseg", "depth"), seed=1).save(root / "student.keras")
    plain = keras.Sequential([keras.Input((32, 64, 3)), keras.layers.Conv2D(2, 1)])
    plain.save(root / "plain.keras")
    keras.backend.clear_session()
    try:
        import torch

        from benchmarks.torch_segnet import TorchSegNet

        torch.manual_seed(0)
        model = TorchSegNet("depth", arch="segnet_vgg16_bn", width_multiplier=1 / 16)
        torch.save(model.state_dict(), str(root / "teacher.pth"))
    except ImportError:  # the convert_teacher cases skip themselves
        pass
    return root


# --- inputs per tool ---------------------------------------------------------------------


def _nyu_npy(tmp: Path) -> Path:
    return Path(fixtures.write_nyu_npy(str(tmp / "nyu")).data_dir)


def _cityscapes(tmp: Path) -> tuple[Path, dict[str, str]]:
    tree = fixtures.write_cityscapes(str(tmp / "cs"))
    stem = tree.frames["val"][0][0]
    return Path(tree.data_dir), fixtures.cityscapes_paths(tree.data_dir, "val", "frankfurt", stem)


def _inspect(tmp: Path, data_dir: Path, dataset: str = "nyuv2", split: str = "train"):
    out = _sentinel(tmp / "preview.png")
    return [
        "tools/inspect_dataset.py",
        f"--dataset={dataset}",
        f"--data_dir={data_dir}",
        f"--split={split}",
        f"--out={out}",
    ]


def _depth_line(result) -> str:
    return next(line for line in result.stdout.splitlines() if line.startswith("depth "))


def inspect_nan_depth(tmp, shared):
    data_dir = _nyu_npy(tmp)
    depths = []
    for index in range(3):
        path = data_dir / "train" / "depth" / f"{index}.npy"
        depth = np.load(path)
        depth[5:9] = np.nan
        depth[10:12] = np.inf
        depth[12, :3] = -np.inf
        np.save(path, depth)
        depths.append(depth)
    stacked = np.stack(depths)
    valid = np.isfinite(stacked) & (stacked > 0)
    expected = f"depth        {valid.mean():.1%} of pixels valid"
    finite = stacked[valid]

    def check(result):
        assert result.returncode == 0, result.stderr[-2000:]
        line = _depth_line(result)
        assert line.startswith(expected), (line, expected)
        assert f"range {finite.min():.3f} .. {finite.max():.3f} m" in line, line
        assert "nan" not in line and "inf" not in line, line

    args = _inspect(tmp, data_dir)
    return Case([*args[:-1], f"--out={tmp / 'new.png'}"], accepted=check)


def inspect_npy_corrupt(tmp, shared):
    data_dir = _nyu_npy(tmp)
    path = _random_bytes(data_dir / "train" / "depth" / "1.npy")
    return Case(_inspect(tmp, data_dir), ["corrupt .npy file", str(path)])


def inspect_npy_truncated(tmp, shared):
    data_dir = _nyu_npy(tmp)
    path = data_dir / "train" / "image" / "0.npy"
    _truncated(path, path)
    return Case(_inspect(tmp, data_dir), ["corrupt .npy file", str(path)])


def inspect_npy_wrong_rank(tmp, shared):
    data_dir = _nyu_npy(tmp)
    path = data_dir / "train" / "image" / "0.npy"
    np.save(path, np.zeros((32, 64), np.float64))
    return Case(_inspect(tmp, data_dir), [str(path), "has shape (32, 64)"])


def inspect_npy_size_mismatch(tmp, shared):
    data_dir = _nyu_npy(tmp)
    path = data_dir / "train" / "depth" / "2.npy"
    np.save(path, np.ones((16, 64, 1), np.float32))
    return Case(_inspect(tmp, data_dir), [str(path), "(16, 64, 1)", "32x64"])


def inspect_npy_missing_partner(tmp, shared):
    data_dir = _nyu_npy(tmp)
    path = data_dir / "train" / "label" / "1.npy"
    path.unlink()
    return Case(_inspect(tmp, data_dir), ["missing", str(path)])


def inspect_npy_empty_folder(tmp, shared):
    data_dir = _nyu_npy(tmp)
    folder = data_dir / "train" / "image"
    for path in folder.iterdir():
        path.unlink()
    return Case(_inspect(tmp, data_dir), ["no <i>.npy files", str(folder)])


def inspect_npy_label_values(tmp, shared):
    data_dir = _nyu_npy(tmp)
    path = data_dir / "train" / "label" / "0.npy"
    np.save(path, np.full((32, 64), 50.0))
    return Case(_inspect(tmp, data_dir), [str(path), "expected integer classes 0..12"])


def inspect_npy_image_range(tmp, shared):
    data_dir = _nyu_npy(tmp)
    path = data_dir / "train" / "image" / "0.npy"
    np.save(path, np.full((32, 64, 3), 255.0))  # 0..255 floats where 0..1 is expected
    return Case(_inspect(tmp, data_dir), [str(path), "expected a float image in [0, 1]"])


def inspect_cityscapes_label_size(tmp, shared):
    data_dir, paths = _cityscapes(tmp)
    Image.fromarray(np.zeros((16, 32), np.uint8), mode="L").save(paths["label"])
    return Case(_inspect(tmp, data_dir, "cityscapes", "val"), [paths["label"], "16x32", "32x64"])


def inspect_cityscapes_label_rgb(tmp, shared):
    data_dir, paths = _cityscapes(tmp)
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(paths["label"])
    return Case(_inspect(tmp, data_dir, "cityscapes", "val"), [paths["label"], "'RGB'"])


def inspect_cityscapes_disparity_8bit(tmp, shared):
    data_dir, paths = _cityscapes(tmp)
    Image.fromarray(np.zeros((32, 64), np.uint8), mode="L").save(paths["disparity"])
    return Case(_inspect(tmp, data_dir, "cityscapes", "val"), [paths["disparity"], "16-bit"])


def inspect_cityscapes_truncated_image(tmp, shared):
    data_dir, paths = _cityscapes(tmp)
    _truncated(Path(paths["image"]), Path(paths["image"]))
    return Case(_inspect(tmp, data_dir, "cityscapes", "val"), [paths["image"]])


def inspect_cityscapes_corrupt_camera(tmp, shared):
    data_dir, paths = _cityscapes(tmp)
    _random_bytes(Path(paths["camera"]), 64)
    return Case(_inspect(tmp, data_dir, "cityscapes", "val"), [paths["camera"], "JSON"])


def inspect_nyu_mat_truncated(tmp, shared):
    fixture = fixtures.write_nyu_mat(str(tmp / "mat"))
    path = Path(fixture.data_dir) / "nyu_depth_v2_labeled.mat"
    _truncated(path, path)
    return Case(_inspect(tmp, Path(fixture.data_dir)), [str(path)])


def _gray_and_rgba_folder(folder: Path, gray_hw, rgba_hw) -> Path:
    """A new folder with ``gray.png`` (mode L) and ``rgba.png`` of random pixels."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, gray_hw, dtype=np.uint8), mode="L").save(
        folder / "gray.png"
    )
    Image.fromarray(rng.integers(0, 256, (*rgba_hw, 4), dtype=np.uint8), mode="RGBA").save(
        folder / "rgba.png"
    )
    return folder


def inspect_gray_and_rgba_images(tmp, shared):
    folder = _gray_and_rgba_folder(tmp / "images", (32, 48), (32, 48))

    def check(result):
        assert result.returncode == 0, result.stderr[-2000:]
        assert "examples     2" in result.stdout, result.stdout
        assert "image sizes  32x48 (2)" in result.stdout, result.stdout
        assert Image.open(tmp / "new.png").mode == "RGB"

    args = ["tools/inspect_dataset.py", "--dataset=image_folder", f"--data_dir={folder}"]
    return Case([*args, "--split=all", f"--out={tmp / 'new.png'}"], accepted=check)


# make_synth: a previous split is in --out_dir and must survive.


def _make_synth(tmp: Path, *extra: str) -> list[str]:
    out = tmp / "synth"
    _sentinel(out / "street" / "teacher" / "spec.json")
    _sentinel(out / "street" / "teacher" / "data-00000-of-00001.tfrecord")
    base = ["--scene=street", "--split=teacher", "--num_frames=2", "--height=32", "--width=64"]
    return ["tools/make_synth.py", *base, f"--out_dir={out}", *extra]


def make_synth_negative_seed(tmp, shared):
    return Case(_make_synth(tmp, "--seed=-1"), ["--seed=-1"])


def make_synth_unknown_binding(tmp, shared):
    return Case(_make_synth(tmp, "--gin_bindings=scene_config.no_such_knob = 3"), ["no_such_knob"])


def make_synth_garbled_gin_file(tmp, shared):
    path = tmp / "scene.gin"
    path.write_text("scene_config.fov_deg = = (30, 40)\n")
    return Case(_make_synth(tmp, f"--gin_file={path}"), [str(path)])


# Training tools: a previous run is in --model_dir and must survive.


def _previous_run(tmp: Path) -> Path:
    model_dir = tmp / "run"
    _sentinel(model_dir / "teacher.keras")
    _sentinel(model_dir / "student.keras")
    _sentinel(model_dir / "config.gin")  # written only once a run's inputs are valid
    _sentinel(model_dir / "checkpoints" / "ckpt-1.index")
    return model_dir


def _train_teacher(tmp: Path, *bindings: str, data_dir: Path | None = None) -> list[str]:
    data_dir = data_dir or _nyu_npy(tmp)
    args = [
        "tools/train_teacher.py",
        "--gin_file=gin/teachers/nyuv2_semseg.gin",
        f"--model_dir={_previous_run(tmp)}",
        f"--gin_bindings=DATA_DIR = '{data_dir}'",
        "--gin_bindings=IMAGE_SIZE = (32, 64)",
        "--gin_bindings=BATCH_SIZE = 2",
        "--gin_bindings=TRAIN_STEPS = 1",
        "--gin_bindings=build_teacher.width_multiplier = 0.0625",
        "--gin_bindings=build_teacher.synchronized_bn = False",
    ]
    return args + [f"--gin_bindings={b}" for b in bindings]


def train_teacher_unknown_binding(tmp, shared):
    return Case(_train_teacher(tmp, "train_teacher.no_such_option = 1"), ["no_such_option"])


def train_teacher_image_size(tmp, shared):
    args = _train_teacher(tmp, "IMAGE_SIZE = (33, 64)")
    return Case(args, ["33", "multiples of 32"])


def train_teacher_negative_steps(tmp, shared):
    args = _train_teacher(tmp, "TRAIN_STEPS = -5")
    return Case(args, ["steps=-5"])


def train_teacher_model_dir_under_a_file(tmp, shared):
    blocker = _sentinel(tmp / "not_a_dir")
    args = _train_teacher(tmp)
    args[2] = f"--model_dir={blocker / 'run'}"
    return Case(args, [f"--model_dir={blocker / 'run'}", "is not writable"])


def train_teacher_missing_data_dir(tmp, shared):
    missing = tmp / "no_such_nyu"
    args = _train_teacher(tmp, data_dir=missing)
    return Case(args, [str(missing), "does not exist"])


def _train(tmp: Path, teachers: dict[str, str], *bindings: str) -> list[str]:
    folder = tmp / "images"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    args = [
        "tools/train.py",
        "--gin_file=gin/demo.gin",
        f"--model_dir={_previous_run(tmp)}",
        f"--gin_bindings=TEACHERS = {teachers!r}",
        "--gin_bindings=IMAGE_SIZE = (32, 64)",
        "--gin_bindings=BATCH_SIZE = 2",
        "--gin_bindings=DATASET = 'image_folder'",
        f"--gin_bindings=DATA_DIR = '{folder}'",
        "--gin_bindings=transfer/make_dataset.split = 'all'",
        "--gin_bindings=amalgamate.val_data = None",
        "--gin_bindings=amalgamate.test_data = None",
    ]
    return args + [f"--gin_bindings={b}" for b in bindings]


def _teachers(shared: Path, **override: str) -> dict[str, str]:
    paths = {"semseg": str(shared / "semseg.keras"), "depth": str(shared / "depth.keras")}
    return {**paths, **override}


def train_corrupt_teacher(tmp, shared):
    path = str(_random_bytes(tmp / "semseg.keras"))
    args = _train(tmp, _teachers(shared, semseg=path))
    return Case(args, ["cannot load", path])


def train_truncated_teacher(tmp, shared):
    path = str(_truncated(shared / "depth.keras", tmp / "depth.keras"))
    args = _train(tmp, _teachers(shared, depth=path))
    return Case(args, ["cannot load", path])


def train_teacher_of_other_task(tmp, shared):
    path = str(shared / "semseg.keras")
    args = _train(tmp, _teachers(shared, depth=path))
    return Case(args, [path, "depth"])


def train_image_size(tmp, shared):
    # With DATASET = 'image_folder' the image size is the loader's size option.
    args = _train(tmp, _teachers(shared), "transfer/make_dataset.load_options = {'size': (48, 65)}")
    return Case(args, ["65", "multiples of 32"])


# evaluate: reads the real NYUv2 npy layout; a previous report at --output must survive.


def _evaluate(tmp: Path, model: Path | str, *extra: str, data_dir: Path | None = None):
    output = _sentinel(tmp / "report.json")
    return [
        "tools/evaluate.py",
        f"--model={model}",
        "--dataset=nyuv2",
        f"--data_dir={data_dir or _nyu_npy(tmp)}",
        "--split=test",
        "--noprogress",
        f"--output={output}",
        *extra,
    ]


def evaluate_corrupt_model(tmp, shared):
    path = _random_bytes(tmp / "model.keras")
    return Case(_evaluate(tmp, path), ["cannot load --model=", str(path)])


def evaluate_truncated_model(tmp, shared):
    path = _truncated(shared / "semseg.keras", tmp / "model.keras")
    return Case(_evaluate(tmp, path), ["cannot load --model=", str(path)])


def evaluate_not_a_dense_model(tmp, shared):
    return Case(_evaluate(tmp, shared / "plain.keras"), ["plain.keras"])


def evaluate_unknown_task(tmp, shared):
    return Case(_evaluate(tmp, shared / "semseg.keras", "--tasks=semseg,edges"), ["edges"])


def evaluate_empty_split(tmp, shared):
    data_dir = _nyu_npy(tmp)
    folder = data_dir / "val" / "image"
    for path in folder.iterdir():
        path.unlink()
    return Case(
        _evaluate(tmp, shared / "semseg.keras", data_dir=data_dir), ["no <i>.npy", str(folder)]
    )


def evaluate_unknown_binding(tmp, shared):
    args = _evaluate(tmp, shared / "semseg.keras", "--gin_bindings=load.no_such_option = 1")
    return Case(args, ["no_such_option"])


# convert_teacher: a previous teacher at --output must survive.


def _convert(tmp: Path, checkpoint: Path | str, *extra: str) -> list[str]:
    pytest.importorskip("torch")
    output = _sentinel(tmp / "teachers" / "depth.keras")
    return [
        "tools/convert_teacher.py",
        f"--checkpoint={checkpoint}",
        "--task=depth",
        "--width_multiplier=0.0625",
        f"--output={output}",
        *extra,
    ]


def convert_missing_checkpoint(tmp, shared):
    path = tmp / "no_such.pth"
    return Case(_convert(tmp, path), [str(path)])


def convert_corrupt_checkpoint(tmp, shared):
    path = _random_bytes(tmp / "teacher.pth")
    return Case(_convert(tmp, path), [str(path)])


def convert_truncated_checkpoint(tmp, shared):
    path = _truncated(shared / "teacher.pth", tmp / "teacher.pth")
    return Case(_convert(tmp, path), [str(path)])


def convert_bad_verify_size(tmp, shared):
    args = _convert(tmp, shared / "teacher.pth", "--verify", "--verify_size=33,64")
    return Case(args, ["--verify_size=33,64", "multiples of 32"])


# export: a previous file in --out_dir must survive.


def _export(tmp: Path, model: Path | str, *extra: str) -> list[str]:
    out_dir = tmp / "export"
    _sentinel(out_dir / "notes.txt")
    return ["tools/export.py", f"--model={model}", f"--out_dir={out_dir}", *extra]


def export_truncated_model(tmp, shared):
    path = _truncated(shared / "student.keras", tmp / "student.keras")
    return Case(_export(tmp, path), ["cannot load --model=", str(path)])


def export_negative_image_size(tmp, shared):
    return Case(_export(tmp, shared / "student.keras", "--image_size=-32,64"), ["-32"])


def export_empty_calibration_folder(tmp, shared):
    folder = tmp / "calibration"
    folder.mkdir()
    args = _export(
        tmp,
        shared / "student.keras",
        "--formats=tflite",
        "--tflite_quant=int8",
        f"--representative_data={folder}",
    )
    return Case(args, [str(folder)])


def export_missing_eval_dir(tmp, shared):
    missing = tmp / "no_such_nyu"
    args = _export(
        tmp, shared / "student.keras", "--eval_dataset=nyuv2", f"--eval_data_dir={missing}"
    )
    return Case(args, [str(missing)])


# predict: a previous panel in --out_dir must survive.


def _predict(tmp: Path, model: Path | str, image: Path | str, *extra: str) -> list[str]:
    out_dir = tmp / "pred"
    _sentinel(out_dir / "photo_panel.png")
    args = ["tools/predict.py", f"--model={model}", f"--input={image}", f"--out_dir={out_dir}"]
    return [*args, "--noprogress", *extra]


def _photo(tmp: Path, shape=(40, 50, 3), mode=None) -> Path:
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    path = tmp / "photos" / "photo.png"
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(path)
    return path


def predict_corrupt_image(tmp, shared):
    path = _random_bytes(tmp / "photo.png")
    return Case(_predict(tmp, shared / "student.keras", path), ["corrupt or unreadable", str(path)])


def predict_truncated_image(tmp, shared):
    path = _truncated(_photo(tmp), tmp / "photo.png")
    return Case(_predict(tmp, shared / "student.keras", path), [str(path)])


def predict_corrupt_tflite(tmp, shared):
    model = _random_bytes(tmp / "student.tflite")
    return Case(_predict(tmp, model, _photo(tmp)), [str(model)])


def predict_empty_folder(tmp, shared):
    folder = tmp / "empty"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images")
    return Case(_predict(tmp, shared / "student.keras", folder), [str(folder), "holds no images"])


def predict_bad_image_size(tmp, shared):
    args = _predict(tmp, shared / "student.keras", _photo(tmp), "--image_size=32,wide")
    return Case(args, ["--image_size=32,wide"])


def predict_gray_and_rgba_images(tmp, shared):
    folder = _gray_and_rgba_folder(tmp / "photos", (40, 50), (24, 70))
    out_dir = tmp / "new_pred"

    def check(result):
        assert result.returncode == 0, result.stderr[-2000:]
        for stem, hw in (("gray", (40, 50)), ("rgba", (24, 70))):
            assert np.load(out_dir / f"{stem}_semseg.npy").shape == hw
            assert np.load(out_dir / f"{stem}_depth.npy").shape == hw
            assert Image.open(out_dir / f"{stem}_panel.png").mode == "RGB"

    args = ["tools/predict.py", f"--model={shared / 'student.keras'}", f"--input={folder}"]
    return Case([*args, f"--out_dir={out_dir}", "--noprogress"], accepted=check)


# benchmark: a previous report at --output must survive.


def _benchmark(tmp: Path, *extra: str) -> list[str]:
    output = _sentinel(tmp / "bench.json")
    base = ["--sections=machine", "--image_size=32,64", "--batch_size=1", "--matmul_size=64"]
    return ["tools/benchmark.py", *base, f"--output={output}", *extra]


def benchmark_missing_student(tmp, shared):
    path = tmp / "no_such_student.keras"
    return Case(_benchmark(tmp, f"--student={path}"), [str(path)])


def benchmark_corrupt_teacher(tmp, shared):
    path = _random_bytes(tmp / "teacher.keras")
    extra = f"--teachers={path},{shared / 'depth.keras'}"
    return Case(_benchmark(tmp, extra, f"--student={shared / 'student.keras'}"), [str(path)])


def benchmark_unknown_binding(tmp, shared):
    args = _benchmark(tmp, "--gin_bindings=build_teacher.no_such_width = 2")
    return Case(args, ["no_such_width"])


def convert_encoder_corrupt_weights(tmp, shared):
    path = _random_bytes(tmp / "efficientnet-lite0.pth")
    out = tmp / "encoder.weights.h5"
    out.write_bytes(SENTINEL)
    return Case(["tools/convert_encoder.py", f"--pth={path}", f"--output={out}"], [str(path)])


def fetch_real_unknown_asset(tmp, shared):
    args = ["tools/fetch_real.py", f"--cache_dir={tmp / 'cache'}", "--only=no_such_model"]
    return Case(args, ["no_such_model", "selfie_segmentation"])


def fetch_real_tampered_cache(tmp, shared):
    """A cached file whose bytes changed: named, with the fix; nothing downloaded."""
    cache = tmp / "cache"
    model = cache / "models" / "selfie_segmentation.tflite"
    _random_bytes(model, 1000)
    args = [
        "tools/fetch_real.py",
        f"--cache_dir={cache}",
        "--only=selfie_segmentation",
        "--verify_only",
    ]
    return Case(args, [str(model), "make real-teachers"])


CASES = {
    fn.__name__: fn
    for fn in (
        make_synth_negative_seed,
        make_synth_unknown_binding,
        make_synth_garbled_gin_file,
        inspect_npy_corrupt,
        inspect_npy_truncated,
        inspect_npy_wrong_rank,
        inspect_npy_size_mismatch,
        inspect_npy_missing_partner,
        inspect_npy_empty_folder,
        inspect_npy_label_values,
        inspect_npy_image_range,
        inspect_nan_depth,
        inspect_cityscapes_label_size,
        inspect_cityscapes_label_rgb,
        inspect_cityscapes_disparity_8bit,
        inspect_cityscapes_truncated_image,
        inspect_cityscapes_corrupt_camera,
        inspect_nyu_mat_truncated,
        inspect_gray_and_rgba_images,
        train_teacher_unknown_binding,
        train_teacher_image_size,
        train_teacher_negative_steps,
        train_teacher_model_dir_under_a_file,
        train_teacher_missing_data_dir,
        train_corrupt_teacher,
        train_truncated_teacher,
        train_teacher_of_other_task,
        train_image_size,
        evaluate_corrupt_model,
        evaluate_truncated_model,
        evaluate_not_a_dense_model,
        evaluate_unknown_task,
        evaluate_empty_split,
        evaluate_unknown_binding,
        convert_missing_checkpoint,
        convert_corrupt_checkpoint,
        convert_truncated_checkpoint,
        convert_bad_verify_size,
        convert_encoder_corrupt_weights,
        fetch_real_unknown_asset,
        fetch_real_tampered_cache,
        export_truncated_model,
        export_negative_image_size,
        export_empty_calibration_folder,
        export_missing_eval_dir,
        predict_corrupt_image,
        predict_truncated_image,
        predict_corrupt_tflite,
        predict_empty_folder,
        predict_bad_image_size,
        predict_gray_and_rgba_images,
        benchmark_missing_student,
        benchmark_corrupt_teacher,
        benchmark_unknown_binding,
    )
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path, shared):
    case = CASES[name](tmp_path, shared)
    before = snapshot_files(tmp_path, shared)
    result = run_tool(*case.args, timeout=120)  # every case fails in seconds; a hang is a bug
    if case.accepted is not None:
        case.accepted(result)
        return
    assert_one_line_error(result, *case.fragments)
    after = snapshot_files(tmp_path, shared)
    changed = sorted(p for p in before if after.get(p) != before[p])
    added = sorted(set(after) - set(before))
    assert not changed, f"files changed or removed by a failed run: {changed}"
    assert not added, f"files written by a failed run: {added}"
    leftovers = [p for p in after if ".tmp" in os.path.basename(p)]
    assert not leftovers, leftovers
    shutil.rmtree(tmp_path, ignore_errors=True)
