"""Resizing, cropping and ordering helpers shared by the real-data loaders.

Every loader turns its ``size``/``resize_mode``/``depth_method`` options into one
call of :func:`resize_example` per element, so that all datasets treat each key the
same way, each label by its task's rule (:meth:`ka_tf.tasks.Task.resize_label`):

- ``image``: bilinear (antialiased when shrinking), rounded back to uint8.
- ``semseg``: nearest neighbour, so no label is ever blended (255 stays 255).
- ``depth``: nearest neighbour (default) or ``"masked"``: bilinear over valid pixels
  only (``sum(w·d) / sum(w)``), and 0 where less than half of the footprint is
  valid, so invalid depth never bleeds into valid depth and stays 0.
- ``normals``: bilinear over valid (non-zero) pixels, then renormalised to unit
  length; pixels with less than half a valid footprint stay 0.
- a user's task: its own rule (nearest neighbour by default).

Modes (``resize_mode``): ``"resize"`` stretches to ``size``; ``"center_crop"`` cuts
the centre ``size`` window without scaling; ``"resize_crop"`` scales by one factor
(keeping the aspect ratio) until ``size`` is covered, then cuts the centre.

The module also holds the small file helpers the loaders share: reading image
headers and (with PIL, where ``tf.io`` cannot) pixels, with
:class:`~ka_tf.errors.DataError` on bad files.

Example:
    >>> size = validate_size((256, 320))
    >>> ds = ds.map(lambda ex: resize_example(ex, size, mode="resize_crop"))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from ka_tf.constants import IMAGE, SIZE_DIVISOR
from ka_tf.errors import ConfigError, DataError
from ka_tf.tasks import get_task, task_names

RESIZE_MODES = ("resize", "center_crop", "resize_crop")
DEPTH_METHODS = ("nearest", "masked")


def validate_size(size: Sequence[int] | None, option: str = "size") -> tuple[int, int] | None:
    """Checks a ``(height, width)`` training size; ``None`` means "keep the native size".

    Args:
        size: Two positive ints, each a multiple of :data:`~ka_tf.constants.SIZE_DIVISOR`.
        option: The option or flag name used in the error message.

    Returns:
        ``(height, width)`` as ints, or ``None``.

    Raises:
        ConfigError: if ``size`` is not two positive multiples of 32.
    """
    if size is None:
        return None
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{option} must be (height, width). Received: {option}={size!r}."
        ) from None
    if height <= 0 or width <= 0 or height % SIZE_DIVISOR or width % SIZE_DIVISOR:
        raise ConfigError(
            f"{option} sides must be positive multiples of {SIZE_DIVISOR} (every model "
            f"downsamples 5 times by 2). Received: {option}={tuple(size)}. Expected e.g. "
            f"({max(SIZE_DIVISOR, height // SIZE_DIVISOR * SIZE_DIVISOR)}, "
            f"{max(SIZE_DIVISOR, width // SIZE_DIVISOR * SIZE_DIVISOR)})."
        )
    return height, width


def require_data_dir(data_dir: str | None, dataset: str) -> str:
    """Returns ``data_dir``, or raises ConfigError when it was never set (None or empty).

    The dataset gin files require ``DATA_DIR`` (``%gin.REQUIRED``); this catches a
    loader called from Python with no data directory.
    """
    if not data_dir:
        raise ConfigError(
            f"no data directory given for dataset {dataset!r} (data_dir={data_dir!r}). Set it "
            f"with --gin_bindings=\"DATA_DIR = '/path/to/{dataset}'\" or --data_dir."
        )
    return str(data_dir)


def validate_resize_options(
    size: Sequence[int] | None, resize_mode: str, depth_method: str
) -> tuple[int, int] | None:
    """Checks the three shared resize options and returns the validated size."""
    if resize_mode not in RESIZE_MODES:
        raise ConfigError(
            f"unknown resize mode. Received: resize_mode={resize_mode!r}. "
            f"Expected one of {RESIZE_MODES}."
        )
    if depth_method not in DEPTH_METHODS:
        raise ConfigError(
            f"unknown depth resize method. Received: depth_method={depth_method!r}. "
            f"Expected one of {DEPTH_METHODS}."
        )
    return validate_size(size)


def check_crop_fits(
    source_hw: tuple[int, int], size: tuple[int, int] | None, resize_mode: str, source: str
) -> None:
    """Raises ConfigError if ``center_crop`` asks for a window larger than the image."""
    if size is None or resize_mode != "center_crop":
        return
    if source_hw[0] < size[0] or source_hw[1] < size[1]:
        raise ConfigError(
            f"resize_mode='center_crop' needs images at least as large as size={size}, but "
            f"{source} is {source_hw[0]}x{source_hw[1]}. Use resize_mode='resize_crop' or "
            f"'resize', or a smaller size."
        )


def _resize_image(image: tf.Tensor, hw: tf.Tensor) -> tf.Tensor:
    resized = tf.image.resize(tf.cast(image, tf.float32), hw, method="bilinear", antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), image.dtype)


def _dense_keys(example: dict[str, tf.Tensor]) -> list[str]:
    """The keys resized with the image: the image and every registered task's label."""
    return [key for key in example if key == IMAGE or key in task_names()]


