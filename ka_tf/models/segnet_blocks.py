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
            x = conv(x)
            if self.batch_norm:
                x = self.norms[i](x, training=training)
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
