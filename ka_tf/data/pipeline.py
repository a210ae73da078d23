"""Input pipelines: joint augmentation, batching, prefetch, and the images-only view.

Augmentations act on a whole element dict so that labels stay aligned with the
image:

* :func:`flip_left_right` mirrors every map and negates the x component of the
  normals (camera frame: x right, y down, z forward).
* :func:`random_scale_crop` resizes by a random factor ``s`` and crops (or pads)
  back to the original size. Zooming an image is a change of focal length about
  an unmoved camera, so metric z-depth and camera-frame normals keep their values
  per surface point: they are resampled, never rescaled. Labels, depth and
  normals use nearest-neighbour sampling (no blended class ids or depth across
  edges); padding (``s < 1``) gets image 0, label 255 (ignore), depth 0 and normals 0.
* :func:`color_jitter` changes brightness, contrast, saturation and hue of the
  image only.

All randomness is stateless and seeded per element, so a pipeline with a given
``seed`` yields the same batches on every run.
"""

from __future__ import annotations

from typing import Any

import gin
import tensorflow as tf

from ka_tf.constants import IMAGE, TEACHER_TARGET
from ka_tf.errors import ConfigError
from ka_tf.tasks import get_task, task_names


def _task_of(key: str) -> str | None:
    """The task whose rules augment the map ``key``: a label's task, or the task of a
    cached teacher target (``teacher_target/<task>``); None for the image."""
    if key.startswith(TEACHER_TARGET):
        key = key[len(TEACHER_TARGET) :]
    return key if key in task_names() else None


def _pad_value(key: str) -> float:
    """Value given to padded pixels: a label's (or teacher target's) task pad value,
    else 0 (the image)."""
    task = _task_of(key)
    return get_task(task).pad_value if task else 0


def flip_left_right(element: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Mirrors every map of ``element`` horizontally, each label (and cached teacher
    target) by its task's rule (normals get x negated)."""
    out = {}
    for key, value in element.items():
        task = _task_of(key)
        if task:
            out[key] = get_task(task).mirror(value, width_axis=1)
        else:
            out[key] = tf.reverse(value, axis=[1])  # [H, W, ...]: axis 1 is width
    return out


def _resize(value: tf.Tensor, key: str, size: tf.Tensor) -> tf.Tensor:
    if key == IMAGE:
        resized = tf.image.resize(tf.cast(value, tf.float32), size, method="bilinear")
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), value.dtype)
    expanded = value[..., None] if value.shape.rank == 2 else value
    resized = tf.image.resize(expanded, size, method="nearest")
    return resized[..., 0] if value.shape.rank == 2 else resized


def random_scale_crop(
    element: dict[str, tf.Tensor], seed: tf.Tensor, scale_range: tuple[float, float] = (1.0, 1.5)
) -> dict[str, tf.Tensor]:
    """Scales every map by one random factor, then crops/pads back to the input size.

    Args:
        element: Dict of [H, W, ...] maps (``image`` decides the size).
        seed: A stateless seed, int32/int64 [2].
        scale_range: (min, max) zoom factor; values below 1 zoom out (padded).

    Returns:
        The augmented element, same keys, shapes and dtypes.
    """
    height, width = element[IMAGE].shape[0], element[IMAGE].shape[1]
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    scale = tf.random.stateless_uniform([], seeds[0], scale_range[0], scale_range[1])
    new_h = tf.cast(tf.round(height * scale), tf.int32)
    new_w = tf.cast(tf.round(width * scale), tf.int32)
    canvas_h, canvas_w = tf.maximum(new_h, height), tf.maximum(new_w, width)
    top = tf.random.stateless_uniform([], seeds[1], 0, canvas_h - height + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[2], 0, canvas_w - width + 1, dtype=tf.int32)
    out = {}
    for key, value in element.items():
        resized = _resize(value, key, tf.stack([new_h, new_w]))
        pad = [[0, canvas_h - new_h], [0, canvas_w - new_w]] + [[0, 0]] * (value.shape.rank - 2)
        padded = tf.pad(resized, pad, constant_values=tf.cast(_pad_value(key), value.dtype))
        cropped = padded[top : top + height, left : left + width]
        out[key] = tf.ensure_shape(cropped, value.shape)
    return out


def color_jitter(
    image: tf.Tensor,
    seed: tf.Tensor,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
    hue: float = 0.03,
) -> tf.Tensor:
    """Random brightness/contrast/saturation/hue on a uint8 [H, W, 3] image."""
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    x = tf.cast(image, tf.float32) / 255.0
    x = tf.image.stateless_random_brightness(x, brightness, seeds[0])
    x = tf.image.stateless_random_contrast(x, 1.0 - contrast, 1.0 + contrast, seeds[1])
    x = tf.image.stateless_random_saturation(x, 1.0 - saturation, 1.0 + saturation, seeds[2])
    x = tf.image.stateless_random_hue(x, hue, seeds[3])
    return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)


