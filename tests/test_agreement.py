"""Scoring a student by its agreement with its teachers on images no one labelled."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.constants import IMAGE
from ka_tf.errors import DataError
from ka_tf.evaluation import evaluate_model, teacher_labelled
from ka_tf.tasks import declare_task, get_task, unregister_task

TASK = "agreement_mask"


@pytest.fixture(autouse=True)
def mask_task():
    declare_task(TASK, "binary")
    yield
    unregister_task(TASK)


def _mask_model(invert: bool = False) -> keras.Model:
    """Foreground where the red channel is brighter than 128 (or the opposite)."""
    images = keras.Input((None, None, 3))
    red = keras.layers.Lambda(lambda x: x[..., 0] - 128.0)(images)
    logit = keras.layers.Lambda(lambda r: -r / 8.0 if invert else r / 8.0)(red)
    return keras.Model(images, {TASK: keras.layers.Activation("sigmoid")(logit)})


def _photos(batches: int = 3) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(batches * 2, 16, 24, 3)).astype(np.uint8)
    return tf.data.Dataset.from_tensor_slices({IMAGE: images}).batch(2)


def test_binary_labels_are_the_teachers_mask_at_one_half():
    labels = get_task(TASK).label_from_prediction(np.array([0.2, 0.5, 0.9]))
    np.testing.assert_array_equal(labels, [0, 1, 1])
    assert labels.dtype == np.uint8
    ids = np.array([[3, 1]], np.int32)
    np.testing.assert_array_equal(get_task("semseg").label_from_prediction(ids), ids)


def test_the_teacher_agrees_with_itself_and_its_opposite_does_not():
    teacher = _mask_model()
    labelled = teacher_labelled(_photos(), {TASK: teacher})
    assert int(labelled.cardinality()) == 3
    first = next(iter(labelled))
    assert set(first) == {IMAGE, TASK} and first[TASK].dtype == tf.uint8
    same = evaluate_model(teacher, labelled, progress=False)
    assert same[f"{TASK}/iou"] == 1.0 and same[f"{TASK}/f_measure"] == pytest.approx(1.0)
    assert 0.0 < same[f"{TASK}/mae"] < 0.5  # soft probabilities vs the 0/1 mask
    opposite = evaluate_model(_mask_model(invert=True), labelled, progress=False)
    assert opposite[f"{TASK}/iou"] < 0.02  # only pixels at exactly p = 0.5 agree
    assert opposite[f"{TASK}/mae"] > 0.5


def test_max_batches_and_an_empty_split():
    assert int(teacher_labelled(_photos(), {TASK: _mask_model()}, max_batches=1).cardinality()) == 1
    empty = _photos().take(0)
    with pytest.raises(DataError, match="no batch"):
        teacher_labelled(empty, {TASK: _mask_model()})
