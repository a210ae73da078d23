"""ka_tf.evaluation: a real tiny Keras model streamed over tf.data equals compute_metrics."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.errors import ConfigError, DataError, ModelFileError
from ka_tf.evaluation import evaluate_model, load_model_file, predict_dense
from ka_tf.metrics import compute_metrics

NUM_CLASSES = 3


def tiny_dense_model(tasks=("semseg", "depth", "normals")) -> keras.Model:
    """A functional model following the ka_tf contract: 0..255 float input, dict outputs."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(x)
    heads = {
        "semseg": keras.layers.Conv2D(NUM_CLASSES, 1, name="semseg"),
        "depth": keras.layers.Conv2D(1, 1, activation="softplus", name="depth"),
        "normals": keras.layers.Conv2D(3, 1, name="normals"),
    }
    return keras.Model(inputs, {task: heads[task](x) for task in tasks}, name="tiny")


def tiny_arrays(n=5, h=32, w=64, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "image": rng.integers(0, 256, (n, h, w, 3)).astype(np.uint8),
        "semseg": rng.integers(0, NUM_CLASSES, (n, h, w)).astype(np.uint8),
        "depth": rng.uniform(0.2, 3.0, (n, h, w)).astype(np.float32),
        "normals": rng.normal(size=(n, h, w, 3)).astype(np.float32),
    }
    arrays["semseg"][:, :3] = 255
    arrays["depth"][:, :, :4] = 0.0
    return arrays


def test_predict_dense_follows_the_contract():
    keras.utils.set_random_seed(0)
    model = tiny_dense_model()
    images = tiny_arrays(n=2)["image"]
    predictions = predict_dense(model, images)
    raw = model(images.astype(np.float32), training=False)
    assert sorted(predictions) == ["depth", "normals", "semseg"]
    assert predictions["semseg"].shape == (2, 32, 64)
    assert predictions["semseg"].dtype == np.int32
    np.testing.assert_array_equal(predictions["semseg"], np.argmax(raw["semseg"], axis=-1))
    assert predictions["depth"].shape == (2, 32, 64)  # trailing 1 squeezed
    np.testing.assert_allclose(predictions["depth"], raw["depth"].numpy()[..., 0], rtol=1e-6)
    assert predictions["normals"].shape == (2, 32, 64, 3)
    # uint8 and float32 images are the same input (a cast, no preprocessing).
    again = predict_dense(model, tf.constant(images.astype(np.float32)))
    np.testing.assert_array_equal(again["semseg"], predictions["semseg"])


def test_frozen_predictions_equal_live_ones_and_keep_the_weights_of_their_first_call():
    from ka_tf.models import SegNet

    keras.utils.set_random_seed(0)
    model = SegNet("depth", width_multiplier=1 / 16)  # BatchNorm folded in inference
    images = tiny_arrays(n=1)["image"]
    live = predict_dense(model, images)
    frozen = predict_dense(model, images, frozen=True)
    np.testing.assert_allclose(frozen["depth"], live["depth"], rtol=1e-5)
    for variable in model.trainable_variables:  # training moves the weights...
        variable.assign(variable * 1.5)
    moved = predict_dense(model, images)
    assert not np.allclose(moved["depth"], live["depth"], rtol=1e-3)
    # ...which the frozen graph does not see, as documented.
    np.testing.assert_allclose(predict_dense(model, images, frozen=True)["depth"], frozen["depth"])


