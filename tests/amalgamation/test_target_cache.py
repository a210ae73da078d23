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


def live_outputs(finetuner, images):
    targets = finetuner.teacher_targets(tf.cast(images, tf.float32))
    return {task: target["output"] for task, target in targets.items()}


def prepare(finetuner, root, fingerprints=FINGERPRINTS, images=IMAGES):
    return target_cache.prepare_target_cache(
        [images[:4], images[4:]],
        lambda batch: live_outputs(finetuner, batch),
        fingerprints,
        FORMS,
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


def test_a_later_run_reads_the_cache_and_a_changed_teacher_rebuilds(finetuner, tmp_path):
    first = prepare(finetuner, tmp_path)
    again = prepare(finetuner, tmp_path)
    assert not again.built and again.folder == first.folder
    changed = prepare(finetuner, tmp_path, {**FINGERPRINTS, "depth": "c" * 64})
    assert changed.built and changed.folder != first.folder
    other_images = prepare(finetuner, tmp_path, images=IMAGES[::-1].copy())
    assert other_images.built and other_images.folder not in (first.folder, changed.folder)


def test_a_damaged_cache_is_rebuilt_never_read(finetuner, tmp_path):
    first = prepare(finetuner, tmp_path)
    path = os.path.join(first.folder, "semseg.npy")
    with open(path, "r+b") as handle:  # one class id changed in place, size unchanged
        handle.seek(-1, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([(byte[0] + 1) % 4]))
    rebuilt = prepare(finetuner, tmp_path)
    assert rebuilt.built and rebuilt.folder == first.folder
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


def test_soft_class_targets_are_refused():
    with pytest.raises(ConfigError, match=r"'hard_ce', or amalgamate\.cache_targets = False"):
        target_cache.storage_form("semseg", build_loss("semseg", "kl"))
    assert target_cache.storage_form("semseg", build_loss("semseg", "hard_ce")) == "classes"
    assert target_cache.storage_form("depth", build_loss("depth", "log_l1")) == "map"


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
