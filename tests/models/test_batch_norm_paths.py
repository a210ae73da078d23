"""The fast BatchNorm paths of the SegNet blocks equal Keras's own BatchNormalization.

Training: :func:`batch_norm_fused_training` (one FusedBatchNormV3 op) against
``keras.layers.BatchNormalization`` — outputs, gradients and moving statistics.
Inference: :func:`conv_batch_norm_folded` against ``norm(conv(x))`` — outputs and
gradients — and the SegNet blocks against the same blocks computed layer by layer.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.models.segnet_blocks import (
    SegNetEncoderBlock,
    batch_norm_fused_training,
    conv_batch_norm_folded,
)


def _randomise(layer: keras.layers.BatchNormalization, rng: np.random.Generator) -> None:
    channels = layer.gamma.shape[0]
    layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
    layer.beta.assign(rng.normal(0.0, 0.3, channels).astype("float32"))
    layer.moving_mean.assign(rng.normal(0.0, 0.5, channels).astype("float32"))
    layer.moving_variance.assign(rng.uniform(0.2, 2.0, channels).astype("float32"))


def _two_layers(channels: int, rng: np.random.Generator):
    """Two Keras BatchNormalization layers with the same random weights and statistics."""
    layers = []
    for _ in range(2):
        layer = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)
        layer.build((None, None, None, channels))
        layers.append(layer)
    _randomise(layers[0], rng)
    layers[1].set_weights(layers[0].get_weights())
    return layers


def test_fused_training_pass_equals_keras_batch_norm():
    rng = np.random.default_rng(0)
    keras_bn, fused_bn = _two_layers(6, rng)
    before = keras_bn.get_weights()
    x = tf.constant(rng.normal(2.0, 3.0, (4, 5, 7, 6)).astype("float32"))
    upstream = tf.constant(rng.normal(size=(4, 5, 7, 6)).astype("float32"))
    results = {}
    for name, layer in (("keras", keras_bn), ("fused", fused_bn)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            if name == "keras":
                y = layer(x, training=True)
            else:
                y = batch_norm_fused_training(x, layer)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results[name] = [y, *grads, layer.moving_mean, layer.moving_variance]
    for a, b in zip(results["keras"], results["fused"], strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
    assert not np.allclose(before[2], fused_bn.moving_mean.numpy())  # the statistics moved


def test_fused_moving_variance_uses_the_biased_batch_variance():
    layer = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.5)
    layer.build((None, None, None, 3))
    x = np.random.default_rng(1).normal(0.0, 2.0, (2, 2, 3, 3)).astype("float32")
    batch_norm_fused_training(tf.constant(x), layer)  # 12 values per channel
    flat = x.reshape(-1, 3)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), 0.5 * 1.0 + 0.5 * flat.var(0), rtol=1e-5
    )


@pytest.mark.parametrize("use_bias", [True, False])
def test_folded_conv_equals_conv_then_batch_norm(use_bias):
    rng = np.random.default_rng(3)
    conv = keras.layers.Conv2D(5, 3, padding="same", use_bias=use_bias)
    conv.build((None, None, None, 4))
    if use_bias:
        conv.bias.assign(rng.normal(0.0, 0.5, 5).astype("float32"))
    norm, _ = _two_layers(5, rng)
    x = tf.constant(rng.normal(size=(2, 6, 8, 4)).astype("float32"))
    upstream = tf.constant(rng.normal(size=(2, 6, 8, 5)).astype("float32"))
    results = []
    for folded in (False, True):
        variables = [x, conv.kernel, norm.gamma, norm.beta]
        with tf.GradientTape() as tape:
            tape.watch(x)
            if folded:
                y = conv_batch_norm_folded(x, conv, norm)
            else:
                y = norm(conv(x), training=False)
            loss = tf.reduce_sum(y * upstream)
        results.append([y, *tape.gradient(loss, variables)])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)


def _keras_copy(block: SegNetEncoderBlock) -> list[tuple]:
    """Plain Keras Conv2D + BatchNormalization pairs with the block's weights."""
    pairs = []
    for conv, norm in zip(block.convs, block.norms, strict=True):
        plain_conv = keras.layers.Conv2D(conv.filters, 3, padding="same")
        plain_conv.build((None, None, None, conv.kernel.shape[2]))
        plain_conv.set_weights(conv.get_weights())
        plain_norm = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)
        plain_norm.build((None, None, None, conv.filters))
        plain_norm.set_weights(norm.get_weights())
        pairs.append((plain_conv, plain_norm))
    return pairs


@pytest.mark.parametrize("training", [False, True])
def test_encoder_block_matches_layer_by_layer_keras(training):
    rng = np.random.default_rng(4)
    block = SegNetEncoderBlock(6, 2, name="down")
    block.build((None, 8, 8, 3))
    for norm in block.norms:
        _randomise(norm, rng)
    reference = _keras_copy(block)
    x = tf.constant(rng.normal(size=(2, 8, 8, 3)).astype("float32"))
    got = block._stack(x, training=training)
    want = x
    for conv, norm in reference:
        want = tf.nn.relu(norm(conv(want), training=training))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    for ours, (_, ref) in zip(block.norms, reference, strict=True):
        for a, b in zip(ours.get_weights(), ref.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_frozen_or_synchronized_norms_take_the_keras_path():
    rng = np.random.default_rng(7)
    block = SegNetEncoderBlock(4, 1, name="down")
    block.build((None, 6, 6, 3))
    _randomise(block.norms[0], rng)
    x = tf.constant(rng.normal(size=(2, 6, 6, 3)).astype("float32"))
    block.norms[0].trainable = False  # frozen: moving statistics, even with training=True
    before = block.norms[0].get_weights()
    np.testing.assert_allclose(
        block._stack(x, training=True).numpy(), block._stack(x, training=False).numpy()
    )
    for a, b in zip(before, block.norms[0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    synced = SegNetEncoderBlock(4, 1, synchronized_bn=True, name="down_sync")
    synced.build((None, 6, 6, 3))
    assert synced.norms[0].synchronized
    synced.set_weights(block.get_weights())
    block.norms[0].trainable = True
    np.testing.assert_allclose(
        synced._stack(x, training=True).numpy(),
        block._stack(x, training=True).numpy(),
        rtol=1e-4,
        atol=1e-5,
    )


def test_mixed_bfloat16_paths_stay_close_to_float32():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    outputs = {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.config.set_dtype_policy(policy)
        try:
            keras.utils.set_random_seed(0)
            block = SegNetEncoderBlock(4, 2, name="down")
            block.build((None, 8, 8, 3))
            for norm in block.norms:
                _randomise(norm, np.random.default_rng(6))
            outputs[policy] = [
                tf.cast(
                    block._stack(tf.constant(x, block.compute_dtype), training=t), tf.float32
                ).numpy()
                for t in (True, False)
            ]
        finally:
            keras.config.set_dtype_policy("float32")
    for a, b in zip(outputs["float32"], outputs["mixed_bfloat16"], strict=True):
        np.testing.assert_allclose(b, a, atol=0.1 * np.abs(a).max())