def test_evaluate_model_equals_compute_metrics():
    keras.utils.set_random_seed(1)
    model = tiny_dense_model()
    arrays = tiny_arrays()
    dataset = tf.data.Dataset.from_tensor_slices(arrays).batch(2)  # batches of 2, 2, 1
    streamed = evaluate_model(model, dataset, progress=False)
    expected = compute_metrics(predict_dense(model, arrays["image"]), arrays, NUM_CLASSES)
    assert list(streamed) == list(expected) and len(expected) == 16
    for key, value in expected.items():
        assert streamed[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert 0.0 <= streamed["semseg/miou"] <= 1.0

    first_two = evaluate_model(model, dataset, tasks=["depth"], max_batches=1, progress=False)
    head = {key: value[:2] for key, value in arrays.items()}
    assert first_two == pytest.approx(
        compute_metrics({"depth": predict_dense(model, head["image"])["depth"]}, head)
    )


def _far_depth_model(metres: float) -> keras.Model:
    """Predicts ``metres`` everywhere (a diverging depth head)."""
    inputs = keras.Input((None, None, 3))
    depth = keras.layers.Lambda(lambda x: x[..., :1] * 0.0 + metres)(inputs)
    return keras.Model(inputs, {"depth": depth}, name="far")


def test_a_gin_bound_max_depth_caps_predictions():
    arrays = tiny_arrays(n=2)
    del arrays["semseg"], arrays["normals"]
    dataset = tf.data.Dataset.from_tensor_slices(arrays).batch(2)
    model = _far_depth_model(1e6)
    uncapped = evaluate_model(model, dataset, progress=False)
    with gin.unlock_config():
        gin.parse_config("evaluate_model.max_depth = 20.0")
    try:
        capped = evaluate_model(model, dataset, progress=False)
        explicit = evaluate_model(model, dataset, max_depth=None, progress=False)
    finally:
        gin.clear_config()
    targets = arrays["depth"][arrays["depth"] > 0]
    assert uncapped["depth/rmse"] > 1e5
    assert capped["depth/rmse"] == pytest.approx(np.sqrt(np.mean((20.0 - targets) ** 2)), rel=1e-5)
    assert capped == pytest.approx(evaluate_model(_far_depth_model(20.0), dataset, progress=False))
    assert explicit == pytest.approx(uncapped)  # an explicit argument wins over gin


def test_evaluate_model_uses_only_labelled_tasks_and_num_classes_override():
    model = tiny_dense_model()
    arrays = tiny_arrays(n=2)
    del arrays["normals"]
    dataset = tf.data.Dataset.from_tensor_slices(arrays).batch(2)
    result = evaluate_model(model, dataset, progress=False)
    assert {key.split("/")[0] for key in result} == {"semseg", "depth"}
    # More classes than the logits have: ids stay in range, the empty classes drop out.
    assert evaluate_model(model, dataset, num_classes=5, tasks=["semseg"], progress=False) == (
        pytest.approx(evaluate_model(model, dataset, tasks=["semseg"], progress=False))
    )


def test_evaluate_model_errors():
    model = tiny_dense_model(tasks=("normals",))
    arrays = tiny_arrays(n=2)
    labelled = {key: arrays[key] for key in ("image", "semseg", "depth")}
    dataset = tf.data.Dataset.from_tensor_slices(labelled).batch(2)
    with pytest.raises(DataError, match=r"no labels for any of model 'tiny'.*\['normals'\]"):
        evaluate_model(model, dataset, progress=False)
    with pytest.raises(ConfigError, match="outputs only"):
        evaluate_model(model, dataset, tasks=["depth"], progress=False)
    with pytest.raises(DataError, match="must be batched"):
        evaluate_model(model, tf.data.Dataset.from_tensor_slices(labelled), progress=False)
    with pytest.raises(DataError, match="dicts with an 'image' key"):
        evaluate_model(model, tf.data.Dataset.from_tensor_slices(arrays["image"]).batch(1))
    with pytest.raises(DataError, match="no batch"):
        evaluate_model(model, dataset.take(0), progress=False)


def test_models_breaking_the_output_contract_are_rejected():
    inputs = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(2, 1)(inputs)
    plain = keras.Model(inputs, features)
    images = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(ModelFileError, match="not a dict keyed by task"):
        predict_dense(plain, images)
    unknown = keras.Model(inputs, {"edges": features}, name="edgy")
    with pytest.raises(ModelFileError, match=r"'edgy' has unknown output keys \['edges'\]"):
        predict_dense(unknown, images)
    flat_depth = keras.Model(inputs, {"depth": keras.layers.Flatten()(features)})
    with pytest.raises(ModelFileError, match="depth output has shape"):
        predict_dense(flat_depth, images)
    with pytest.raises(DataError, match=r"\[B, H, W, 3\] RGB batch"):
        predict_dense(tiny_dense_model(), np.zeros((32, 32, 3), np.uint8))


def test_load_model_file(tmp_path):
    model = tiny_dense_model(tasks=("depth",))
    path = tmp_path / "tiny.keras"
    model.save(path)
    restored = load_model_file(str(path))
    images = tiny_arrays(n=1)["image"]
    np.testing.assert_allclose(
        predict_dense(restored, images)["depth"], predict_dense(model, images)["depth"]
    )
    with pytest.raises(ModelFileError, match=r"model file not found: --model=.*missing\.keras"):
        load_model_file(str(tmp_path / "missing.keras"))
    weights = tmp_path / "teacher.pth"
    weights.write_bytes(b"not a keras file")
    with pytest.raises(ModelFileError, match=r"teacher\.pth is not a \.keras file"):
        load_model_file(str(weights))
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match=r"cannot load --model=.*broken\.keras"):
        load_model_file(str(broken))
