"""Shared resize/crop helpers: labels nearest, depth/normals validity kept, sizes checked."""

import numpy as np
import pytest
import tensorflow as tf

from ka_tf.data import resize
from ka_tf.errors import ConfigError


def _example(height=32, width=64, seed=0):
    rng = np.random.default_rng(seed)
    depth = np.full((height, width), 2.0, np.float32)
    depth[:, : width // 4] = 0.0  # invalid left quarter
    normals = rng.normal(size=(height, width, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[: height // 4] = 0.0  # invalid top quarter
    semseg = rng.integers(0, 5, (height, width)).astype(np.uint8)
    semseg[-2:] = 255
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return {"image": image, "semseg": semseg, "depth": depth, "normals": normals}


def _run(example, size, **kwargs):
    tensors = {k: tf.constant(v) for k, v in example.items()}
    return {k: v.numpy() for k, v in resize.resize_example(tensors, size, **kwargs).items()}


def test_validate_size():
    assert resize.validate_size((64, 96)) == (64, 96)
    assert resize.validate_size(None) is None
    with pytest.raises(ConfigError, match=r"multiples of 32.*size=\(60, 96\).*\(32, 96\)"):
        resize.validate_size((60, 96))
    with pytest.raises(ConfigError, match=r"size=\(0, 32\)"):
        resize.validate_size((0, 32))
    with pytest.raises(ConfigError, match=r"\(height, width\)"):
        resize.validate_size("big")
    with pytest.raises(ConfigError, match=r"resize_mode='stretch'"):
        resize.validate_resize_options((32, 32), "stretch", "nearest")
    with pytest.raises(ConfigError, match=r"depth_method='linear'"):
        resize.validate_resize_options((32, 32), "resize", "linear")


def test_upsample_labels_and_depth_are_exact_repeats():
    example = _example()
    out = _run(example, (64, 128))
    assert out["image"].dtype == np.uint8 and out["image"].shape == (64, 128, 3)
    repeat = lambda a: np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)  # noqa: E731
    np.testing.assert_array_equal(out["semseg"], repeat(example["semseg"]))
    np.testing.assert_array_equal(out["depth"], repeat(example["depth"]))


def test_downsample_keeps_labels_and_invalid_depth():
    example = _example()
    for method in ("nearest", "masked"):
        out = _run(example, (32, 32), depth_method=method)
        assert out["semseg"].dtype == np.uint8
        assert set(np.unique(out["semseg"])) <= set(np.unique(example["semseg"]))
        assert (out["semseg"][-1] == 255).all()
        # Depth is either exactly invalid (0) or exactly the valid value: nothing blended.
        assert set(np.unique(out["depth"]).tolist()) == {0.0, 2.0}, method
        assert (out["depth"][:, :7] == 0).all() and (out["depth"][:, 9:] == 2.0).all()
    norms = np.linalg.norm(_run(example, (64, 96))["normals"], axis=-1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))
    assert (norms[:14] == 0).all() and (np.abs(norms[18:] - 1) < 1e-5).all()


def test_center_crop_and_resize_crop():
    example = _example(32, 96)
    out = _run(example, (32, 64), mode="center_crop")
    for key in example:
        np.testing.assert_array_equal(out[key], example[key][:, 16:80])
    # resize_crop keeps the aspect ratio: 32x96 -> 64x192 -> centre 64x64.
    out = _run(example, (64, 64), mode="resize_crop", depth_method="masked")
    assert out["semseg"].shape == (64, 64) and out["normals"].shape == (64, 64, 3)
    upsampled = np.repeat(np.repeat(example["semseg"], 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(out["semseg"], upsampled[:, 64:128])
    with pytest.raises(ConfigError, match=r"center_crop.*frame\.png is 32x96"):
        resize.check_crop_fits((32, 96), (64, 64), "center_crop", "frame.png")
    resize.check_crop_fits((32, 96), (64, 64), "resize_crop", "frame.png")


def test_apply_resize_dataset():
    example = _example()
    dataset = tf.data.Dataset.from_tensors({k: tf.constant(v) for k, v in example.items()})
    assert resize.apply_resize(dataset, None) is dataset
    resized = resize.apply_resize(dataset, (64, 64), "resize")
    assert resized.element_spec["depth"].shape.as_list() == [64, 64]
