"""Cityscapes in its official folder layout, with depth from disparity.

Expected under ``data_dir`` (the extracted ``leftImg8bit_trainvaltest.zip``,
``gtFine_trainvaltest.zip``, ``disparity_trainvaltest.zip`` and
``camera_trainvaltest.zip`` from https://www.cityscapes-dataset.com/downloads/)::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png   RGB
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png    8-bit label ids
    disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png       16-bit disparity
    camera/<split>/<city>/<city>_<seq>_<frame>_camera.json            calibration

Label ids become the 19 train ids of the official table
(:data:`ka_tf.data.label_maps.CITYSCAPES_LABELS`), everything else 255. A disparity
pixel ``p > 0`` means ``(p - 1) / 256`` pixels and ``p = 0`` is invalid; depth is
``extrinsic.baseline * intrinsic.fx / disparity`` metres, 0 where invalid or where
the disparity is not positive.

Example:
    >>> ds = ka_tf.data.load("cityscapes", "/data/cityscapes", "val", size=(256, 512))
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from ka_tf.constants import DEPTH, IMAGE, SEMSEG
from ka_tf.data import label_maps, resize
from ka_tf.data.frame_dataset import Frame, FrameDataset, decode_grey, decode_rgb
from ka_tf.errors import ConfigError, DataError

SPLITS = ("train", "val", "test", "train_extra")
IMAGE_SUFFIX = "_leftImg8bit.png"
_FOLDERS = {
    "label": ("gtFine", "_gtFine_labelIds.png"),
    "disparity": ("disparity", "_disparity.png"),
    "camera": ("camera", "_camera.json"),
}


def frame_paths(data_dir: str, split: str, image_path: str) -> dict[str, str]:
    """The label, disparity and camera paths that belong to one ``leftImg8bit`` image."""
    city = os.path.basename(os.path.dirname(image_path))
    stem = os.path.basename(image_path)[: -len(IMAGE_SUFFIX)]
    return {
        key: os.path.join(data_dir, folder, split, city, stem + suffix)
        for key, (folder, suffix) in _FOLDERS.items()
    }


def disparity_to_depth(raw: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """Converts a raw 16-bit Cityscapes disparity map to metric depth (0 = invalid).

    Args:
        raw: uint16 disparity PNG values; ``p > 0`` means ``(p - 1) / 256`` px.
        baseline: ``extrinsic.baseline`` in metres.
        fx: ``intrinsic.fx`` in pixels.

    Returns:
        float32 depth in metres, 0 where ``p = 0`` or the disparity is not positive.
    """
    raw = np.asarray(raw, dtype=np.float64)
    disparity = np.where(raw > 0, (raw - 1.0) / 256.0, 0.0)
    valid = disparity > 0
    depth = np.zeros(raw.shape, dtype=np.float64)
    depth[valid] = baseline * fx / disparity[valid]
    return depth.astype(np.float32)


def disparity_to_depth_tf(raw: tf.Tensor, baseline: tf.Tensor, fx: tf.Tensor) -> tf.Tensor:
    """:func:`disparity_to_depth` as TensorFlow ops (float64 inside, the same values)."""
    raw = tf.cast(raw, tf.float64)
    disparity = tf.where(raw > 0, (raw - 1.0) / 256.0, 0.0)
    valid = disparity > 0
    focal = tf.cast(baseline, tf.float64) * tf.cast(fx, tf.float64)
    depth = tf.where(valid, focal / tf.where(valid, disparity, 1.0), 0.0)
    return tf.cast(depth, tf.float32)


def read_camera(path: str) -> tuple[float, float]:
    """Reads ``(extrinsic.baseline, intrinsic.fx)`` from a Cityscapes camera json.

    Raises:
        DataError: if the file is missing, not JSON, or lacks positive values.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            camera = json.load(handle)
        baseline = float(camera["extrinsic"]["baseline"])
        fx = float(camera["intrinsic"]["fx"])
    except FileNotFoundError:
        raise DataError(f"missing camera file {path}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}); expected a camera json.") from None
    except (KeyError, TypeError, ValueError):
        raise DataError(
            f"{path} lacks numeric extrinsic.baseline and intrinsic.fx; expected an official "
            f"Cityscapes camera json."
        ) from None
    if not (baseline > 0 and fx > 0):
        raise DataError(f"{path} has baseline={baseline}, fx={fx}; expected positive values.")
    return baseline, fx


