"""LiteStudent: an EfficientNet-Lite0 encoder and a light decoder per task."""

import keras
import numpy as np
import pytest

from ka_tf.errors import ConfigError
from ka_tf.models import LiteStudent
from ka_tf.models.lite_student import TAP_STRIDES
from ka_tf.tasks import get_task, task_names, unregister_task
from tests.helpers import run_save_load

IMAGES = np.random.default_rng(0).uniform(0, 255, size=(2, 64, 96, 3)).astype("float32")


@pytest.fixture(scope="module")
def student():
    return LiteStudent(("semseg", "depth"), num_classes=5, decoder_channels=16)


def test_outputs_follow_every_tasks_head_contract(student):
    outputs = student(IMAGES)
    assert outputs["semseg"].shape == (2, 64, 96, 5)
    assert outputs["depth"].shape == (2, 64, 96)
    assert float(np.min(outputs["depth"])) > 0.0  # exp head: metres


def test_taps_sit_at_the_strides_of_a_segnet_teachers_candidates(student):
    inter = student.forward_taps(IMAGES)
    for task in ("semseg", "depth"):
        shapes = [tuple(t.shape) for t in inter["taps"][task]]
        assert shapes == [
            (2, 64 // s, 96 // s, c)
            for s, c in zip(TAP_STRIDES, student.tap_channels(task), strict=True)
        ]
        # forward_taps runs the same layers as the model's call.
        np.testing.assert_allclose(
            inter["outputs"][task], student(IMAGES)[task], rtol=1e-5, atol=1e-5
        )
    assert student.tap_channels("depth") == (16, 16, 16, 16, 8)


def test_each_task_has_its_own_decoder_and_they_share_the_encoder(student):
    semseg_layers = {w.path for w in student.trainable_weights if w.path.startswith("semseg_")}
    depth_layers = {w.path for w in student.trainable_weights if w.path.startswith("depth_")}
    assert semseg_layers and depth_layers
    assert not {p.split("/", 1)[1] for p in semseg_layers} - {
        p.replace("depth_", "semseg_", 1).split("/", 1)[1] for p in depth_layers
    }
    assert student.encoder.count_params() > 0.9 * student.count_params()


def test_save_load_round_trip(student, tmp_path):
    run_save_load(student, IMAGES, str(tmp_path))


def test_a_user_named_binary_task_is_declared_again_when_the_model_loads(tmp_path):
    from ka_tf.tasks import declare_task

    declare_task("lite_test_mask", "binary")
    model = LiteStudent(("lite_test_mask",), decoder_channels=8)
    expected = np.asarray(model(IMAGES[:1])["lite_test_mask"])
    assert expected.shape == (1, 64, 96) and 0.0 <= expected.min() <= expected.max() <= 1.0
    path = str(tmp_path / "mask.keras")
    model.save(path)
    unregister_task("lite_test_mask")
    assert "lite_test_mask" not in task_names()
    loaded = keras.saving.load_model(path)
    assert get_task("lite_test_mask").kind == "binary"
    np.testing.assert_allclose(loaded(IMAGES[:1])["lite_test_mask"], expected, atol=1e-6)
    unregister_task("lite_test_mask")


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="at least one task"):
        LiteStudent(())
    with pytest.raises(ConfigError, match="decoder_channels must be >= 8"):
        LiteStudent(("depth",), decoder_channels=4)
