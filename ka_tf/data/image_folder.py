"""A folder of the user's own unlabelled images: what a student is amalgamated on.

Every ``.jpg``/``.jpeg``/``.png``/``.webp`` file (any letter case) under the folder,
recursively, in sorted order of the relative path; other files are ignored. Elements
are ``{"image": uint8 [H, W, 3]}`` (grey, palette and RGBA images are converted to
RGB). Images of different sizes need ``size`` before batching.

Corrupt files: every file is opened when the dataset is built (``check="header"``
reads and verifies the header and, for PNG, the chunk checksums; ``check="decode"``
decodes every image, slower but complete). A file that fails is either fatal
(``on_corrupt="error"``, a DataError naming it) or skipped (``on_corrupt="skip"``, one
warning that counts and names the skipped files). Files that fail only when decoded
during iteration are handled the same way.

A validation hold-out without a subfolder: ``holdout="val"`` reads a fixed share
(``holdout_fraction``, default 10%, rounded, at least one image) of the folder's images
and ``holdout="train"`` the rest. The held-out images are those with the lowest hashes of
their relative paths, so the choice is the same in every run and on every machine.

Example:
    >>> ds = ka_tf.data.load("image_folder", "/photos", "all", size=(256, 320),
    ...                      resize_mode="resize_crop", shuffle=True, seed=0)
    >>> val = ka_tf.data.load("image_folder", "/photos", "all", size=(256, 320),
    ...                       holdout="val")
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import tensorflow as tf

from ka_tf.constants import IMAGE
from ka_tf.data import resize
from ka_tf.data.frame_dataset import (
    Frame,
    FrameDataset,
    decode_rgb,
    frame_size,
    relative_label,
)
from ka_tf.errors import ConfigError, DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
ON_CORRUPT = ("error", "skip")
CHECKS = ("header", "decode")
ALL_SPLIT = "all"
HOLDOUTS = ("train", "val")
DEFAULT_HOLDOUT_FRACTION = 0.1
HOLDOUT_RULE = "the round(fraction * n) images with the lowest sha256 of their relative path"


def describe_holdout(folder: str, fraction: float) -> dict[str, Any]:
    """What a hold-out of ``folder`` holds, for reports: counts, fraction and rule (the
    choice is a hash of each relative path, so there is no seed). Counts are None when
    the folder has fewer than two images (loading then says why)."""
    root = os.path.abspath(folder)
    images = find_images(root)[0] if os.path.isdir(root) else []
    held = None
    if len(images) >= 2:
        held = len(split_holdout(images, root, fraction)[1])
    return {
        "images": root,
        "count": len(images),
        "held_out_for_val": held,
        "holdout_fraction": fraction,
        "holdout_rule": HOLDOUT_RULE,
    }


def split_holdout(images: list[str], root: str, fraction: float) -> tuple[list[str], list[str]]:
    """``(rest, held out)``: ``round(fraction × n)`` images (at least one, never all)
    with the lowest hashes of their relative paths are held out; both keep the order.

    Raises:
        DataError: with fewer than two images (nothing to hold out from).
    """
    if len(images) < 2:
        raise DataError(
            f"{root} has {len(images)} image(s): a validation hold-out needs at least 2."
        )

    def position(path: str) -> float:
        name = os.path.relpath(path, root).replace(os.sep, "/")
        return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) / 16**12

    ranked = sorted(images, key=position)
    count = min(max(1, round(fraction * len(images))), len(images) - 1)
    held = set(ranked[:count])
    return [p for p in images if p not in held], [p for p in images if p in held]


def find_images(root: str) -> tuple[list[str], list[str]]:
    """Lists image files under ``root`` recursively, sorted by relative path.

    Returns:
        ``(images, others)``: absolute paths of images, and of the other files found.
    """
    images, others = [], []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in files:
            path = os.path.join(directory, name)
            (images if name.lower().endswith(EXTENSIONS) else others).append(path)
    key = lambda path: os.path.relpath(path, root).replace(os.sep, "/")  # noqa: E731
    return sorted(images, key=key), sorted(others, key=key)


class ImageFolderFrames(FrameDataset):
    """The images under one folder, each a frame of ``{"image"}``."""

    what = "image"
    item = "file"

    def __init__(self, root: str, images: list[str], check: str, on_corrupt: str) -> None:
        self.root = root
        self.where = f" under {root}"
        self.images = images
        self.check = check
        self.on_corrupt = on_corrupt

    def list_frames(self) -> list[Frame]:
        return [{"path": path} for path in self.images]

    def check_frame(self, frame: Frame) -> tuple[tuple[int, int], bool]:
        from PIL import Image

        path = str(frame["path"])
        try:
            hw = resize.image_size(path)
        except DataError as error:  # not even an image header: same advice as a broken body
            raise DataError(f"{error} Or pass on_corrupt='skip' to leave such files out.") from None
        try:
            with Image.open(path) as image:
                if self.check == "decode":
                    image.load()
                else:
                    image.verify()
        except Exception as error:  # PIL raises many types for broken files.
            raise DataError(
                f"corrupt or unreadable image file {path} ({type(error).__name__}: {error}); "
                f"expected a valid image. Remove it or pass on_corrupt='skip'."
            ) from None
        return hw, False

    def decode_frame(self, frame: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {IMAGE: decode_rgb(tf.io.read_file(frame["path"]))}

    def read_frame(self, frame: Frame) -> dict[str, np.ndarray]:
        try:
            return {IMAGE: resize.read_image(str(frame["path"]))}
        except DataError as error:
            raise DataError(f"{error} Or pass on_corrupt='skip'.") from None

    def signature(self, hw) -> dict[str, tf.TensorSpec]:
        return {IMAGE: tf.TensorSpec([*hw, 3], tf.uint8)}

    def frame_label(self, frame: Frame) -> str:
        return relative_label(str(frame["path"]), self.root)


def load_image_folder(
    data_dir: str,
    split: str = ALL_SPLIT,
    *,
    size: tuple[int, int] | None = None,
    resize_mode: str = "resize",
    shuffle: bool = False,
    seed: int = 0,
    on_corrupt: str = "error",
    check: str = "header",
    holdout: str | None = None,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    **unknown: Any,
) -> tf.data.Dataset:
    """Loads every image under a folder as ``{"image": uint8 [H, W, 3]}`` dicts.

    Args:
        data_dir: The folder.
        split: A subfolder name (``data_dir/<split>``) or ``"all"`` for the whole folder.
        size: ``(height, width)`` output size (multiples of 32); required for batching
            images of different sizes.
        resize_mode: ``"resize"``, ``"center_crop"`` or ``"resize_crop"``.
        shuffle: Shuffle the order each epoch (deterministically by ``seed``).
        seed: Seed of the shuffled order.
        on_corrupt: ``"error"`` (DataError naming the file) or ``"skip"`` (warning).
        check: ``"header"`` or ``"decode"``: how thoroughly files are checked up front.
        holdout: ``"val"``: only the held-out share of the images; ``"train"``: all but
            it; None: every image (see the module docstring).
        holdout_fraction: The share held out, in (0, 1).
        **unknown: Rejected with a ConfigError naming the option.

    Returns:
        A ``tf.data.Dataset`` of ``{"image": ...}`` dicts.

    Raises:
        ConfigError: on unknown options or option values.
        DataError: on a missing or empty folder, or a corrupt file with on_corrupt="error".
    """
    if unknown:
        raise ConfigError(
            f"unknown image_folder option(s) {sorted(unknown)}. Expected some of: size, "
            f"resize_mode, shuffle, seed, on_corrupt, check, holdout, holdout_fraction."
        )
    if holdout not in (None, *HOLDOUTS):
        raise ConfigError(
            f"unknown hold-out part. Received: holdout={holdout!r}. Expected one of "
            f"{HOLDOUTS} or None."
        )
    if not 0.0 < holdout_fraction < 1.0:
        raise ConfigError(
            f"holdout_fraction must be in (0, 1). Received: holdout_fraction={holdout_fraction}."
        )
    if on_corrupt not in ON_CORRUPT:
        raise ConfigError(
            f"unknown corrupt-file policy. Received: on_corrupt={on_corrupt!r}. "
            f"Expected one of {ON_CORRUPT}."
        )
    if check not in CHECKS:
        raise ConfigError(f"unknown check. Received: check={check!r}. Expected one of {CHECKS}.")
    data_dir = resize.require_data_dir(data_dir, "image_folder")
    size = resize.validate_resize_options(size, resize_mode, "nearest")
    if not os.path.isdir(data_dir):
        raise DataError(f"image folder {data_dir} does not exist or is not a directory.")
    root = os.path.join(data_dir, split)
    if not os.path.isdir(root):
        if split != ALL_SPLIT:
            raise DataError(
                f"no folder {root} for split={split!r}; pass split='{ALL_SPLIT}' to read every "
                f"image under {data_dir}, or a subfolder name."
            )
        root = data_dir
    images, others = find_images(root)
    if not images:
        examples = ", ".join(os.path.relpath(p, root) for p in others[:3])
        found = f" (found {len(others)} other file(s): {examples})" if others else ""
        raise DataError(
            f"no images under {root}{found}; expected files ending in {', '.join(EXTENSIONS)} "
            f"(any letter case), in any subfolder."
        )
    if holdout is not None:
        rest, held = split_holdout(images, root, holdout_fraction)
        images = held if holdout == "val" else rest
    frames = ImageFolderFrames(root, images, check, on_corrupt)
    checked, _ = frames.checked_frames()
    if size is not None or resize_mode != "resize":
        for frame in checked:
            resize.check_crop_fits(frame_size(frame), size, resize_mode, str(frame["path"]))
    return resize.apply_resize(frames.load(shuffle, seed), size, resize_mode)
