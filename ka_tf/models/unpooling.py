"""Max-pooling that remembers where each maximum came from, and unpooling to there.

SegNet's decoder upsamples by putting each value back at the position of the
maximum its encoder block pooled from (the first maximum of its 2x2 window in
row-major order on ties, as ``tf.nn.max_pool_with_argmax`` and
``torch.nn.MaxPool2d`` pick it). PyTorch keeps pooling indices and scatters.
Here the "switches" a pooling layer hands to its decoder are the pooled-from
activations themselves (gradient stopped), and :class:`MaxUnpool` finds the
positions again from them, in one of two ways that give identical results, ties
and gradients included (``tests/models/test_unpooling.py``):

- in TensorFlow (training, evaluation, Keras inference): ``MaxPoolGrad``, the
  gradient of max-pooling, one oneDNN op that routes each value to its window's
  first maximum (the re-computed max-pool is the encoder's own, merged by
  Grappler);
- inside :func:`portable_unpooling` (what :mod:`ka_tf.export` traces under): a 0/1
  mask of the first maxima built from builtin ops only — max-pool, channel
  concatenation, ``depth_to_space``/``space_to_depth``, equality and
  multiplication — so TFLite (builtin ops) and ONNX run it. It costs about ten
  elementwise passes per block, which is why TensorFlow does not use it (BUILD.md,
  "Performance fixes").
"""

from __future__ import annotations

import contextvars

import keras
from keras import ops

_PORTABLE = contextvars.ContextVar("ka_tf_portable_unpooling", default=False)


# Lower-case: it reads as a function, `with portable_unpooling():` (like tf.name_scope).
class portable_unpooling:
    """Within this context, :class:`MaxUnpool` traces with TFLite/ONNX builtin ops only.

    Models traced inside it (a SavedModel signature, a TFLite conversion) keep that
    graph; the results equal the default ``MaxPoolGrad`` graph exactly. (A class, not
    a generator, so AutoGraph-converted code can enter it too.)
    """

    def __enter__(self) -> None:
        self._token = _PORTABLE.set(True)

    def __exit__(self, *exc: object) -> None:
        _PORTABLE.reset(self._token)


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


def _max_pool2x2(x):
    return ops.max_pool(x, pool_size=2, strides=2, padding="valid")


@keras.saving.register_keras_serializable(package="ka_tf")
class MaxPoolWithSwitches(keras.layers.Layer):
    """2x2/2 max-pooling that also returns the switches for :class:`MaxUnpool`.

    The switches are the pooled-from activations, gradient stopped (the pooling's
    gradient reaches them through ``pooled``).

    Example:
        >>> pooled, switches = MaxPoolWithSwitches()(features)
        >>> restored = MaxUnpool()([pooled, switches])  # same shape as features
    """

    def call(self, inputs):
        return _max_pool2x2(inputs), ops.stop_gradient(inputs)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        half = (None if h is None else h // 2, None if w is None else w // 2)
        return (b, *half, c), tuple(input_shape)


@keras.saving.register_keras_serializable(package="ka_tf")
class MaxUnpool(keras.layers.Layer):
    """Places each value at the first maximum of its 2x2 window; zeros elsewhere.

    Call with ``[values, switches]``: values [B, H, W, C], switches [B, 2H, 2W, C]
    (from :class:`MaxPoolWithSwitches`).
    """

    def call(self, inputs):
        import tensorflow as tf

        values, switches = inputs
        switches = ops.cast(switches, values.dtype)
        pooled = _max_pool2x2(switches)
        if _PORTABLE.get():
            return _upsample2x_nearest(values) * first_max_switches(switches, pooled)
        return tf.raw_ops.MaxPoolGrad(
            orig_input=switches,
            orig_output=pooled,
            grad=values,
            ksize=[1, 2, 2, 1],
            strides=[1, 2, 2, 1],
            padding="VALID",
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])
