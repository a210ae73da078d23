"""Three tasks: online (three teachers at once) and offline (a finished student as a joint
teacher plus a new normals teacher), on tiny synthetic indoor data."""

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
from ka_tf.models import SegNet, TargetNet
from tests.helpers import REPO_ROOT

TINY = [
    "BATCH_SIZE = 2",
    "IMAGE_SIZE = (32, 64)",
    "synth_benchmark.splits = {'transfer': 4, 'val': 2, 'test': 2}",
    "TRAIN_STEPS = 1",
    "amalgamate.steps_per_epoch = 1",
    "amalgamate.val_batches = 1",
    "amalgamate.eval_max_batches = 1",
    "amalgamate.num_panels = 1",
]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path_factory.getbasetemp() / "synth_cache"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    paths = {}
    for task in ("semseg", "depth", "normals"):
        paths[task] = str(root / f"{task}.keras")
        SegNet(task, num_classes=13 if task == "semseg" else None, width_multiplier=1 / 16).save(
            paths[task]
        )
    joint = TargetNet(
        ("semseg", "depth"),
        num_classes=13,
        branch_points={"semseg": 3, "depth": 2},
        width_multiplier=1 / 16,
    )
    paths["joint"] = str(root / "student2.keras")
    joint.save(paths["joint"])
    return paths


def _run(gin_file, teachers, tmp_path, *bindings):
    gin.clear_config()
    config.parse_gin_config(
        [gin_file], [*TINY, f"TEACHERS = {teachers!r}", *bindings], search_paths=[REPO_ROOT]
    )
    return amalgamate(str(tmp_path / "run"), tf.distribute.get_strategy())


@pytest.mark.slow  # ~35 s on 2 cores; the online test stays in the default suite
def test_offline_joint_teacher_adds_normals(files, tmp_path):
    joint_before = keras.saving.load_model(files["joint"]).get_weights()
    report = _run(
        "gin/synth_indoor_offline.gin",
        [files["joint"], files["normals"]],
        tmp_path,
        "BLOCKWISE_STEPS = 0",
        "amalgamate.branch_points = {'semseg': 3, 'depth': 2, 'normals': 1}",
    )
    assert report["tasks"] == ["semseg", "depth", "normals"]
    assert report["teachers"] == {
        "semseg": files["joint"],
        "depth": files["joint"],
        "normals": files["normals"],
    }
    rows = report["metrics"]["test"]
    assert set(rows) == {"student", "teacher/semseg", "teacher/depth", "teacher/normals"}
    assert {"semseg/miou", "depth/rmse", "normals/mean_angle"} <= set(rows["student"])
    student = keras.saving.load_model(str(tmp_path / "run" / "student.keras"))
    outputs = student(np.zeros((1, 32, 64, 3), "float32"))
    assert outputs["normals"].shape == (1, 32, 64, 3) and outputs["semseg"].shape[-1] == 13
    # The joint teacher stayed frozen: the file on disk and its weights are unchanged.
    for a, b in zip(
        joint_before, keras.saving.load_model(files["joint"]).get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_online_three_teachers_reports_three_branch_points(files, tmp_path):
    teachers = {task: files[task] for task in ("semseg", "depth", "normals")}
    report = _run("gin/synth_indoor_3task.gin", teachers, tmp_path, "BLOCKWISE_STEPS = 1")
    assert set(report["branch_points"]) == {"semseg", "depth", "normals"}
    assert all(len(losses) == 5 for losses in report["block_losses"].values())
    assert {"semseg/miou", "depth/rmse", "normals/mean_angle"} <= set(
        report["metrics"]["test"]["student"]
    )
    assert os.path.exists(tmp_path / "run" / "student.keras")


def test_task_claimed_by_two_teachers(files):
    with pytest.raises(ConfigError, match=r"task 'depth' is predicted by two teachers"):
        load_teachers([files["joint"], files["depth"]])


def test_joint_teacher_must_be_a_ka_tf_model(files, tmp_path):
    inputs = keras.Input((None, None, 3))
    plain = keras.Model(inputs, {"normals": keras.layers.Conv2D(3, 1)(inputs)})
    path = str(tmp_path / "plain.keras")
    plain.save(path)
    with pytest.raises(ModelFileError, match="not a splittable ka_tf SegNet/TargetNet"):
        load_teachers({"semseg": files["semseg"], "normals": path})
