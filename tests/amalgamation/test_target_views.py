"""Teacher targets averaged over views (mirror and scales): each view mapped back to
the image's frame, the right views averaged, the cache keyed by them, bad scales refused."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.amalgamation import target_cache
from ka_tf.amalgamation.amalgamator import Amalgamator, build_coders
from ka_tf.amalgamation.student_builder import assemble_student, build_blockwise_student
from ka_tf.amalgamation.target_views import MultiViewModel, check_target_scales, view_size
from ka_tf.errors import ConfigError
from ka_tf.losses import build_loss
from ka_tf.models import SegNet
from ka_tf.tasks import get_task

RNG = np.random.default_rng(5)
IMAGES = tf.constant(RNG.uniform(0, 255, size=(2, 64, 96, 3)), tf.float32)
SCALES = (1.0, 1.5)


def toy_teacher(task: str, channels: int, seed: int) -> keras.Model:
    """A fully convolutional stand-in whose outputs vary over the image (a fresh
    SegNet's are nearly constant), in the head's output form of ``task``."""
    images = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(
        8,
        5,
        padding="same",
        activation="tanh",
        kernel_initializer=keras.initializers.RandomNormal(0, 0.5, seed),
    )(images / 255.0)
    raw = keras.layers.Conv2D(
        channels,
        3,
        padding="same",
        kernel_initializer=keras.initializers.RandomNormal(0, 0.5, seed + 1),
    )(hidden)
    if task == "depth":
        raw = keras.layers.Lambda(lambda x: keras.ops.exp(x[..., 0]))(raw)
    if task == "normals":
        raw = keras.layers.Lambda(lambda x: x / keras.ops.norm(x, axis=-1, keepdims=True))(raw)
    return keras.Model(images, {task: raw})


@pytest.fixture(scope="module")
def teachers():
    return {
        "semseg": toy_teacher("semseg", 4, 1),
        "depth": toy_teacher("depth", 1, 3),
        "normals": toy_teacher("normals", 3, 5),
    }


def finetuner(teachers, **kw):
    keras.utils.set_random_seed(2)
    segnets = {
        "semseg": SegNet("semseg", num_classes=4, width_multiplier=1 / 16),
        "depth": SegNet("depth", width_multiplier=1 / 16),
        "normals": SegNet("normals", width_multiplier=1 / 16),
    }
    student = build_blockwise_student(segnets, init_from="scratch")
    coders = build_coders(student.candidate_channels(), list(segnets))
    student = assemble_student(student, coders, segnets, {task: 1 for task in segnets})
    losses = {
        "semseg": build_loss("semseg", "hard_ce"),
        "depth": build_loss("depth", "log_l1"),
        "normals": build_loss("normals", "cosine"),
    }
    return Amalgamator(student, teachers, losses, mode="finetune", **kw)


def by_hand(teacher, task, scales, flip):
    """The target computed view by view, independently of the Amalgamator."""
    height, width = IMAGES.shape[1:3]
    views = []
    for scale in scales:
        size = tuple(int(side * scale / 32 + 0.5) * 32 for side in (height, width))
        image = tf.image.resize(IMAGES, size, "bilinear") if scale != 1.0 else IMAGES
        for mirrored in (False, True) if flip else (False,):
            seen = tf.reverse(image, [2]) if mirrored else image
            output = teacher(seen, training=False)[task]
            if mirrored:
                output = get_task(task).mirror(output, width_axis=2)
            if scale != 1.0:
                expand = len(output.shape) == 3
                output = output[..., None] if expand else output
                output = tf.image.resize(output, (height, width), "bilinear")
                output = output[..., 0] if expand else output
            views.append(output)
    if task == "normals":
        mean = tf.add_n(views) / len(views)
        return mean / tf.norm(mean, axis=-1, keepdims=True)
    return tf.add_n(views) / len(views)


@pytest.mark.parametrize("flip", [False, True])
def test_targets_average_every_view_mapped_back(teachers, flip):
    amalgamator = finetuner(teachers, flip_average_targets=flip, target_scales=SCALES)
    targets = amalgamator.teacher_targets(IMAGES)
    for task, teacher in teachers.items():
        expected = by_hand(teacher, task, SCALES, flip)
        assert targets[task]["output"].shape == expected.shape
        # Relative to the output's size (a fresh semseg head's logits are ~1e-6).
        size = float(tf.reduce_max(tf.abs(expected)))
        np.testing.assert_allclose(targets[task]["output"] / size, expected / size, atol=1e-4)
        # The scaled views change the target: the scales are used, not dropped.
        single = by_hand(teacher, task, (1.0,), flip)
        assert float(tf.reduce_max(tf.abs(expected - single))) > 1e-2 * size


def test_single_scale_is_the_plain_flip_average(teachers):
    targets = finetuner(teachers).teacher_targets(IMAGES)
    for task, teacher in teachers.items():
        expected = by_hand(teacher, task, (1.0,), True)
        size = float(tf.reduce_max(tf.abs(expected)))
        np.testing.assert_allclose(targets[task]["output"] / size, expected / size, atol=1e-5)


def test_normals_stay_unit_length(teachers):
    targets = finetuner(teachers, target_scales=(1.0, 0.5, 1.5)).teacher_targets(IMAGES)
    norms = tf.norm(targets["normals"]["output"], axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)


def test_view_size_rounds_to_the_stride():
    assert view_size(128, 256, 1.25) == (160, 320)
    assert view_size(128, 256, 1.5) == (192, 384)
    assert view_size(64, 96, 1.5) == (96, 160)  # 144: halfway, rounded up
    assert view_size(64, 96, 1.4) == (96, 128)  # 134.4 → 128
    assert view_size(32, 32, 0.25) == (32, 32)  # never below one stride


@pytest.mark.parametrize("scales", [(), (1.5, 1.0), (1.0, 0.0), (1.0, 1.5, 1.5), (1.0, -2.0)])
def test_bad_scales_are_one_line_errors(scales):
    with pytest.raises(ConfigError) as error:
        check_target_scales(scales)
    message = str(error.value)
    assert "\n" not in message and "target_scales" in message and "(1.0, 1.25, 1.5)" in message


def test_the_cache_key_records_the_scales(tmp_path):
    images = [np.zeros((2, 32, 32, 3), np.uint8)]

    def folder(**kw):
        cache = target_cache.prepare_target_cache(
            images,
            lambda batch, tasks: {"depth": tf.ones(tf.shape(batch)[:3])},
            {"depth": "d" * 64},
            {"depth": "map"},
            flip_average=True,
            root=str(tmp_path),
            **kw,
        )
        return cache.folders["depth"]

    single = folder()
    assert folder(target_scales=(1.0,)) == single
    assert folder(target_scales=(1.0, 1.5)) != single
    assert folder(target_scales=(1.0, 1.5)) != folder(target_scales=(1.0, 1.25))


def test_the_multi_view_model_scores_what_the_targets_are(teachers):
    """MultiViewModel (the study's "teacher, multi-view" row) computes the targets the
    Amalgamator trains on."""
    targets = finetuner(teachers, target_scales=SCALES).teacher_targets(IMAGES)
    for task, teacher in teachers.items():
        wrapped = MultiViewModel(teacher, SCALES)
        assert wrapped.name == f"{teacher.name}_views"
        output = wrapped(IMAGES)[task]
        size = float(tf.reduce_max(tf.abs(output)))
        np.testing.assert_allclose(output / size, targets[task]["output"] / size, atol=1e-5)
