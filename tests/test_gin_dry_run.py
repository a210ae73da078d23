"""Every shipped gin file parses strictly, and every runnable one trains for one step.

Teacher files run ``train_teacher`` and experiment files run ``amalgamate`` (one
fine-tuning step, fixed branch points; the block-wise phase is covered by
tests/test_train_tool.py), in-process, on tiny data: the synthetic benchmark at
32x64 and real-format NYUv2/Cityscapes fixture files written by the test.
"""

import glob
import os

import gin
import pytest

import ka_tf.registry_all  # noqa: F401
from ka_tf import config
from ka_tf.amalgamation.run import amalgamate
from ka_tf.errors import ConfigError
from ka_tf.models import SegNet
from ka_tf.training.teacher import train_teacher
from tests.data import fixtures
from tests.helpers import REPO_ROOT

GIN_DIR = os.path.join(REPO_ROOT, "gin")
ALL_FILES = sorted(
    os.path.relpath(p, REPO_ROOT)
    for p in glob.glob(os.path.join(GIN_DIR, "**", "*.gin"), recursive=True)
)
# Fragments that need a dataset file's macros first.
FRAGMENT_CONTEXT = {
    "gin/amalgamation/real_data.gin": ["gin/data/cityscapes.gin"],
    "gin/amalgamation/synth.gin": ["gin/demo.gin"],
    "gin/amalgamation/small_student.gin": ["gin/street_zoo.gin"],
}
# The default suite dry-runs one teacher file and the demo; CI's slow suite (make
# test-slow) one more file per kind of run (another task, each real-data loader, three
# tasks); the rest are in the extended tier (make test-extended), for CI's time budget.
FAST = {
    "gin/teachers/synth_street_semseg.gin",
    "gin/demo.gin",
}
CI_SLOW = {
    "gin/teachers/synth_indoor_normals.gin",
    "gin/teachers/nyuv2_depth.gin",
    "gin/teachers/cityscapes_semseg.gin",
    "gin/cityscapes.gin",
    "gin/nyuv2.gin",
    "gin/synth_indoor_3task.gin",
    "gin/street_zoo_lite.gin",
    "gin/indoor_zoo_full.gin",
}


def _marked(files):
    return [
        f
        if f in FAST
        else pytest.param(
            f,
            marks=(pytest.mark.slow,) if f in CI_SLOW else (pytest.mark.slow, pytest.mark.extended),
        )
        for f in files
    ]


TEACHER_FILES = [f for f in ALL_FILES if f.startswith("gin/teachers/")]
EXPERIMENT_FILES = [f for f in ALL_FILES if os.path.dirname(f) == "gin"]
TINY = ["BATCH_SIZE = 2", "IMAGE_SIZE = (32, 64)"]
# Files whose own sizes must shrink with TINY's frames.
TINY_EXTRA = {
    "gin/street_zoo.gin": ["CROP_SIZE = (32, 32)"],
    "gin/street_zoo_full.gin": ["CROP_SIZE = (32, 32)"],
    "gin/street_zoo_lite.gin": ["CROP_SIZE = (32, 32)"],
    "gin/indoor_zoo_3task.gin": ["CROP_SIZE = (32, 32)"],
    "gin/indoor_zoo_full.gin": ["CROP_SIZE = (32, 32)"],
}
SYNTH_SPLITS = "synth_benchmark.splits = {'teacher': 4, 'transfer': 4, 'val': 2, 'test': 2}"


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    fixtures.write_cityscapes(str(root / "cityscapes"))
    fixtures.write_nyu_npy(str(root / "nyuv2"))
    return {"cityscapes": str(root / "cityscapes"), "nyuv2": str(root / "nyuv2")}


@pytest.fixture(autouse=True)
def _synth_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path_factory.getbasetemp() / "synth_cache"))


def _data_bindings(gin_file: str, data_dirs) -> list[str]:
    for name, path in data_dirs.items():
        if name in os.path.basename(gin_file):
            return [f"DATA_DIR = '{path}'"]
    return [SYNTH_SPLITS]


def _parse(gin_file: str, bindings=()) -> None:
    gin.clear_config()
    files = [*FRAGMENT_CONTEXT.get(gin_file, []), gin_file]
    config.parse_gin_config(files, list(bindings), search_paths=[REPO_ROOT])


def test_the_runnable_files_are_covered():
    assert "gin/demo.gin" in EXPERIMENT_FILES and "gin/cityscapes.gin" in EXPERIMENT_FILES
    assert "gin/teachers/synth_indoor_normals.gin" in TEACHER_FILES


