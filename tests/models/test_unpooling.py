"""Switch pooling/unpooling equals the index-based reference, ties included, in both
of its forms: MaxPoolGrad (TensorFlow) and the builtin-op mask (portable, for export)."""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

from ka_tf.models.unpooling import (
    MaxPoolWithSwitches,
    MaxUnpool,
    first_max_switches,
    portable_unpooling,
)

FORMS = {"maxpoolgrad": contextlib.nullcontext, "portable": portable_unpooling}


def reference_unpool(inputs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """tf.nn.max_pool_with_argmax + scatter: the index-based SegNet unpooling."""
    _, argmax = tf.nn.max_pool_with_argmax(
        inputs, ksize=2, strides=2, padding="VALID", include_batch_in_index=True
    )
    flat = tf.scatter_nd(
        tf.reshape(argmax, [-1, 1]), tf.reshape(values, [-1]), [int(np.prod(inputs.shape))]
    )
    return tf.reshape(flat, inputs.shape).numpy()


def _unpool(form: str, values, switches, graph: bool = False):
    def run(v, s):
        with FORMS[form]():
            return MaxUnpool()([v, s])

    return (tf.function(run) if graph else run)(tf.constant(values), switches)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("graph", [False, True])
def test_matches_argmax_reference_random(form, graph):
    x = np.random.default_rng(0).normal(size=(2, 8, 12, 5)).astype("float32")
    pooled, switches = MaxPoolWithSwitches()(x)
    np.testing.assert_array_equal(pooled, tf.nn.max_pool2d(x, 2, 2, "VALID"))
    values = np.random.default_rng(1).normal(size=pooled.shape).astype("float32")
    unpooled = _unpool(form, values, switches, graph)
    np.testing.assert_array_equal(unpooled, reference_unpool(x, values))


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("graph", [False, True])  # graph mode: oneDNN's MaxPoolGrad
def test_ties_pick_the_first_maximum(form, graph):
    # Quantised values make many windows contain two, three or four equal maxima.
    x = np.random.default_rng(2).integers(0, 2, size=(3, 6, 8, 4)).astype("float32")
    _, switches = MaxPoolWithSwitches()(x)
    windows = np.prod((3, 3, 4, 4))
    values = np.arange(windows, dtype="float32").reshape(3, 3, 4, 4) + 1
    unpooled = _unpool(form, values, switches, graph)
    np.testing.assert_array_equal(unpooled, reference_unpool(x, values))
    # Exactly one nonzero per window.
    nonzero = (unpooled.numpy() != 0).reshape(3, 3, 2, 4, 2, 4).sum(axis=(2, 4))
    np.testing.assert_array_equal(nonzero, 1)


def test_hand_made_window():
    x = np.array([[5, 5], [1, 5]], "float32").reshape(1, 2, 2, 1)
    mask = first_max_switches(x, tf.nn.max_pool2d(x, 2, 2, "VALID"))
    assert mask.numpy().reshape(2, 2).tolist() == [[1, 0], [0, 0]]
    x = np.array([[1, 2], [7, 7]], "float32").reshape(1, 2, 2, 1)
    mask = first_max_switches(x, tf.nn.max_pool2d(x, 2, 2, "VALID"))
    assert mask.numpy().reshape(2, 2).tolist() == [[0, 0], [1, 0]]


@pytest.mark.parametrize("form", FORMS)
def test_gradient_flows_to_the_maximum_only(form):
    x = tf.constant(np.array([[1, 4], [3, 2]], "float32").reshape(1, 2, 2, 1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled, switches = MaxPoolWithSwitches()(x)
        with FORMS[form]():
            y = MaxUnpool()([pooled * 3.0, switches])
        total = tf.reduce_sum(y)
    assert tape.gradient(total, x).numpy().reshape(2, 2).tolist() == [[0, 3], [0, 0]]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_both_forms_agree_in_value_and_gradient_with_ties(dtype):
    rng = np.random.default_rng(3)
    x = tf.cast(rng.integers(0, 3, (4, 8, 16, 5)).astype("float32"), dtype)
    values = tf.cast(rng.normal(size=(4, 4, 8, 5)).astype("float32"), dtype)
    upstream = tf.cast(rng.normal(size=(4, 8, 16, 5)).astype("float32"), dtype)
    results = {}
    for form, context in FORMS.items():

        @tf.function
        def run(v, context=context):
            with tf.GradientTape() as tape:
                tape.watch(v)
                with context():
                    y = MaxUnpool(dtype=dtype)([v, x])
                loss = tf.reduce_sum(tf.cast(y * upstream, "float32"))
            return y, tape.gradient(loss, v)

        results[form] = [t.numpy().astype("float32") for t in run(values)]
    for a, b in zip(results["maxpoolgrad"], results["portable"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_portable_graph_has_builtin_ops_only():
    switches = tf.zeros([1, 8, 8, 2])
    values = tf.zeros([1, 4, 4, 2])
    op_types = {}
    for form, context in FORMS.items():

        @tf.function
        def run(v, s, context=context):
            with context():
                return MaxUnpool()([v, s])

        graph = run.get_concrete_function(values, switches).graph
        op_types[form] = {op.type for op in graph.get_operations()}
    assert "MaxPoolGrad" in op_types["maxpoolgrad"]
    assert "MaxPoolGrad" not in op_types["portable"]
    assert {"DepthToSpace", "SpaceToDepth", "Equal"} <= op_types["portable"]
