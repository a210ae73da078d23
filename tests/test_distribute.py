"""Strategy and precision selection, and the shared test helpers on a tiny model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf import distribute
from ka_tf.errors import ConfigError
from tests import helpers


def tiny_model() -> keras.Model:
    inputs = keras.Input((32, 64, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(2, 1, dtype="float32")(x)
    return keras.Model(inputs, x)


def tiny_dataset() -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 32, 64, 3)).astype("float32")
    y = np.stack([x[..., 0] > 0, x[..., 1] > 0], axis=-1).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(4)


def test_one_device_and_mirrored():
    assert distribute.get_strategy("one_device").num_replicas_in_sync == 1
    assert distribute.get_strategy("mirrored").num_replicas_in_sync == 2  # 2 logical CPUs


def test_auto_without_gpu_is_the_default_strategy(monkeypatch):
    # One device without a name: TF's default strategy, which places ops itself
    # (OneDeviceStrategy's explicit placement made CPU training 2x slower).
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = distribute.get_strategy("auto")
    assert strategy is tf.distribute.get_strategy()
    assert not tf.distribute.has_strategy()
    assert strategy.extended.should_checkpoint


def test_one_device_with_a_named_device_pins_it():
    strategy = distribute.get_strategy("one_device", devices=["/cpu:0"])
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.num_replicas_in_sync == 1


def test_unknown_strategy_names_choices():
    with pytest.raises(ConfigError, match=r"strategy='tpu_pod'.*mirrored"):
        distribute.get_strategy("tpu_pod")


def test_multi_worker_without_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        distribute.get_strategy("multi_worker")


def test_auto_precision_never_float16_on_cpu(monkeypatch):
    monkeypatch.setattr(distribute, "cpu_has_fast_bfloat16", lambda: False)
    assert distribute.resolve_precision("auto") == "float32"
    monkeypatch.setattr(distribute, "cpu_has_fast_bfloat16", lambda: True)
    assert distribute.resolve_precision("auto") == "mixed_bfloat16"


def test_set_precision_policy_sets_global():
    assert distribute.set_precision_policy("mixed_bfloat16") == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


def test_unknown_precision():
    with pytest.raises(ConfigError, match=r"precision='fp8'"):
        distribute.resolve_precision("fp8")


def test_helpers_on_tiny_model(tmp_path):
    inputs = np.zeros((2, 32, 64, 3), "float32") + 0.5
    model = tiny_model()
    helpers.run_save_load(model, inputs, str(tmp_path))
    helpers.run_fit(
        tiny_model, tiny_dataset(), loss=keras.losses.BinaryCrossentropy(from_logits=True)
    )
    helpers.run_mixed_bfloat16(tiny_model, inputs)


def test_mirrored_matches_single_replica():
    single, mirrored = helpers.run_mirrored_fit(
        tiny_model, tiny_dataset(), keras.losses.BinaryCrossentropy(from_logits=True)
    )
    np.testing.assert_allclose(single, mirrored, rtol=1e-3)