def _resize_all(example: dict[str, tf.Tensor], hw: tf.Tensor, depth_method: str) -> dict:
    out = dict(example)
    for key in _dense_keys(example):
        if key == IMAGE:
            out[key] = _resize_image(out[key], hw)
        else:
            out[key] = get_task(key).resize_label(out[key], hw, depth_method)
    return out


def _center_crop(example: dict[str, tf.Tensor], size: tuple[int, int]) -> dict:
    reference = example[IMAGE] if IMAGE in example else next(iter(example.values()))
    shape = tf.shape(reference)
    top = (shape[0] - size[0]) // 2
    left = (shape[1] - size[1]) // 2
    out = dict(example)
    for key in _dense_keys(example):
        out[key] = out[key][top : top + size[0], left : left + size[1]]
    return out


def resize_example(
    example: dict[str, tf.Tensor],
    size: tuple[int, int],
    mode: str = "resize",
    depth_method: str = "nearest",
) -> dict[str, tf.Tensor]:
    """Resizes or crops every dense key of one example to ``size`` (see module doc).

    Args:
        example: A dict with any of ``image``/``semseg``/``depth``/``normals`` ([H, W, ...]);
            other keys pass through unchanged.
        size: ``(height, width)``, already validated by :func:`validate_size`.
        mode: One of :data:`RESIZE_MODES`.
        depth_method: One of :data:`DEPTH_METHODS`.

    Returns:
        A new dict whose dense values are [size[0], size[1], ...] with their dtypes kept.
    """
    height, width = size
    if mode == "resize":
        out = _resize_all(example, tf.constant([height, width]), depth_method)
    elif mode == "center_crop":
        out = _center_crop(example, size)
    elif mode == "resize_crop":
        reference = example[IMAGE] if IMAGE in example else next(iter(example.values()))
        source = tf.cast(tf.shape(reference)[:2], tf.float64)
        scale = tf.reduce_max(tf.constant([height, width], tf.float64) / source)
        # Round to the nearest pixel, but never below the target (float error at exact fits).
        hw = tf.maximum(
            tf.cast(tf.round(source * scale), tf.int32), tf.constant([height, width], tf.int32)
        )
        out = _center_crop(_resize_all(example, hw, depth_method), size)
    else:
        raise ConfigError(
            f"unknown resize mode. Received: resize_mode={mode!r}. Expected one of {RESIZE_MODES}."
        )
    for key in _dense_keys(example):
        out[key] = tf.ensure_shape(out[key], [height, width, *example[key].shape[2:]])
    return out


def apply_resize(
    dataset: tf.data.Dataset,
    size: tuple[int, int] | None,
    resize_mode: str = "resize",
    depth_method: str = "nearest",
) -> tf.data.Dataset:
    """Maps :func:`resize_example` over ``dataset`` (unchanged when ``size`` is None)."""
    if size is None:
        return dataset
    return dataset.map(
        lambda example: resize_example(example, size, resize_mode, depth_method),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


# === Image files ===


def image_size(path: str, what: str = "image") -> tuple[int, int]:
    """Reads (height, width) from an image file's header, without decoding the pixels.

    Raises:
        DataError: if the file is missing or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.height, image.width
    except FileNotFoundError:
        raise DataError(f"missing {what} file {path}.") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(
            f"corrupt or unreadable {what} file {path} ({error}); expected a valid image. "
            f"Re-extract or re-download it."
        ) from None


def read_image(path: str, what: str = "image", mode: str | None = "RGB") -> np.ndarray:
    """Decodes an image file to a numpy array, converted to ``mode`` unless ``None``.

    Raises:
        DataError: if the file is missing, truncated or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if mode is not None and image.mode != mode:
                image = image.convert(mode)
            return np.asarray(image)
    except FileNotFoundError:
        raise DataError(f"missing {what} file {path}.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"corrupt or unreadable {what} file {path} ({error}); expected a valid image. "
            f"Re-extract or re-download it."
        ) from None
