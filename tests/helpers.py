"""Reusable checks for every model test, after KerasHub's ``TestCase``.

Each helper asserts numbers (shapes, parities, losses that fall), so a model test
is a few calls: config round-trip, ``.keras`` save/load, a short ``fit``, a run
under ``MirroredStrategy`` with two logical CPUs, and a ``mixed_bfloat16`` run.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot_files(*roots) -> dict[str, str]:
    """SHA-256 of every file under ``roots``, keyed by path: compare two to prove that
    nothing was added, removed or changed."""
    files = {}
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                with open(path, "rb") as handle:
                    files[path] = hashlib.sha256(handle.read()).hexdigest()
    return files


def _as_numpy(outputs):
    return tf.nest.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), outputs)


def assert_outputs_close(actual, expected, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Asserts two (nested) output structures are equal in structure and close in value."""
    tf.nest.assert_same_structure(actual, expected)
    for a, e in zip(
        tf.nest.flatten(_as_numpy(actual)), tf.nest.flatten(_as_numpy(expected)), strict=True
    ):
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol)


def run_config_roundtrip(model: keras.Model, inputs) -> keras.Model:
    """Rebuilds ``model`` from its config, copies weights, and checks identical outputs."""
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config, "get_config() is not stable across from_config()"
    clone.set_weights(model.get_weights())
    assert_outputs_close(clone(inputs, training=False), model(inputs, training=False))
    return clone


def run_save_load(model: keras.Model, inputs, directory: str) -> keras.Model:
    """Saves ``model`` as a ``.keras`` file, reloads it and checks identical outputs."""
    path = os.path.join(directory, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    assert_outputs_close(restored(inputs, training=False), model(inputs, training=False))
    return restored


def run_fit(
    model_fn: Callable[[], keras.Model],
    dataset: tf.data.Dataset,
    loss,
    epochs: int = 5,
    learning_rate: float = 1e-2,
) -> list[float]:
    """Compiles a fresh model, fits it on ``dataset`` and asserts the loss fell."""
    model = model_fn()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    history = model.fit(dataset, epochs=epochs, verbose=0).history["loss"]
    assert all(np.isfinite(history)), f"non-finite loss: {history}"
    assert history[-1] < history[0], f"loss did not fall: {history}"
    return history


@functools.cache
def two_device_strategy() -> tf.distribute.MirroredStrategy:
    """MirroredStrategy over the two logical CPUs set up in conftest.

    One instance per test session: separate instances in one process can reuse
    collective-op instance keys and then abort with a shape mismatch.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, f"expected 2 logical CPUs, got {devices}"
    return tf.distribute.MirroredStrategy(devices)


def run_mirrored_fit(
    model_fn: Callable[[], keras.Model], dataset: tf.data.Dataset, loss
) -> tuple[list[float], list[float]]:
    """Fits one epoch with 1 replica and with 2 replicas from the same initial weights.

    Returns both loss histories after asserting the trained weights agree: a
    ``keras.losses.Loss`` must be scaled by Keras, not twice or not at all.
    """
    keras.utils.set_random_seed(0)
    single = model_fn()
    initial = single.get_weights()
    single.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    single_history = single.fit(dataset, epochs=1, verbose=0).history["loss"]
    with two_device_strategy().scope():
        mirrored = model_fn()
        mirrored.set_weights(initial)
        mirrored.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    mirrored_history = mirrored.fit(dataset, epochs=1, verbose=0).history["loss"]
    for a, b in zip(single.get_weights(), mirrored.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-3)
    return single_history, mirrored_history


def run_mixed_bfloat16(model_fn: Callable[[], keras.Model], inputs) -> keras.Model:
    """Builds the model under ``mixed_bfloat16`` and checks float32 outputs and bf16 compute."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = model_fn()
        outputs = model(inputs, training=False)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert any(layer.compute_dtype == "bfloat16" for layer in model.layers), (
        "no layer computes in bfloat16"
    )
    for tensor in tf.nest.flatten(outputs):
        assert tensor.dtype == tf.float32, f"output dtype {tensor.dtype}, expected float32"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(tensor)))
    return model


def run_tool(
    *args: str, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Runs ``python tools/<args>`` from the repo root and returns the finished process."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Asserts exit status 2 and a single ``error:`` line on stderr containing ``fragments``."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])


def he_init_convs(model: keras.Model, seed: int = 0) -> keras.Model:
    """Gives every Conv2D kernel of ``model`` He-normal values, in place.

    Keras' default Glorot init halves the signal at every ReLU layer, so a freshly
    built 26-layer SegNet outputs nearly a constant whatever its input: a test that
    compares two paths through such a model cannot tell them apart. He init keeps the
    signal's scale, as a trained network does.
    """
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel
            fan_in = int(np.prod(kernel.shape[:-1]))
            kernel.assign(rng.normal(0, np.sqrt(2.0 / fan_in), kernel.shape).astype("float32"))
    return model


def summary_steps(log_dir) -> dict[str, list[int]]:
    """``{tag: [steps]}`` of every summary in the TensorBoard event files under ``log_dir``."""
    found: dict[str, list[int]] = {}
    for root, _, names in os.walk(str(log_dir)):
        for name in names:
            if not name.startswith("events.out.tfevents"):
                continue
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    found.setdefault(value.tag, []).append(int(event.step))
    return {tag: sorted(steps) for tag, steps in found.items()}
