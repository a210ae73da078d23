"""Teacher targets computed once per image: the same step, moved with the augmentation,
never stale, and labels never mistaken for them."""

import os

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.amalgamation import target_cache
from ka_tf.amalgamation.amalgamator import Amalgamator, build_coders
from ka_tf.amalgamation.student_builder import assemble_student, build_blockwise_student
from ka_tf.constants import TEACHER_TARGET
from ka_tf.data.pipeline import augment_element, make_dataset
from ka_tf.errors import ConfigError
from ka_tf.losses import build_loss
from ka_tf.models import SegNet

RNG = np.random.default_rng(3)
IMAGES = RNG.integers(0, 256, size=(6, 32, 64, 3)).astype("uint8")
FINGERPRINTS = {"semseg": "a" * 64, "depth": "b" * 64}
FORMS = {"semseg": "classes", "depth": "map"}


@pytest.fixture(scope="module")
def finetuner():
    keras.utils.set_random_seed(1)
    teachers = {
        "semseg": SegNet("semseg", num_classes=4, width_multiplier=1 / 16),
        "depth": SegNet("depth", width_multiplier=1 / 16),
    }
    student = build_blockwise_student(teachers, init_from="scratch")
    coders = build_coders(student.candidate_channels(), list(teachers))
    student = assemble_student(student, coders, teachers, {"semseg": 1, "depth": 1})
    losses = {"semseg": build_loss("semseg", "hard_ce"), "depth": build_loss("depth", "log_l1")}
    amalgamator = Amalgamator(student, teachers, losses, mode="finetune")
    amalgamator.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    amalgamator.prepare(IMAGES[:2])
    return amalgamator


def live_outputs(finetuner, images, tasks=None):
    targets = finetuner.teacher_targets(tf.cast(images, tf.float32), tasks)
    return {task: target["output"] for task, target in targets.items()}


def prepare(finetuner, root, fingerprints=FINGERPRINTS, images=IMAGES, forms=FORMS):
    return target_cache.prepare_target_cache(
        [images[:4], images[4:]],
        lambda batch, tasks: live_outputs(finetuner, batch, tasks),
        fingerprints,
        forms,
        flip_average=True,
        root=str(root),
    )


def attached(cache, images=IMAGES):
    dataset = tf.data.Dataset.from_tensor_slices({"image": images}).map(cache.attach)
    return next(iter(dataset.batch(len(images))))


def test_cached_targets_give_the_live_step_losses(finetuner, tmp_path):
    cache = prepare(finetuner, tmp_path)
    assert cache.built and cache.size == len(IMAGES)
    data = attached(cache)
    live = live_outputs(finetuner, IMAGES)
    np.testing.assert_array_equal(
        data[f"{TEACHER_TARGET}semseg"].numpy(), np.argmax(live["semseg"].numpy(), axis=-1)
    )
    np.testing.assert_allclose(
        data[f"{TEACHER_TARGET}depth"].numpy().astype("float32"),
        live["depth"].numpy(),
        rtol=1e-3,
    )
    images = tf.cast(IMAGES, tf.float32)
    cached = finetuner.loss_terms(images, finetuner.cached_targets(data), training=False)
    direct = finetuner.loss_terms(images, finetuner.teacher_targets(images), training=False)
    for name in ("semseg_output", "depth_output"):
        # float16 depth: log-L1 within float16 rounding (~5e-4 relative per pixel).
        np.testing.assert_allclose(cached[name].numpy(), direct[name].numpy(), atol=1e-3)


def test_a_later_run_reads_the_cache_and_a_changed_teacher_rebuilds_only_its_own(
    finetuner, tmp_path
):
    first = prepare(finetuner, tmp_path)
    assert first.computed == ["semseg", "depth"]
    assert first.folders["semseg"] != first.folders["depth"]
    again = prepare(finetuner, tmp_path)
    assert not again.built and again.folders == first.folders
    changed = prepare(finetuner, tmp_path, {**FINGERPRINTS, "depth": "c" * 64})
    assert changed.computed == ["depth"]  # the semseg teacher's targets are shared
    assert changed.folders["semseg"] == first.folders["semseg"]
    assert changed.folders["depth"] != first.folders["depth"]
    other_images = prepare(finetuner, tmp_path, images=IMAGES[::-1].copy())
    assert other_images.computed == ["semseg", "depth"]
    assert set(other_images.folders.values()).isdisjoint(
        [*first.folders.values(), *changed.folders.values()]
    )