def _needs_data_dir(gin_file: str) -> bool:
    return any(name in gin_file for name in ("cityscapes", "nyuv2", "real_data"))


@pytest.mark.parametrize("gin_file", ALL_FILES)
def test_parses_strictly(gin_file):
    _parse(gin_file, ["DATA_DIR = '/data'"] if _needs_data_dir(gin_file) else [])
    assert gin.config_str().strip()


@pytest.mark.parametrize("gin_file", ["gin/cityscapes.gin", "gin/teachers/nyuv2_depth.gin"])
def test_real_data_files_require_data_dir(gin_file):
    with pytest.raises(ConfigError, match=r"DATA_DIR is required .* --gin_bindings=\"DATA_DIR = "):
        _parse(gin_file)


@pytest.mark.parametrize("gin_file", _marked(TEACHER_FILES))
def test_teacher_file_trains_one_step(gin_file, data_dirs, tmp_path):
    import tensorflow as tf

    _parse(
        gin_file,
        [
            *TINY,
            *_data_bindings(gin_file, data_dirs),
            "TRAIN_STEPS = 1",
            "train_teacher.steps_per_epoch = 1",
            "train_teacher.val_batches = 1",
            "train_teacher.eval_max_batches = 1",
            "build_teacher.width_multiplier = 0.0625",
        ],
    )
    report = train_teacher(str(tmp_path), tf.distribute.get_strategy())
    for artifact in ("teacher.keras", "best.weights.h5", "config.gin", "teacher_report.json"):
        assert os.path.exists(tmp_path / artifact), artifact
    assert os.listdir(tmp_path / "checkpoints") and os.listdir(tmp_path / "logs")
    assert report["task"] in ("semseg", "depth", "normals")
    assert report["metrics"]["test"], report
    # The trivial baseline is scored on the same keys.
    assert set(report["baseline"]["metrics"]["test"]) == set(report["metrics"]["test"])


@pytest.mark.parametrize("gin_file", _marked(EXPERIMENT_FILES))
def test_experiment_file_amalgamates_one_step(gin_file, data_dirs, tmp_path):
    import tensorflow as tf

    tiny = [*TINY, *TINY_EXTRA.get(gin_file, [])]
    _parse(gin_file, [*tiny, *_data_bindings(gin_file, data_dirs)])
    num_classes = gin.query_parameter("%NUM_CLASSES")
    teachers = {}
    for task in ("semseg", "depth"):
        path = str(tmp_path / f"{task}.keras")
        SegNet(
            task, num_classes=num_classes if task == "semseg" else None, width_multiplier=1 / 16
        ).save(path)
        teachers[task] = path
    try:
        lite = gin.query_parameter("amalgamate.student_family") == "efficientnet_lite"
    except ValueError:
        lite = False
    # The light student has one decoder per task (no branch points) and, here, a random
    # encoder (its ImageNet weights come from `make real-teachers`).
    branching = (
        ["lite_student.encoder_weights = None"]
        if lite
        else ["amalgamate.branch_points = {'semseg': 3, 'depth': 1}"]
    )
    _parse(
        gin_file,
        [
            *tiny,
            *_data_bindings(gin_file, data_dirs),
            f"TEACHERS = {teachers!r}",
            "BLOCKWISE_STEPS = 0",
            "TRAIN_STEPS = 1",
            *branching,
            "amalgamate.steps_per_epoch = 1",
            "amalgamate.eval_max_batches = 1",
            "amalgamate.num_panels = 1",
        ],
    )
    report = amalgamate(str(tmp_path / "run"), tf.distribute.get_strategy())
    assert report["branch_points"] == ({} if lite else {"semseg": 3, "depth": 1})
    assert set(report["metrics"]["test"]) == {"student", "teacher/semseg", "teacher/depth"}
    assert os.path.exists(tmp_path / "run" / "student.keras")
    assert os.path.exists(tmp_path / "run" / "panels" / "test_00.png")


def test_street_zoo_trains_on_windows_and_scores_whole_frames():
    from ka_tf.data.pipeline import make_dataset

    _parse(
        "gin/street_zoo.gin",
        ["IMAGE_SIZE = (64, 128)", "CROP_SIZE = (32, 64)", "BATCH_SIZE = 2", SYNTH_SPLITS],
    )
    shapes = {}
    for scope in ("transfer", "val_images", "test"):
        with gin.config_scope(scope):
            shapes[scope] = tuple(next(iter(make_dataset()))["image"].shape)
    assert shapes == {
        "transfer": (2, 32, 64, 3),
        "val_images": (2, 64, 128, 3),
        "test": (2, 64, 128, 3),
    }
