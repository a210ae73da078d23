"""Max-pooling that remembers where each maximum came from, and unpooling to there.

SegNet's decoder upsamples by putting each value back at the position of the
maximum its encoder block pooled from. PyTorch does this with pooling indices and
a scatter; here the "switches" are a 0/1 mask of the input's shape with exactly one
1 per 2x2 window (the first maximum in row-major order, the same tie rule as
``tf.nn.max_pool_with_argmax`` and ``torch.nn.MaxPool2d``), built from builtin ops
only — max-pool, channel concatenation, ``depth_to_space``/``space_to_depth``,
equality and multiplication — so exported models run on TFLite builtins and ONNX.

Unpooling is then nearest upsampling of the pooled values times the mask.
"""

from __future__ import annotations

import keras
from keras import ops


def _upsample2x_nearest(x):
    """Repeats every pixel into a 2x2 block: concat 4 copies, then depth_to_space."""
    import tensorflow as tf

    return tf.nn.depth_to_space(ops.concatenate([x, x, x, x], axis=-1), 2)


def first_max_switches(inputs, pooled):
    """0/1 mask [B, H, W, C]: 1 at the first maximum of each 2x2 window of ``inputs``."""
    import tensorflow as tf

    equal = ops.cast(ops.equal(inputs, _upsample2x_nearest(pooled)), inputs.dtype)
    # space_to_depth puts window position k = 2*dy + dx in channel block k.
    m0, m1, m2, m3 = ops.split(tf.nn.space_to_depth(equal, 2), 4, axis=-1)
    n0 = 1.0 - m0
    n01 = n0 * (1.0 - m1)
    first = ops.concatenate([m0, m1 * n0, m2 * n01, m3 * n01 * (1.0 - m2)], axis=-1)
    return tf.nn.depth_to_space(first, 2)


@keras.saving.register_keras_serializable(package="ka_tf")
class MaxPoolWithSwitches(keras.layers.Layer):
    """2x2/2 max-pooling that also returns the switches mask for :class:`MaxUnpool`.

    Example:
        >>> pooled, switches = MaxPoolWithSwitches()(features)
        >>> restored = MaxUnpool()([pooled, switches])  # same shape as features
    """

    def call(self, inputs):
        pooled = ops.max_pool(inputs, pool_size=2, strides=2, padding="valid")
        return pooled, ops.stop_gradient(first_max_switches(inputs, pooled))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        half = (None if h is None else h // 2, None if w is None else w // 2)
        return (b, *half, c), tuple(input_shape)


@keras.saving.register_keras_serializable(package="ka_tf")
class MaxUnpool(keras.layers.Layer):
    """Places each value at the switch position of its 2x2 window; zeros elsewhere.

    Call with ``[values, switches]``: values [B, H, W, C], switches [B, 2H, 2W, C].
    """

    def call(self, inputs):
        values, switches = inputs
        return _upsample2x_nearest(values) * ops.cast(switches, values.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])
