"""Builtin-op switch pooling/unpooling equals the index-based reference, ties included."""

import numpy as np
import tensorflow as tf

from ka_tf.models.unpooling import MaxPoolWithSwitches, MaxUnpool


def reference_unpool(inputs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """tf.nn.max_pool_with_argmax + scatter: the index-based SegNet unpooling."""
    _, argmax = tf.nn.max_pool_with_argmax(
        inputs, ksize=2, strides=2, padding="VALID", include_batch_in_index=True
    )
    flat = tf.scatter_nd(
        tf.reshape(argmax, [-1, 1]), tf.reshape(values, [-1]), [int(np.prod(inputs.shape))]
    )
    return tf.reshape(flat, inputs.shape).numpy()


def test_matches_argmax_reference_random():
    x = np.random.default_rng(0).normal(size=(2, 8, 12, 5)).astype("float32")
    pooled, switches = MaxPoolWithSwitches()(x)
    np.testing.assert_array_equal(pooled, tf.nn.max_pool2d(x, 2, 2, "VALID"))
    values = np.random.default_rng(1).normal(size=pooled.shape).astype("float32")
    np.testing.assert_array_equal(MaxUnpool()([values, switches]), reference_unpool(x, values))


def test_ties_pick_the_first_maximum():
    # Quantised values make many windows contain two, three or four equal maxima.
    x = np.random.default_rng(2).integers(0, 2, size=(3, 6, 8, 4)).astype("float32")
    _, switches = MaxPoolWithSwitches()(x)
    windows = switches.numpy().reshape(3, 3, 2, 4, 2, 4).sum(axis=(2, 4))
    np.testing.assert_array_equal(windows, 1.0)  # exactly one switch per window
    values = np.arange(np.prod(windows.shape), dtype="float32").reshape(windows.shape) + 1
    np.testing.assert_array_equal(MaxUnpool()([values, switches]), reference_unpool(x, values))


def test_hand_made_window():
    x = np.array([[5, 5], [1, 5]], "float32").reshape(1, 2, 2, 1)
    _, switches = MaxPoolWithSwitches()(x)
    assert switches.numpy().reshape(2, 2).tolist() == [[1, 0], [0, 0]]
    x = np.array([[1, 2], [7, 7]], "float32").reshape(1, 2, 2, 1)
    _, switches = MaxPoolWithSwitches()(x)
    assert switches.numpy().reshape(2, 2).tolist() == [[0, 0], [1, 0]]


def test_gradient_flows_to_the_maximum_only():
    x = tf.constant(np.array([[1, 4], [3, 2]], "float32").reshape(1, 2, 2, 1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled, switches = MaxPoolWithSwitches()(x)
        y = MaxUnpool()([pooled * 3.0, switches])
        total = tf.reduce_sum(y)
    assert tape.gradient(total, x).numpy().reshape(2, 2).tolist() == [[0, 3], [0, 0]]