def test_a_single_teacher_run_shares_the_folder_of_its_teacher(finetuner, tmp_path):
    """The study's control (one teacher) reads the targets the student's run cached."""
    first = prepare(finetuner, tmp_path)
    alone = target_cache.prepare_target_cache(
        [IMAGES[:4], IMAGES[4:]],
        lambda batch, tasks: pytest.fail("the depth targets were cached: nothing to compute"),
        {"depth": FINGERPRINTS["depth"]},
        {"depth": "map"},
        flip_average=True,
        root=str(tmp_path),
    )
    assert alone.folders == {"depth": first.folders["depth"]} and not alone.built


def test_a_damaged_cache_is_rebuilt_never_read(finetuner, tmp_path):
    first = prepare(finetuner, tmp_path)
    path = os.path.join(first.folders["semseg"], "semseg.npy")
    with open(path, "r+b") as handle:  # one class id changed in place, size unchanged
        handle.seek(-1, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([(byte[0] + 1) % 4]))
    rebuilt = prepare(finetuner, tmp_path)
    assert rebuilt.computed == ["semseg"] and rebuilt.folders == first.folders
    live = np.argmax(live_outputs(finetuner, IMAGES)["semseg"].numpy(), axis=-1)
    np.testing.assert_array_equal(attached(rebuilt)[f"{TEACHER_TARGET}semseg"].numpy(), live)


def test_an_image_not_in_the_cache_is_an_error(finetuner, tmp_path):
    cache = prepare(finetuner, tmp_path)
    stranger = RNG.integers(0, 256, size=(1, 32, 64, 3)).astype("uint8")
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in the teacher-target cache"):
        attached(cache, stranger)


def test_targets_move_with_flip_and_window():
    """A target equal to the image's red channel stays equal through flip and window."""
    image = RNG.integers(0, 4, size=(32, 64, 3)).astype("uint8")
    element = {
        "image": tf.constant(image),
        f"{TEACHER_TARGET}semseg": tf.constant(image[..., 0]),
        f"{TEACHER_TARGET}depth": tf.constant(image[..., 1].astype("float16") + 1),
    }
    for seed in range(6):
        out = augment_element(
            element,
            tf.constant([seed, 7]),
            scale_range=(1.0, 1.0),
            jitter=False,
            crop_size=(32, 32),
        )
        red = out["image"].numpy()[..., 0]
        green = out["image"].numpy()[..., 1]
        np.testing.assert_array_equal(out[f"{TEACHER_TARGET}semseg"].numpy(), red)
        np.testing.assert_array_equal(out[f"{TEACHER_TARGET}depth"].numpy(), green + 1)


def test_zooming_cached_targets_is_refused():
    """A teacher's output on a zoomed image is not its output zoomed: measured, the
    street student trained on zoomed cached targets lost 0.13 depth abs rel."""
    element = {
        "image": tf.zeros((32, 64, 3), tf.uint8),
        f"{TEACHER_TARGET}semseg": tf.ones((32, 64), tf.uint8),
    }
    with pytest.raises(ConfigError, match=r"scale_range = \(1\.0, 1\.0\)"):
        augment_element(element, tf.constant([1, 2]), scale_range=(1.0, 1.5))


def test_hard_ce_on_cached_classes_skips_padded_pixels():
    classes = np.ones((1, 32, 64), np.uint8)
    classes[:, :, 40:] = 255  # padded by a window or zoom-out: ignored, not class 0
    logits = tf.one_hot(tf.ones((1, 32, 64), tf.int32), 4) * 10.0  # confident in class 1
    loss = build_loss("semseg", "hard_ce")(classes, logits)
    assert float(loss) < 1e-3


def test_labels_are_never_read_as_teacher_targets(finetuner):
    labels = {"image": IMAGES, "semseg": np.zeros(IMAGES.shape[:3], np.uint8)}
    assert finetuner.cached_targets(labels) is None
    partial = {"image": IMAGES, f"{TEACHER_TARGET}semseg": labels["semseg"]}
    with pytest.raises(ConfigError, match="not \\['teacher_target/depth'\\]"):
        finetuner.cached_targets(partial)


def test_storage_forms():
    assert target_cache.storage_form("semseg", build_loss("semseg", "hard_ce")) == "classes"
    assert target_cache.storage_form("semseg", build_loss("semseg", "kl")) == "map"
    assert target_cache.storage_form("depth", build_loss("depth", "log_l1")) == "map"


