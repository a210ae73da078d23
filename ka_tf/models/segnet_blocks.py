"""SegNet encoder and decoder blocks (VGG convolutions + switch pooling/unpooling)."""

from __future__ import annotations

import keras
from keras import ops

from ka_tf.models.unpooling import MaxPoolWithSwitches, MaxUnpool


def _conv(filters: int, name: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(filters, 3, padding="same", name=name)


def _norm(name: str, synchronized: bool) -> keras.layers.BatchNormalization:
    # PyTorch BatchNorm2d defaults: eps 1e-5, momentum 0.1 (= Keras momentum 0.9).
    return keras.layers.BatchNormalization(
        epsilon=1e-5, momentum=0.9, synchronized=synchronized, name=name
    )


def batch_norm_fused_training(inputs, norm: keras.layers.BatchNormalization):
    """``norm(inputs, training=True)`` for NHWC ``inputs``, as one ``FusedBatchNormV3`` op.

    Same arithmetic as Keras's training pass, including its biased batch variance in
    the moving-variance update, and the same variables updated; one fused op and its
    fused gradient instead of ``moments`` plus about ten elementwise ops (the A/B in
    BUILD.md, "Performance fixes"). For a plain (not synchronized) BatchNormalization
    over the last axis; :meth:`_ConvStack._stack` calls the layer itself otherwise.
    """
    import tensorflow as tf

    channels = inputs.shape[-1]
    outputs, mean, corrected_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=inputs,
        scale=norm.gamma if norm.scale else tf.ones([channels]),
        offset=norm.beta if norm.center else tf.zeros([channels]),
        mean=tf.zeros([0]),
        variance=tf.zeros([0]),
        epsilon=norm.epsilon,
        exponential_avg_factor=1.0,
        data_format="NHWC",
        is_training=True,
    )
    # The op normalises with the biased batch variance but returns the Bessel-corrected
    # one; Keras's moving variance averages the biased one.
    count = ops.cast(ops.size(inputs) // channels, "float32")
    variance = ops.stop_gradient(corrected_variance) * (count - 1.0) / count
    momentum = norm.momentum
    norm.moving_mean.assign(
        norm.moving_mean * momentum + ops.stop_gradient(mean) * (1.0 - momentum)
    )
    norm.moving_variance.assign(norm.moving_variance * momentum + variance * (1.0 - momentum))
    return outputs


def _fusable(norm: keras.layers.BatchNormalization) -> bool:
    return not norm.synchronized and not norm.renorm and norm.axis in (-1, 3)


def conv_batch_norm_folded(
    inputs, conv: keras.layers.Conv2D, norm: keras.layers.BatchNormalization
):
    """``norm(conv(inputs))`` in inference mode, as one convolution with BN folded in.

    The kernel is scaled by ``gamma / sqrt(moving_variance + eps)`` per output channel
    and the bias shifted to match, each call (a few weight-sized ops), so oneDNN runs
    one fused conv + bias (+ the following ReLU) instead of a conv and four elementwise
    passes over the activation (the A/B in BUILD.md). Gradients reach
    ``inputs``, the conv and ``gamma``/``beta`` exactly as through the unfolded pair.
    """
    import tensorflow as tf

    # BatchNorm variables are read in float32 (Keras does not autocast them); the conv's
    # are read in the compute dtype, as Conv2D itself reads them.
    scale = norm.moving_variance + norm.epsilon
    scale = ops.rsqrt(scale) if not norm.scale else norm.gamma * ops.rsqrt(scale)
    kernel = ops.cast(conv.kernel, "float32") * scale
    bias = -norm.moving_mean * scale
    if conv.use_bias:
        bias = bias + ops.cast(conv.bias, "float32") * scale
    if norm.center:
        bias = bias + norm.beta
    outputs = tf.nn.conv2d(
        inputs,
        ops.cast(kernel, inputs.dtype),
        strides=conv.strides,
        padding=conv.padding.upper(),
        dilations=conv.dilation_rate,
    )
    return tf.nn.bias_add(outputs, ops.cast(bias, inputs.dtype))


class _ConvStack(keras.layers.Layer):
    """conv3x3 (+ BN) + ReLU, repeated, with the widths given."""

    def __init__(self, widths, batch_norm=True, synchronized_bn=False, **kwargs):
        super().__init__(**kwargs)
        self.widths = [int(w) for w in widths]
        self.batch_norm = batch_norm
        self.synchronized_bn = synchronized_bn
        self.convs = [_conv(w, f"conv{i}") for i, w in enumerate(self.widths)]
        self.norms = (
            [_norm(f"bn{i}", synchronized_bn) for i in range(len(self.widths))]
            if batch_norm
            else []
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for i, conv in enumerate(self.convs):
            conv.build(shape)
            shape = (*shape[:-1], self.widths[i])
            if self.batch_norm:
                self.norms[i].build(shape)
        self.built = True

    def _stack(self, x, training=None):
        for i, conv in enumerate(self.convs):
            norm = self.norms[i] if self.batch_norm else None
            if norm is None:
                x = conv(x)
            elif not (training and norm.trainable):  # inference: folded into the conv
                x = conv_batch_norm_folded(x, conv, norm)
            elif _fusable(norm):
                x = batch_norm_fused_training(conv(x), norm)
            else:
                x = norm(conv(x), training=True)
            x = ops.relu(x)
        return x

    def get_config(self):
        return {
            **super().get_config(),
            "widths": self.widths,
            "batch_norm": self.batch_norm,
            "synchronized_bn": self.synchronized_bn,
        }


@keras.saving.register_keras_serializable(package="ka_tf")
class SegNetEncoderBlock(_ConvStack):
    """``num_convs`` x (conv3x3 + BN + ReLU) then 2x2 max-pool with switches.

    Returns ``(pooled, switches)``.
    """

    def __init__(self, filters: int, num_convs: int, batch_norm: bool = True, **kwargs):
        kwargs.pop("widths", None)
        super().__init__([filters] * num_convs, batch_norm=batch_norm, **kwargs)
        self.filters = int(filters)
        self.num_convs = int(num_convs)
        self.pool = MaxPoolWithSwitches(name="pool")

    def call(self, inputs, training=None):
        return self.pool(self._stack(inputs, training=training))

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        full = (b, h, w, self.filters)
        half = (b, None if h is None else h // 2, None if w is None else w // 2, self.filters)
        return half, full

    def get_config(self):
        config = super().get_config()
        config.pop("widths")
        return {**config, "filters": self.filters, "num_convs": self.num_convs}


@keras.saving.register_keras_serializable(package="ka_tf")
class SegNetDecoderBlock(_ConvStack):
    """Max-unpooling by the encoder's switches, then convs mirroring the encoder block.

    ``num_convs - 1`` convs keep ``in_filters``; the last goes to ``out_filters``. With
    ``out_filters=None`` (the outermost block, up1) the last conv is left to the task
    head, so the block has ``num_convs - 1`` convs. Call with ``[features, switches]``.
    """

    def __init__(
        self,
        in_filters: int,
        out_filters: int | None,
        num_convs: int,
        batch_norm: bool = True,
        **kwargs,
    ):
        kwargs.pop("widths", None)
        widths = [in_filters] * (num_convs - 1) + ([out_filters] if out_filters else [])
        super().__init__(widths, batch_norm=batch_norm, **kwargs)
        self.in_filters = int(in_filters)
        self.out_filters = None if out_filters is None else int(out_filters)
        self.num_convs = int(num_convs)
        self.unpool = MaxUnpool(name="unpool")

    def build(self, input_shape):
        super().build(input_shape[1])

    def call(self, inputs, training=None):
        features, switches = inputs
        return self._stack(self.unpool([features, switches]), training=training)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[1])
        return (*shape[:-1], self.out_filters or self.in_filters)

    def get_config(self):
        config = super().get_config()
        config.pop("widths")
        return {
            **config,
            "in_filters": self.in_filters,
            "out_filters": self.out_filters,
            "num_convs": self.num_convs,
        }


def build_encoder_blocks(
    widths, convs, batch_norm: bool, synchronized_bn: bool, prefix: str = ""
) -> list[SegNetEncoderBlock]:
    """The five encoder blocks down1..down5."""
    return [
        SegNetEncoderBlock(
            widths[i],
            convs[i],
            batch_norm,
            synchronized_bn=synchronized_bn,
            name=f"{prefix}down{i + 1}",
        )
        for i in range(len(widths))
    ]


def build_decoder_blocks(
    widths, convs, batch_norm: bool, synchronized_bn: bool, prefix: str = "", start: int = 0
) -> list[SegNetDecoderBlock]:
    """Decoder blocks in application order (up5 .. up1), from candidate ``start`` on.

    Block ``k`` (0-based, k = 0 is up5) consumes the feature at branch candidate ``k``
    and the switches of encoder block ``5 - k``.
    """
    blocks = []
    for k in range(start, len(widths)):
        j = len(widths) - k  # up-block number: 5 .. 1
        out = widths[j - 2] if j > 1 else None
        blocks.append(
            SegNetDecoderBlock(
                widths[j - 1],
                out,
                convs[j - 1],
                batch_norm,
                synchronized_bn=synchronized_bn,
                name=f"{prefix}up{j}",
            )
        )
    return blocks


def switches_for(block_index: int, switches: list) -> object:
    """The switches decoder block ``block_index`` (0 = up5) unpools with."""
    return switches[len(switches) - 1 - block_index]
