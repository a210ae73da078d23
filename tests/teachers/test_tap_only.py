"""Tap-only teachers: a foreign model with one readable inner feature per branch
candidate teaches through the block-wise phase — the student's feature at each
candidate is matched to the tap through its gate's learned 1x1 adaptor — while its
decoder is never run from a tap."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import ka_tf.registry_all  # noqa: F401
from ka_tf import config
from ka_tf.amalgamation.amalgamator import Amalgamator, build_coders
from ka_tf.amalgamation.run import amalgamate, distillation_losses
from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.models import SegNet, TargetNet
from ka_tf.teachers import TAP_ONLY, load_teacher, teacher_spec, teacher_tier
from tests.helpers import REPO_ROOT

TAPS = {"down5": "t32", "up5": "t16", "up4": "t8", "up3": "t4", "up2": "t2"}
TAP_CHANNELS = {"t2": 6, "t4": 7, "t8": 8, "t16": 9, "t32": 10}


def _tap_model(classes: int = 19) -> keras.Model:
    """Strided convolutions to 1/32 and a head from the 1/2 feature: taps as outputs."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((32, 64, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    outputs = {}
    for name in ("t2", "t4", "t8", "t16", "t32"):
        x = keras.layers.Conv2D(TAP_CHANNELS[name], 3, 2, "same", activation="relu", name=name)(x)
        outputs[name] = x
    up = keras.layers.UpSampling2D(2, interpolation="bilinear")(outputs["t2"])
    outputs["logits"] = keras.layers.Conv2D(classes, 1, name="logits")(up)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def tap_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tap") / "tap_teacher.keras")
    _tap_model().save(path)
    return path


def _spec(path, **kwargs):
    return teacher_spec(
        path,
        {"semseg": {"form": "logits", "output": "logits"}},
        input_size=(32, 64),
        taps=kwargs.pop("taps", TAPS),
        **kwargs,
    )


def test_taps_load_in_candidate_order(tap_file):
    teacher = load_teacher(_spec(tap_file))
    assert teacher_tier(teacher) == TAP_ONLY
    assert teacher.candidate_channels() == (10, 9, 8, 7, 6)
    result = teacher.forward_taps(np.zeros((2, 32, 64, 3), np.float32))
    assert [tuple(t.shape) for t in result["taps"]] == [
        (2, 1, 2, 10),
        (2, 2, 4, 9),
        (2, 4, 8, 8),
        (2, 8, 16, 7),
        (2, 16, 32, 6),
    ]
    assert result["outputs"]["semseg"].shape == (2, 32, 64, 19)


def test_tap_declarations_are_checked(tap_file):
    with pytest.raises(ConfigError, match=r"names no tap for \['up3', 'up2'\]"):
        _spec(tap_file, taps={"down5": "t32", "up5": "t16", "up4": "t8"})
    with pytest.raises(ConfigError, match=r"taps key 'up1' is no branch candidate"):
        _spec(tap_file, taps={**TAPS, "up1": "t2"})
    with pytest.raises(ConfigError, match=r"has no output 'x4' \(for tap 3\)"):
        load_teacher(_spec(tap_file, taps={**TAPS, "up3": "x4"}))


def test_blockwise_tap_term_trains_the_adaptor_toward_the_tap(tap_file):
    teacher = load_teacher(_spec(tap_file))
    student = TargetNet(
        ("semseg",), num_classes=19, branch_points={"semseg": 4}, width_multiplier=1 / 16
    )
    coders = build_coders(
        student.candidate_channels(), ("semseg",), teacher_channels={"semseg": (10, 9, 8, 7, 6)}
    )
    amalgamator = Amalgamator(
        student,
        {"semseg": teacher},
        distillation_losses(("semseg",)),
        mode="blockwise",
        block=2,
        coders=coders,
    )
    assert amalgamator.term_names == ["semseg_tap"]
    amalgamator.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 64, 3)).astype(np.float32)
    amalgamator.prepare(images)

    def tap_loss():
        targets = amalgamator.teacher_targets(images)
        return float(amalgamator.loss_terms(images, targets, training=True)["semseg_tap"])

    first = tap_loss()
    for _ in range(20):
        amalgamator.train_step({"image": images})
    assert tap_loss() < 0.5 * first


def _run(tmp_path, *bindings):
    depth = str(tmp_path / "depth.keras")
    SegNet("depth", width_multiplier=1 / 16).save(depth)
    gin.clear_config()
    config.parse_gin_config(
        ["gin/synth_street.gin"],
        [
            "BATCH_SIZE = 2",
            "IMAGE_SIZE = (32, 64)",
            "synth_benchmark.splits = {'transfer': 4, 'val': 2, 'test': 2}",
            "transfer/make_dataset.split = 'transfer'",
            "TRAIN_STEPS = 1",
            "BLOCKWISE_STEPS = 1",
            "amalgamate.steps_per_epoch = 1",
            "amalgamate.val_batches = 1",
            "amalgamate.eval_max_batches = 1",
            "amalgamate.num_panels = 1",
            "amalgamate.init_from = 'depth'",
            f"semseg/teacher_spec.path = {str(tmp_path / 'tap_teacher.keras')!r}",
            "semseg/teacher_spec.outputs = {'semseg': {'form': 'logits', 'output': 'logits'}}",
            "semseg/teacher_spec.input_size = (32, 64)",
            f"semseg/teacher_spec.taps = {TAPS!r}",
            f"TEACHERS = {{'semseg': @semseg/teacher_spec(), 'depth': {depth!r}}}",
            *bindings,
        ],
        search_paths=[REPO_ROOT],
    )
    try:
        return amalgamate(str(tmp_path / "run"), tf.distribute.get_strategy())
    finally:
        gin.clear_config()


@pytest.mark.slow  # ~2 min on 2 cores: five block-wise stages, the table, fine-tuning
def test_amalgamation_with_a_tap_only_teacher_chooses_its_branch(tmp_path, monkeypatch):
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path / "synth_cache"))
    _tap_model().save(str(tmp_path / "tap_teacher.keras"))
    report = _run(tmp_path)
    assert report["teacher_tiers"] == {"semseg": "tap_only", "depth": "splittable"}
    assert all(np.isfinite(v) and v >= 0 for v in report["block_losses"]["semseg"])
    assert len(report["block_losses"]["semseg"]) == 5
    assert report["student"]["branches"]["semseg"] == "student's own"
    student = keras.saving.load_model(str(tmp_path / "run" / "student.keras"))
    assert student(np.zeros((1, 32, 64, 3), "float32"))["semseg"].shape == (1, 32, 64, 19)


def test_a_tap_that_is_not_a_feature_map_is_refused(tmp_path):
    inputs = keras.Input((32, 64, 3))
    flat = keras.layers.GlobalAveragePooling2D(name="pooled")(inputs)
    model = keras.Model(inputs, {"logits": keras.layers.Conv2D(19, 1)(inputs), "pooled": flat})
    model.save(str(tmp_path / "m.keras"))
    taps = {candidate: "pooled" for candidate in TAPS}
    with pytest.raises(ModelFileError, match=r"tap 'pooled' .* has shape \(None, 3\)"):
        load_teacher(_spec(str(tmp_path / "m.keras"), taps=taps))
