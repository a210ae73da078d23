"""SegNet teacher: shapes, splitting, serialization, training and mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.errors import ConfigError
from ka_tf.models import SegNet
from tests import helpers

IMAGES = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 64, 3)).astype("float32")


def tiny(task="semseg", **kwargs):
    kwargs.setdefault("num_classes", 5 if task == "semseg" else None)
    return SegNet(task, width_multiplier=1 / 16, **kwargs)


@pytest.mark.parametrize(
    "task,shape", [("semseg", (2, 32, 64, 5)), ("depth", (2, 32, 64)), ("normals", (2, 32, 64, 3))]
)
def test_output_shapes_and_dtypes(task, shape):
    outputs = tiny(task)(IMAGES)
    assert list(outputs) == [task]
    assert tuple(outputs[task].shape) == shape
    assert outputs[task].dtype == tf.float32


def test_depth_positive_and_normals_unit():
    assert float(tf.reduce_min(tiny("depth")(IMAGES)["depth"])) > 0
    model = tiny("normals")
    # A trained head has raw norms far above the 1e-6 normalisation floor; an untrained
    # 1/16-width one is near it, so scale the head kernel (direction is unchanged).
    kernel = model.heads["normals"].conv.kernel
    kernel.assign(kernel * 1e4)
    norms = tf.norm(model(IMAGES)["normals"], axis=-1).numpy()
    # Unit length wherever the raw head output is non-zero (a zero raw vector stays 0).
    unit = np.abs(norms - 1.0) < 1e-5
    assert unit.mean() > 0.9
    np.testing.assert_allclose(norms[~unit], 0.0, atol=1e-5)


@pytest.mark.parametrize("arch,convs", [("vgg11", 8), ("vgg13", 10), ("vgg16", 13), ("vgg19", 16)])
def test_vgg_variants_conv_count(arch, convs):
    model = tiny(arch=arch, batch_norm=False)
    kernels = [w for w in model.weights if "kernel" in w.path and "head" not in w.path]
    # encoder convs + decoder convs (mirror, minus the head conv)
    assert len(kernels) == 2 * convs - 1


def test_split_decode_reproduces_full_forward():
    model = tiny()
    full = model(IMAGES)["semseg"]
    inter = model.forward_intermediates(IMAGES)
    assert [f.shape[-1] for f in inter["candidates"]["semseg"]] == list(model.candidate_channels())
    for start in range(5):
        part = model.decode_from(inter["candidates"]["semseg"][start], inter["side"], start)
        np.testing.assert_allclose(part, full, atol=1e-5)


def test_bad_arguments_name_the_value():
    with pytest.raises(ConfigError, match=r"arch='vgg99'"):
        SegNet("semseg", num_classes=3, arch="vgg99")
    with pytest.raises(ConfigError, match=r"task='edges'"):
        SegNet("edges")
    with pytest.raises(ConfigError, match="num_classes"):
        SegNet("semseg")


def test_config_roundtrip_and_save_load(tmp_path):
    model = tiny("depth", depth_activation="softplus")
    helpers.run_config_roundtrip(model, IMAGES)
    helpers.run_save_load(model, IMAGES, str(tmp_path))


@pytest.mark.slow  # ~20 s; teacher training also runs in the gin dry run
def test_fit_lowers_loss():
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, size=(8, 32, 64, 3)).astype("float32")
    labels = (images[..., 0] > 127).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices((images, {"semseg": labels})).batch(4)
    helpers.run_fit(
        lambda: tiny(num_classes=2),
        ds,
        loss={"semseg": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        epochs=8,
    )


def test_mixed_bfloat16_outputs_float32():
    helpers.run_mixed_bfloat16(lambda: tiny("depth"), IMAGES)
