"""A foreign teacher's declared input convention, applied inside the TensorFlow graph."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from ka_tf.errors import ConfigError

CHANNEL_ORDERS = ("rgb", "bgr")
LAYOUTS = ("nhwc", "nchw")
IMAGE_MAX = "image_max"  # divide each image by its own maximum (U²-Net's convention)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How ka_tf's images (float RGB ``[B, H, W, 3]`` in 0..255) become a model's input.

    Applied in this order: resize, scale, ``(x - mean) / std``, channel order, layout.

    Attributes:
        input_size: ``(height, width)`` the model takes (bilinear resize); None: the
            image's own size (a fully convolutional model).
        scale: A factor (``1/255`` for [0, 1] inputs; 1 for 0..255), or
            ``"image_max"`` to divide each image by its own maximum.
        mean: Per-channel mean subtracted after scaling (RGB order).
        std: Per-channel std divided by after the mean (RGB order).
        channel_order: ``"rgb"`` or ``"bgr"`` (what the model reads).
        layout: ``"nhwc"`` or ``"nchw"`` (what the model reads; outputs are read in the
            same layout).
    """

    input_size: tuple[int, int] | None = None
    scale: float | str = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: str = "rgb"
    layout: str = "nhwc"

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise ConfigError(
                f"teacher_spec.channel_order must be one of {CHANNEL_ORDERS}. "
                f"Received: {self.channel_order!r}."
            )
        if self.layout not in LAYOUTS:
            raise ConfigError(
                f"teacher_spec.layout must be one of {LAYOUTS}. Received: {self.layout!r}."
            )
        if isinstance(self.scale, str) and self.scale != IMAGE_MAX:
            raise ConfigError(
                f"teacher_spec.scale must be a number or {IMAGE_MAX!r}. Received: {self.scale!r}."
            )
        if not isinstance(self.scale, str) and not float(self.scale) > 0:
            raise ConfigError(f"teacher_spec.scale must be > 0. Received: {self.scale}.")
        for name in ("mean", "std"):
            if len(getattr(self, name)) != 3:
                raise ConfigError(
                    f"teacher_spec.{name} must have 3 values (R, G, B). Received: "
                    f"{getattr(self, name)}."
                )
        if any(not float(s) > 0 for s in self.std):
            raise ConfigError(f"teacher_spec.std must be > 0. Received: {self.std}.")
        if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 1):
            raise ConfigError(
                f"teacher_spec.input_size must be (height, width). Received: {self.input_size}."
            )

    @classmethod
    def create(
        cls,
        input_size: Sequence[int] | None = None,
        scale: float | str = 1.0,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        channel_order: str = "rgb",
        layout: str = "nhwc",
    ) -> Preprocessing:
        """A Preprocessing from lists (gin passes lists), normalised to tuples."""
        return cls(
            None if input_size is None else (int(input_size[0]), int(input_size[1])),
            scale if isinstance(scale, str) else float(scale),
            tuple(float(m) for m in mean),
            tuple(float(s) for s in std),
            channel_order,
            layout,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (in reports and the output cache's key)."""
        return dataclasses.asdict(self)

    def apply(self, images: tf.Tensor) -> tf.Tensor:
        """The model's float32 input for float RGB 0..255 ``images`` ``[B, H, W, 3]``."""
        x = tf.cast(images, tf.float32)
        if self.input_size is not None:
            x = tf.image.resize(x, self.input_size, method="bilinear", antialias=True)
        if self.scale == IMAGE_MAX:
            x = x / tf.maximum(tf.reduce_max(x, axis=[1, 2, 3], keepdims=True), 1e-6)
        else:
            x = x * float(self.scale)
        x = (x - tf.constant(self.mean, tf.float32)) / tf.constant(self.std, tf.float32)
        if self.channel_order == "bgr":
            x = x[..., ::-1]
        if self.layout == "nchw":
            x = tf.transpose(x, [0, 3, 1, 2])
        return x