class CityscapesFrames(FrameDataset):
    """Cityscapes frames: image, labelIds and disparity PNGs plus the camera json."""

    what = "Cityscapes"

    def __init__(
        self, data_dir: str, split: str, image_paths: list[str], with_semseg: bool, with_depth: bool
    ) -> None:
        self.data_dir = data_dir
        self.split = split
        self.image_paths = image_paths
        self.with_semseg = with_semseg
        self.with_depth = with_depth
        self.id_to_train = label_maps.cityscapes_id_to_train_id()

    def list_frames(self) -> list[Frame]:
        frames = []
        for image_path in self.image_paths:
            paths = frame_paths(self.data_dir, self.split, image_path)
            frames.append({"image": image_path, "label": paths["label"],
                           "disparity": paths["disparity"], "camera": paths["camera"],
                           "baseline": 0.0, "fx": 0.0})  # fmt: skip
        return frames

    def check_frame(self, frame: Frame) -> tuple[tuple[int, int], bool]:
        from PIL import Image

        image_path = str(frame["image"])
        hw = resize.image_size(image_path, "Cityscapes image")
        checks = []
        if self.with_semseg:
            checks.append(("label", "gtFine labelIds", ("L", "P")))
        if self.with_depth:
            checks.append(("disparity", "disparity", ("I", "I;16", "I;16B")))
        if self.with_depth and not os.path.isfile(str(frame["camera"])):
            raise DataError(
                f"missing camera file {frame['camera']} for image {image_path}; expected "
                f"camera/<split>/<city>/<city>_<seq>_<frame>_camera.json from "
                f"camera_trainvaltest.zip."
            )
        python_only = False
        for key, what, modes in checks:
            path = str(frame[key])
            if not os.path.isfile(path):
                raise DataError(f"missing {what} file {path} for image {image_path}.")
            found = resize.image_size(path, what)
            if found != hw:
                raise DataError(
                    f"{what} file {path} is {found[0]}x{found[1]} but its image {image_path} is "
                    f"{hw[0]}x{hw[1]}; expected the same size."
                )
            with Image.open(path) as handle:
                mode = handle.mode
            if mode not in modes:
                raise DataError(
                    f"{what} file {path} has PIL mode {mode!r}; expected {modes[0]!r} "
                    f"({'8-bit' if key == 'label' else '16-bit'} grey)."
                )
            # tf.io expands a palette PNG to RGB; its label ids are the palette indices.
            python_only = python_only or mode == "P"
        if self.with_depth:
            frame["baseline"], frame["fx"] = read_camera(str(frame["camera"]))
        return hw, python_only

    def check_sizes(self, checked):
        (_, hw), *rest = checked
        for frame, frame_hw in rest:
            if frame_hw != hw:
                raise DataError(
                    f"{frame['image']} is {frame_hw[0]}x{frame_hw[1]} but earlier images are "
                    f"{hw[0]}x{hw[1]}; Cityscapes frames all have one size."
                )
        return hw

    def decode_frame(self, frame: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        example = {IMAGE: decode_rgb(tf.io.read_file(frame["image"]))}
        if self.with_semseg:
            ids = decode_grey(tf.io.read_file(frame["label"]))
            example[SEMSEG] = tf.gather(tf.constant(self.id_to_train), tf.cast(ids, tf.int32))
        if self.with_depth:
            raw = decode_grey(tf.io.read_file(frame["disparity"]), tf.uint16)
            example[DEPTH] = disparity_to_depth_tf(raw, frame["baseline"], frame["fx"])
        return example

    def read_frame(self, frame: Frame) -> dict[str, np.ndarray]:
        example = {IMAGE: resize.read_image(str(frame["image"]), "Cityscapes image")}
        if self.with_semseg:
            ids = resize.read_image(str(frame["label"]), "gtFine labelIds", mode=None)
            example[SEMSEG] = self.id_to_train[ids]
        if self.with_depth:
            raw = resize.read_image(str(frame["disparity"]), "disparity", mode=None)
            example[DEPTH] = disparity_to_depth(raw, float(frame["baseline"]), float(frame["fx"]))
        return example

    def signature(self, hw) -> dict[str, tf.TensorSpec]:
        signature = {IMAGE: tf.TensorSpec([*hw, 3], tf.uint8)}
        if self.with_semseg:
            signature[SEMSEG] = tf.TensorSpec(hw, tf.uint8)
        if self.with_depth:
            signature[DEPTH] = tf.TensorSpec(hw, tf.float32)
        return signature


def load_cityscapes(
    data_dir: str,
    split: str,
    *,
    with_semseg: bool = True,
    with_depth: bool = True,
    size: tuple[int, int] | None = None,
    resize_mode: str = "resize",
    depth_method: str = "nearest",
    shuffle: bool = False,
    seed: int = 0,
    **unknown: Any,
) -> tf.data.Dataset:
    """Loads Cityscapes (fine annotations) as ``image``/``semseg``/``depth`` dicts.

    Frames are read in sorted order of ``<city>/<file name>``. All files of every frame
    are checked up front (existence, PNG header, size, camera json); pixels are decoded
    while iterating.

    Args:
        data_dir: The Cityscapes root (see the module doc for the layout).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"train_extra"``.
        with_semseg: Read ``gtFine`` labelIds into ``semseg`` (train ids, 255 = ignore).
        with_depth: Read ``disparity`` + ``camera`` into ``depth`` (metres, 0 = invalid).
        size: ``(height, width)`` output size (multiples of 32) or None (1024x2048 native).
        resize_mode: ``"resize"``, ``"center_crop"`` or ``"resize_crop"``.
        depth_method: ``"nearest"`` or ``"masked"`` depth resizing.
        shuffle: Shuffle the order each epoch (deterministically by ``seed``).
        seed: Seed of the shuffled order.
        **unknown: Rejected with a ConfigError naming the option.

    Returns:
        A ``tf.data.Dataset`` of dicts.

    Raises:
        ConfigError: on unknown options or option values.
        DataError: on missing folders or files, size mismatches and unreadable files.
    """
    if unknown:
        raise ConfigError(
            f"unknown cityscapes option(s) {sorted(unknown)}. Expected some of: with_semseg, "
            f"with_depth, size, resize_mode, depth_method, shuffle, seed."
        )
    if split not in SPLITS:
        raise ConfigError(
            f"unknown Cityscapes split. Received: split={split!r}. Expected one of {SPLITS}."
        )
    data_dir = resize.require_data_dir(data_dir, "cityscapes")
    size = resize.validate_resize_options(size, resize_mode, depth_method)
    image_root = os.path.join(data_dir, "leftImg8bit", split)
    if not os.path.isdir(image_root):
        raise DataError(
            f"missing folder {image_root}; expected Cityscapes' leftImg8bit/{split}/<city>/"
            f"*{IMAGE_SUFFIX} under data_dir={data_dir} (extract leftImg8bit_trainvaltest.zip)."
        )
    for key, wanted in (("label", with_semseg), ("disparity", with_depth), ("camera", with_depth)):
        folder = os.path.join(data_dir, _FOLDERS[key][0], split)
        if wanted and not os.path.isdir(folder):
            flag = "with_semseg" if key == "label" else "with_depth"
            raise DataError(
                f"missing folder {folder}; expected {_FOLDERS[key][0]}/{split}/<city>/"
                f"*{_FOLDERS[key][1]}. Extract {_FOLDERS[key][0]}_trainvaltest.zip into "
                f"{data_dir}, or pass {flag}=False."
            )
    image_paths = sorted(glob.glob(os.path.join(image_root, "*", "*" + IMAGE_SUFFIX)))
    if not image_paths:
        raise DataError(f"no *{IMAGE_SUFFIX} files in {image_root}/<city>/.")
    frames = CityscapesFrames(data_dir, split, image_paths, with_semseg, with_depth)
    _, hw = frames.checked_frames()
    resize.check_crop_fits(hw, size, resize_mode, f"Cityscapes ({image_paths[0]})")
    return resize.apply_resize(frames.load(shuffle, seed), size, resize_mode, depth_method)
