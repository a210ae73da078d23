"""Splittable teachers: SegNet, a finished TargetNet and the U-Net pass the shared
contract; a U-Net teacher is amalgamated through its decoder beside a SegNet one."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import ka_tf.registry_all  # noqa: F401
from ka_tf import config
from ka_tf.amalgamation.run import amalgamate
from ka_tf.errors import ConfigError
from ka_tf.models import SegNet, TargetNet, UNet
from ka_tf.teachers import OUTPUT_ONLY, SPLITTABLE, load_teacher, seeds_student, teacher_tier
from ka_tf.training.teacher import train_teacher
from tests.helpers import REPO_ROOT, he_init_convs
from tests.teachers.splittable_contract import run_splittable_teacher_test


def _images(seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (2, 32, 64, 3)).astype("float32")


@pytest.mark.parametrize(
    "build",
    [
        lambda: SegNet("semseg", num_classes=5, width_multiplier=1 / 16, name="segnet"),
        lambda: TargetNet(
            ("semseg", "depth"),
            num_classes=5,
            branch_points={"semseg": 3, "depth": 1},
            width_multiplier=1 / 16,
            name="joint",
        ),
        lambda: UNet("depth", width_multiplier=1 / 16, name="unet_depth"),
        lambda: UNet("semseg", num_classes=5, channels=(8, 16, 24, 32, 32), name="unet_semseg"),
    ],
    ids=["segnet", "target_net", "unet_depth", "unet_semseg_own_channels"],
)
def test_splittable_contract(build, tmp_path):
    keras.utils.set_random_seed(0)
    teacher = he_init_convs(build())
    run_splittable_teacher_test(teacher, _images(), tmp_path)


def test_unet_loads_as_a_splittable_teacher_that_does_not_seed_the_student(tmp_path):
    path = str(tmp_path / "unet.keras")
    UNet("depth", width_multiplier=1 / 16).save(path)
    teacher = load_teacher(path)
    assert teacher_tier(teacher) == SPLITTABLE and not seeds_student(teacher)
    assert seeds_student(SegNet("depth", width_multiplier=1 / 16))
    assert teacher_tier(object()) == OUTPUT_ONLY


def _street_run(tmp_path, teachers, *bindings):
    gin.clear_config()
    config.parse_gin_config(
        ["gin/synth_street.gin"],
        [
            "BATCH_SIZE = 2",
            "IMAGE_SIZE = (32, 64)",
            "synth_benchmark.splits = {'transfer': 4, 'val': 2, 'test': 2}",
            "TRAIN_STEPS = 1",
            "BLOCKWISE_STEPS = 1",
            "transfer/make_dataset.split = 'transfer'",
            "amalgamate.steps_per_epoch = 1",
            "amalgamate.val_batches = 1",
            "amalgamate.eval_max_batches = 1",
            "amalgamate.num_panels = 1",
            f"TEACHERS = {teachers!r}",
            *bindings,
        ],
        search_paths=[REPO_ROOT],
    )
    try:
        return amalgamate(str(tmp_path / "run"), tf.distribute.get_strategy())
    finally:
        gin.clear_config()


def test_a_unet_cannot_seed_the_student(tmp_path, monkeypatch):
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path / "synth_cache"))
    teachers = {"semseg": str(tmp_path / "semseg.keras"), "depth": str(tmp_path / "depth.keras")}
    SegNet("semseg", num_classes=19, width_multiplier=1 / 16).save(teachers["semseg"])
    UNet("depth", width_multiplier=1 / 16).save(teachers["depth"])
    with pytest.raises(
        ConfigError, match=r"init_from='depth'. Expected one of \['scratch', 'semseg'\]"
    ):
        _street_run(tmp_path, teachers, "amalgamate.init_from = 'depth'")


@pytest.mark.slow  # ~2 min on 2 cores: a teacher step, five block-wise stages, fine-tuning
def test_block_wise_amalgamation_through_a_unet_decoder(tmp_path, monkeypatch):
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path / "synth_cache"))
    teachers = {"semseg": str(tmp_path / "semseg.keras")}
    SegNet("semseg", num_classes=19, width_multiplier=1 / 16).save(teachers["semseg"])
    # A U-Net depth teacher trained by tools/train_teacher.py's job, of other widths
    # than the student: the block-wise gates reach it through 1x1 adaptors.
    gin.clear_config()
    config.parse_gin_config(
        ["gin/teachers/synth_street_depth.gin"],
        [
            "BATCH_SIZE = 2",
            "IMAGE_SIZE = (32, 64)",
            "synth_benchmark.splits = {'teacher': 4, 'transfer': 4, 'val': 2, 'test': 2}",
            "TRAIN_STEPS = 1",
            "train_teacher.steps_per_epoch = 1",
            "train_teacher.val_batches = 1",
            "train_teacher.eval_max_batches = 1",
            "build_teacher.family = 'unet'",
            "build_teacher.channels = (8, 16, 24, 32, 40)",
        ],
        search_paths=[REPO_ROOT],
    )
    try:
        train_teacher(str(tmp_path / "unet_teacher"), tf.distribute.get_strategy())
    finally:
        gin.clear_config()
    teachers["depth"] = str(tmp_path / "unet_teacher" / "teacher.keras")
    assert isinstance(keras.saving.load_model(teachers["depth"]), UNet)
    report = _street_run(tmp_path, teachers)
    assert report["teacher_tiers"] == {"semseg": "splittable", "depth": "splittable"}
    # The projection through the U-Net decoder was measured at every candidate.
    assert len(report["block_losses"]["depth"]) == 5
    assert all(np.isfinite(v) and v > 0 for v in report["block_losses"]["depth"])
    assert report["student"]["branches"] == {"semseg": "copied", "depth": "student's own"}
    student = keras.saving.load_model(str(tmp_path / "run" / "student.keras"))
    outputs = student(np.zeros((1, 32, 64, 3), "float32"))
    assert outputs["depth"].shape == (1, 32, 64) and outputs["semseg"].shape == (1, 32, 64, 19)
    assert set(report["metrics"]["test"]) == {"student", "teacher/semseg", "teacher/depth"}


def test_build_teacher_makes_a_unet_on_request():
    from ka_tf.training.teacher import build_teacher

    teacher = build_teacher("depth", width_multiplier=1 / 16, family="unet")
    assert isinstance(teacher, UNet) and teacher.widths == (4, 8, 16, 32, 32)
    assert isinstance(build_teacher("depth", width_multiplier=1 / 16), SegNet)
    with pytest.raises(ConfigError, match=r"family='resnet'. Expected one of \('segnet', 'unet'\)"):
        build_teacher("depth", family="resnet")
