"""The per-task channel-coding gate that "projects" shared features to one task."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ka_tf")
class ChannelCoding(keras.layers.Layer):
    """SE-style channel gate: global average pool → 1x1 C→max(16, C/4) → ReLU → 1x1 → gate.

    The gate is ``gate_scale * sigmoid(z)``. With ``gate_scale=2`` (default) and the
    last projection zero-initialised the module starts as the identity, so a student
    initialised from a teacher starts exactly at that teacher; ``gate_scale=1`` is the
    paper's plain sigmoid (a 0.5 scale at initialisation).

    With ``out_channels`` different from ``channels`` the gated feature then goes
    through a 1×1 *adaptor* (a bias-free linear map per pixel) to ``out_channels``:
    the channel coding of a student narrower (or wider) than its teacher, so the
    block-wise projection still runs through the teacher's frozen decoder. The
    adaptor is a training-time part: the assembled student keeps only the gate
    (:meth:`gate_weights`). It starts as the identity embedding (student channel i to
    teacher channel i, the rest zero), which is where a student channel-sliced from
    the teacher (:func:`~ka_tf.amalgamation.student_builder.build_blockwise_student`)
    already is.

    Args:
        channels: Channels of the feature it gates.
        out_channels: Channels it outputs (default: ``channels``, no adaptor).
        reduction: Hidden width is ``max(min_hidden, channels // reduction)``.
        min_hidden: Lower bound of the hidden width.
        gate_scale: Multiplier of the sigmoid gate.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        min_hidden: int = 16,
        gate_scale: float = 2.0,
        out_channels: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.out_channels = int(out_channels or channels)
        self.reduction = int(reduction)
        self.min_hidden = int(min_hidden)
        self.gate_scale = float(gate_scale)
        hidden = max(self.min_hidden, self.channels // self.reduction)
        self.squeeze = keras.layers.Dense(hidden, activation="relu", name="squeeze")
        self.excite = keras.layers.Dense(
            self.channels, kernel_initializer="zeros", bias_initializer="zeros", name="excite"
        )
        self.adaptor = (
            keras.layers.Dense(
                self.out_channels,
                use_bias=False,
                kernel_initializer="identity",  # channel i → teacher channel i
                name="adaptor",
            )
            if self.out_channels != self.channels
            else None
        )

    def build(self, input_shape):
        self.squeeze.build((input_shape[0], self.channels))
        self.excite.build((input_shape[0], self.squeeze.units))
        if self.adaptor is not None:
            self.adaptor.build((None, self.channels))
        self.built = True

    def call(self, inputs):
        pooled = ops.mean(inputs, axis=(1, 2))
        gate = self.gate_scale * ops.sigmoid(self.excite(self.squeeze(pooled)))
        gated = inputs * ops.cast(gate[:, None, None, :], inputs.dtype)
        return gated if self.adaptor is None else self.adaptor(gated)

    def gate_weights(self) -> list:
        """The gate's weights without the adaptor's (what a student's own gate copies)."""
        return [*self.squeeze.get_weights(), *self.excite.get_weights()]

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.out_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "reduction": self.reduction,
            "min_hidden": self.min_hidden,
            "gate_scale": self.gate_scale,
            "out_channels": self.out_channels,
        }