def test_soft_class_targets_cache_the_logits_and_give_the_live_kl_loss(finetuner, tmp_path):
    """``kl`` reads the teacher's whole distribution: the cache keeps its logits, in a
    folder of their own (the classes of ``hard_ce`` are another form)."""
    losses = {"semseg": build_loss("semseg", "kl"), "depth": build_loss("depth", "log_l1")}
    soft = Amalgamator(finetuner.student, finetuner.teachers, losses, mode="finetune")
    forms = {task: target_cache.storage_form(task, loss) for task, loss in losses.items()}
    cache = prepare(finetuner, tmp_path, forms=forms)
    hard = prepare(finetuner, tmp_path)
    assert cache.folders["semseg"] != hard.folders["semseg"]
    assert cache.folders["depth"] == hard.folders["depth"]
    data = attached(cache)
    assert data[f"{TEACHER_TARGET}semseg"].shape == (*IMAGES.shape[:3], 4)
    live = live_outputs(finetuner, IMAGES)["semseg"].numpy()
    np.testing.assert_allclose(
        data[f"{TEACHER_TARGET}semseg"].numpy().astype("float32"), live, rtol=1e-3, atol=1e-3
    )
    # The KL the step computes from them, against a student that disagrees.
    student_logits = tf.constant(RNG.normal(size=live.shape).astype("float32"))
    cached_target = soft.cached_targets(data)["semseg"]["output"]
    kl = losses["semseg"]
    direct = kl(tf.constant(live), student_logits).numpy()
    assert direct > 0.01
    np.testing.assert_allclose(kl(cached_target, student_logits).numpy(), direct, rtol=1e-3)


def test_make_dataset_attaches_before_augmentation(finetuner, tmp_path, monkeypatch):
    """The pipeline's elements carry targets aligned with their augmented images."""
    cache = prepare(finetuner, tmp_path)
    monkeypatch.setattr(
        "ka_tf.data.load",
        lambda name, data_dir, split, **kw: tf.data.Dataset.from_tensor_slices({"image": IMAGES}),
    )
    monkeypatch.setattr("ka_tf.data.registry.with_sharding", lambda dataset, name: dataset)
    monkeypatch.setattr("ka_tf.data.registry.accepts_option", lambda name, option: False)
    with pytest.raises(ConfigError, match="carries cached teacher targets"):
        make_dataset("fake", "/nowhere", "transfer", 2, training=True, teacher_targets=cache)
    gin.bind_parameter("augment_element.scale_range", (1.0, 1.0))  # flips, jitter, windows
    dataset = make_dataset(
        "fake", "/nowhere", "transfer", 2, training=True, teacher_targets=cache, seed=4
    )
    plain = make_dataset("fake", "/nowhere", "transfer", 2, training=True, seed=4)
    for with_targets, without in zip(dataset.take(3), plain.take(3), strict=True):
        # The same images, flips and windows as without the cache.
        np.testing.assert_array_equal(with_targets["image"].numpy(), without["image"].numpy())
        assert with_targets[f"{TEACHER_TARGET}semseg"].shape == (2, 32, 64)
        assert with_targets[f"{TEACHER_TARGET}depth"].dtype == tf.float16


def test_blockwise_mode_refuses_cached_targets(finetuner):
    data = {
        "image": IMAGES,
        f"{TEACHER_TARGET}semseg": np.zeros(IMAGES.shape[:3], np.uint8),
        f"{TEACHER_TARGET}depth": np.ones(IMAGES.shape[:3], np.float16),
    }
    finetuner.mode = "blockwise"
    try:
        with pytest.raises(ConfigError, match="hold outputs only"):
            finetuner.cached_targets(data)
    finally:
        finetuner.mode = "finetune"


def test_class_frequencies_count_the_cached_teacher_classes(finetuner, tmp_path):
    """What a class-balanced loss is weighted by: the teacher's argmax over the split."""
    cache = prepare(finetuner, tmp_path)
    live = live_outputs(finetuner, IMAGES)["semseg"]
    expected = np.bincount(np.argmax(np.asarray(live), axis=-1).ravel(), minlength=4)
    np.testing.assert_array_equal(cache.class_frequencies("semseg", 4), expected)
    assert cache.class_frequencies("semseg", 4).sum() == IMAGES.shape[0] * 32 * 64
    with pytest.raises(ConfigError, match="holds depth as 'map', not as classes"):
        cache.class_frequencies("depth", 4)