@gin.configurable
def augment_element(
    element: dict[str, tf.Tensor],
    seed: tf.Tensor,
    flip: bool = True,
    scale_range: tuple[float, float] = (1.0, 1.5),
    jitter: bool = True,
    crop_size: tuple[int, int] | None = None,
) -> dict[str, tf.Tensor]:
    """The training augmentation: random flip, scale-and-crop, colour jitter, crop.

    Args:
        element: One element (dict of maps).
        seed: Stateless seed [2] of this element.
        flip: Mirror with probability 1/2.
        scale_range: Zoom range for :func:`random_scale_crop`; (1, 1) disables it.
        jitter: Apply :func:`color_jitter` to the image.
        crop_size: ``(height, width)``: finally keep one random window of this size of
            every map (fully convolutional models train on windows and are evaluated
            on whole frames: the zoo demo amalgamates on 128×128 windows of 128×256
            frames). None keeps the whole frame.

    Raises:
        ConfigError: a zoom of an element that carries cached teacher targets
            (``teacher_target/<task>``).
    """
    zooms = scale_range[0] != 1.0 or scale_range[1] != 1.0
    if zooms and any(key.startswith(TEACHER_TARGET) for key in element):
        raise ConfigError(
            f"augment_element.scale_range={tuple(scale_range)} zooms, and this pipeline "
            f"carries cached teacher targets: a teacher's output on a zoomed image is not "
            f"its output zoomed (depth above all), so zoomed targets would mislead the "
            f"student. Bind transfer/augment_element.scale_range = (1.0, 1.0), or "
            f"amalgamate.cache_targets = False."
        )
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)
    if flip:
        coin = tf.random.stateless_uniform([], seeds[0]) < 0.5
        element = tf.cond(coin, lambda: flip_left_right(element), lambda: dict(element))
    if zooms:
        element = random_scale_crop(element, seeds[1], scale_range)
    if jitter:
        element = dict(element)
        element[IMAGE] = color_jitter(element[IMAGE], seeds[2])
    if crop_size is not None:
        # Its own seed, so that the flip/scale/jitter of a seed stay what they were.
        window_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 3)
        element = random_window(element, window_seed, crop_size)
    return element


def random_window(
    element: dict[str, tf.Tensor], seed: tf.Tensor, size: tuple[int, int]
) -> dict[str, tf.Tensor]:
    """One random ``size`` window, at the same place in every map of ``element``.

    Raises:
        ConfigError: ``size`` is larger than the frames (their static size), or not
            a multiple of 32 (the models' stride).
    """
    height, width = (int(v) for v in size)
    frame_h, frame_w = element[IMAGE].shape[0], element[IMAGE].shape[1]
    if height % 32 or width % 32 or height < 32 or width < 32:
        raise ConfigError(
            f"augment_element.crop_size must be positive multiples of 32. Received: "
            f"crop_size={tuple(size)}."
        )
    if frame_h is not None and frame_w is not None and (height > frame_h or width > frame_w):
        raise ConfigError(
            f"augment_element.crop_size={tuple(size)} is larger than the frames "
            f"({frame_h}, {frame_w}). Pass a smaller window or None."
        )
    shape = tf.shape(element[IMAGE])
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    top = tf.random.stateless_uniform([], seeds[0], 0, shape[0] - height + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[1], 0, shape[1] - width + 1, dtype=tf.int32)
    out = {}
    for key, value in element.items():
        window = value[top : top + height, left : left + width]
        out[key] = tf.ensure_shape(window, [height, width, *value.shape[2:]])
    return out


def images_only_view(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Keeps only ``image`` of each element (what amalgamation trains on)."""
    return dataset.map(lambda element: {IMAGE: element[IMAGE]})


@gin.configurable
def make_dataset(
    name: str,
    data_dir: str,
    split: str,
    batch_size: int,
    *,
    training: bool,
    images_only: bool = False,
    augment: bool = True,
    shuffle_buffer: int = 256,
    seed: int = 0,
    repeat: bool | None = None,
    load_options: dict[str, Any] | None = None,
    teacher_targets: Any = None,
) -> tf.data.Dataset:
    """The input pipeline trainers and evaluators call: load, (augment), batch, prefetch.

    Args:
        name: Dataset name for :func:`ka_tf.data.load`.
        data_dir: Its root directory.
        split: The split to read.
        batch_size: Elements per batch.
        training: Shuffle, augment and (by default) repeat; drop the last partial batch.
        images_only: Yield ``{"image"}`` only (labels are not even decoded).
        augment: With ``training``, apply :func:`augment_element` (gin-configurable).
        shuffle_buffer: Shuffle buffer size when training.
        seed: Seed of shuffling and augmentation.
        repeat: Repeat forever; defaults to ``training``.
        load_options: Extra options for the loader.
        teacher_targets: A :class:`~ka_tf.amalgamation.target_cache.TargetCache` of
            this split: each element gets its cached teacher targets
            (``teacher_target/<task>``) before augmentation, which moves them with
            the image (the amalgamation passes it; not a gin setting).

    Returns:
        A dataset of dict batches (``image`` uint8 [B, H, W, 3], ...).

    Raises:
        ConfigError: on a non-positive batch size or shuffle buffer.
    """
    from ka_tf.data import load
    from ka_tf.data.registry import accepts_option, with_sharding

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1. Received: batch_size={batch_size}.")
    if training and shuffle_buffer < 1:
        raise ConfigError(
            f"shuffle_buffer must be >= 1. Received: shuffle_buffer={shuffle_buffer}."
        )
    options = dict(load_options or {})
    if images_only and accepts_option(name, "images_only"):
        options["images_only"] = True  # labels are not even read
    dataset = load(name, data_dir=data_dir, split=split, **options)
    if images_only:
        dataset = images_only_view(dataset)
    repeat = training if repeat is None else repeat
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if teacher_targets is not None:
        dataset = dataset.map(teacher_targets.attach, num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            # Graph ops only (tf.cond), so no AutoGraph: its conversion would also wrap
            # the ConfigError of a bad setting in a StagingError.
            tf.autograph.experimental.do_not_convert(augment_element),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return with_sharding(dataset.prefetch(tf.data.AUTOTUNE), name)
