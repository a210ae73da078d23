"""Input pipeline: joint augmentation keeps labels, depth and normals aligned."""

from __future__ import annotations

import gin
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.data import pipeline
from ka_tf.data.synth_dataset import ensure_generated
from ka_tf.errors import ConfigError

H, W = 32, 64


def _element(seed: int = 0) -> dict[str, tf.Tensor]:
    """Blocks of constant class; image, depth and normals are functions of the class."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 5, size=(4, 8))
    labels = np.kron(blocks, np.ones((H // 4, W // 8), dtype=np.int64)).astype(np.uint8)
    image = np.stack([labels * 40, 255 - labels * 40, np.full_like(labels, 7)], -1)
    depth = (labels.astype(np.float32) + 1.0) * 2.0
    angle = labels.astype(np.float32)
    normals = np.stack([np.sin(angle) * 0.6, np.full_like(angle, -0.8), np.cos(angle) * 0.6], -1)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return {
        "image": tf.constant(image.astype(np.uint8)),
        "semseg": tf.constant(labels),
        "depth": tf.constant(depth),
        "normals": tf.constant(normals.astype(np.float32)),
    }


def _np(element):
    return {key: value.numpy() for key, value in element.items()}


def test_flip_twice_is_identity_and_negates_normal_x():
    element = _element()
    once = _np(pipeline.flip_left_right(element))
    twice = _np(pipeline.flip_left_right(pipeline.flip_left_right(element)))
    original = _np(element)
    for key in original:
        np.testing.assert_array_equal(twice[key], original[key])
    np.testing.assert_array_equal(once["semseg"], original["semseg"][:, ::-1])
    np.testing.assert_array_equal(once["normals"][..., 0], -original["normals"][:, ::-1, 0])
    np.testing.assert_array_equal(once["normals"][..., 1:], original["normals"][:, ::-1, 1:])


@pytest.mark.parametrize("scale_range", [(1.0, 1.0), (1.2, 1.6), (0.6, 0.8)])
def test_scale_crop_keeps_maps_consistent(scale_range):
    element = _element(1)
    for step in range(4):
        out = _np(pipeline.random_scale_crop(element, tf.constant([step, 9]), scale_range))
        assert out["image"].shape == (H, W, 3) and out["image"].dtype == np.uint8
        assert out["semseg"].dtype == np.uint8 and out["depth"].dtype == np.float32
        labels, depth, normals = out["semseg"], out["depth"], out["normals"]
        pad = labels == 255
        # Nearest-neighbour maps agree exactly everywhere: depth and normals stay the
        # values of the class the label says (never rescaled or blended).
        np.testing.assert_array_equal(depth[~pad], (labels[~pad].astype(np.float32) + 1) * 2)
        angle = labels[~pad].astype(np.float32)
        np.testing.assert_allclose(
            normals[~pad][:, 0] / normals[~pad][:, 2], np.tan(angle), rtol=1e-4, atol=1e-4
        )
        assert np.all(depth[pad] == 0) and np.all(normals[pad] == 0)
        assert np.all(out["image"][pad] == 0)
        # The bilinear image matches the labels away from block edges.
        agree = out["image"][..., 0][~pad] == labels[~pad].astype(np.int64) * 40
        assert agree.mean() > 0.7
        if scale_range == (1.0, 1.0):
            for key, value in _np(element).items():
                np.testing.assert_array_equal(out[key], value)
        if scale_range[0] < 1.0:
            assert pad.any()


def test_augment_jitters_only_the_image():
    element = _element(2)
    out = _np(
        pipeline.augment_element(
            element, tf.constant([3, 4]), flip=False, scale_range=(1.0, 1.0), jitter=True
        )
    )
    original = _np(element)
    assert not np.array_equal(out["image"], original["image"])
    for key in ("semseg", "depth", "normals"):
        np.testing.assert_array_equal(out[key], original[key])
    again = _np(pipeline.augment_element(element, tf.constant([3, 4])))
    repeat = _np(pipeline.augment_element(element, tf.constant([3, 4])))
    for key in again:
        np.testing.assert_array_equal(again[key], repeat[key])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synth_pipeline"))
    return ensure_generated(
        "street", "val", num_frames=5, height=H, width=W, data_dir=root, workers=1
    )


def test_make_dataset_eval_and_training(data_dir):
    evaluation = pipeline.make_dataset("synth_street", data_dir, "val", 2, training=False)
    batches = list(evaluation)
    assert [int(b["image"].shape[0]) for b in batches] == [2, 2, 1]
    assert batches[0]["normals"].shape == (2, H, W, 3) and batches[0]["depth"].dtype == tf.float32
    training = pipeline.make_dataset(
        "synth_street", data_dir, "val", 4, training=True, shuffle_buffer=8, seed=5
    )
    same = pipeline.make_dataset(
        "synth_street", data_dir, "val", 4, training=True, shuffle_buffer=8, seed=5
    )
    first, again = next(iter(training)), next(iter(same))
    for key in ("image", "semseg", "depth", "normals"):  # same seed, same batches
        np.testing.assert_array_equal(first[key].numpy(), again[key].numpy())
    taken = list(training.take(3))  # repeats past the 5 frames, full batches only
    assert all(int(b["semseg"].shape[0]) == 4 for b in taken)
    labels = np.concatenate([b["semseg"].numpy().ravel() for b in taken])
    assert np.all((labels < 19) | (labels == 255))
    images = pipeline.make_dataset(
        "synth_street", data_dir, "val", 2, training=True, images_only=True
    )
    assert set(images.element_spec) == {"image"}
    assert images.element_spec["image"].shape == (2, H, W, 3)


def test_make_dataset_is_gin_configurable(data_dir):
    import ka_tf.registry_all  # noqa: F401 - registers every configurable

    gin.parse_config("make_dataset.shuffle_buffer = 3\naugment_element.jitter = False")
    dataset = pipeline.make_dataset("synth_street", data_dir, "val", 1, training=True)
    assert next(iter(dataset))["image"].shape == (1, H, W, 3)
    with pytest.raises(ConfigError, match="batch_size"):
        pipeline.make_dataset("synth_street", data_dir, "val", 0, training=False)
