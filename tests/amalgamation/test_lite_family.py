"""The ``efficientnet_lite`` student family: fine-tuning on teachers' outputs, the tap
term through 1×1 adaptors to splittable teachers, and the settings it refuses."""

import numpy as np
import pytest
import tensorflow as tf

from ka_tf.amalgamation.amalgamator import Amalgamator, build_tap_adaptors
from ka_tf.amalgamation.lite_student_builder import (
    check_lite_settings,
    encoder_weights_path,
    lite_student,
    tap_teacher_channels,
)
from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.losses import build_loss
from ka_tf.models import SegNet
from tests.helpers import he_init_convs

IMAGES = np.random.default_rng(3).uniform(0, 255, size=(2, 64, 64, 3)).astype("float32")


@pytest.fixture(scope="module")
def teachers():
    return {
        "semseg": he_init_convs(SegNet("semseg", num_classes=4, width_multiplier=1 / 16), 0),
        "depth": he_init_convs(SegNet("depth", width_multiplier=1 / 16), 1),
    }


def _losses():
    return {"semseg": build_loss("semseg", "kl"), "depth": build_loss("depth", "log_l1")}


def _amalgamator(student, teachers, adaptors, tap_weight=1.0, learning_rate=1e-3):
    import keras

    amalgamator = Amalgamator(
        student,
        teachers,
        _losses(),
        flip_average_targets=False,
        tap_adaptors=adaptors,
        tap_weight=tap_weight,
    )
    amalgamator.compile(optimizer=keras.optimizers.Adam(learning_rate))
    amalgamator.prepare(IMAGES)
    return amalgamator


def test_the_student_takes_its_teachers_classes_and_no_imagenet_file_is_needed(teachers):
    student = lite_student(teachers, decoder_channels=16, encoder_weights=None)
    assert student.tasks == ("semseg", "depth")
    assert student(IMAGES)["semseg"].shape == (2, 64, 64, 4)
    assert student.encoder_weights_source is None


def test_tap_adaptors_map_the_students_taps_to_each_teachers_widths(teachers):
    student = lite_student(teachers, decoder_channels=16, encoder_weights=None)
    channels = tap_teacher_channels(teachers)
    assert channels["semseg"] == teachers["semseg"].candidate_channels("semseg")
    adaptors = build_tap_adaptors({t: student.tap_channels(t) for t in teachers}, channels)
    for task in teachers:
        assert [a.kernel.shape for a in adaptors[task]] == [
            (1, 1, c_in, c_out)
            for c_in, c_out in zip(student.tap_channels(task), channels[task], strict=True)
        ]


def test_fine_tuning_trains_student_and_adaptors_and_both_terms_fall(teachers):
    tf.keras.utils.set_random_seed(0)
    student = lite_student(teachers, decoder_channels=16, encoder_weights=None)
    adaptors = build_tap_adaptors(
        {t: student.tap_channels(t) for t in teachers}, tap_teacher_channels(teachers)
    )
    amalgamator = _amalgamator(student, teachers, adaptors)
    assert set(amalgamator.term_names) == {
        "semseg_output",
        "semseg_tap",
        "depth_output",
        "depth_tap",
    }
    trained = {id(v) for v in amalgamator.variables_to_train()}
    assert all(id(v) in trained for a in adaptors["depth"] for v in a.trainable_variables)
    teacher_before = [w.numpy().copy() for w in teachers["depth"].weights]
    adaptor_before = adaptors["semseg"][2].kernel.numpy().copy()
    # Training-mode losses (BatchNorm on batch statistics), first epoch vs last.
    history = amalgamator.fit(IMAGES, batch_size=2, epochs=20, verbose=0).history
    for term in ("semseg_output", "semseg_tap", "depth_output", "depth_tap"):
        assert history[term][-1] < 0.8 * history[term][0], (term, history[term])
    assert not np.allclose(adaptors["semseg"][2].kernel.numpy(), adaptor_before)
    for w, w0 in zip(teachers["depth"].weights, teacher_before, strict=True):
        np.testing.assert_array_equal(w.numpy(), w0)  # teachers stay frozen


def test_the_tap_weight_scales_the_tap_term(teachers):
    student = lite_student(teachers, decoder_channels=16, encoder_weights=None)
    adaptors = build_tap_adaptors(
        {t: student.tap_channels(t) for t in teachers}, tap_teacher_channels(teachers)
    )
    one = _amalgamator(student, teachers, adaptors, tap_weight=1.0)
    half = _amalgamator(student, teachers, adaptors, tap_weight=0.5)
    targets = one.teacher_targets(IMAGES)
    full = one.loss_terms(IMAGES, targets, training=False)
    halved = half.loss_terms(IMAGES, targets, training=False)
    np.testing.assert_allclose(float(halved["depth_tap"]), 0.5 * float(full["depth_tap"]), 1e-5)
    np.testing.assert_allclose(float(halved["depth_output"]), float(full["depth_output"]), 1e-6)


def test_settings_of_the_target_net_family_are_refused():
    with pytest.raises(ConfigError, match="blockwise_steps = 0"):
        check_lite_settings(30, None)
    with pytest.raises(ConfigError, match="Unbind it"):
        check_lite_settings(0, {"semseg": 1})
    with pytest.raises(ConfigError, match="student_width_multiplier = None"):
        check_lite_settings(0, None, 0.25)
    check_lite_settings(0, None)


def test_a_missing_encoder_weights_file_is_named(tmp_path):
    missing = str(tmp_path / "nope.weights.h5")
    with pytest.raises(ModelFileError, match=r"nope\.weights\.h5.*tools/convert_encoder\.py"):
        encoder_weights_path(missing)
    assert encoder_weights_path(None) is None


def test_tap_adaptors_belong_to_fine_tuning(teachers):
    student = lite_student(teachers, decoder_channels=16, encoder_weights=None)
    with pytest.raises(ConfigError, match="mode='finetune'"):
        Amalgamator(
            student,
            teachers,
            _losses(),
            mode="blockwise",
            block=0,
            coders={t: [] for t in teachers},
            tap_adaptors={"depth": []},
        )
