"""Writers of tiny datasets in the exact on-disk formats of the real datasets.

Nothing can be downloaded in tests, so each writer produces the real format in
miniature: a MATLAB v7.3 file (512-byte MATLAB header + HDF5, arrays transposed the
way MATLAB stores them), a MATLAB v5 ``splits.mat``, the NYUv2 npy layout, a
Cityscapes folder tree (PNG images, 8-bit labelIds, 16-bit disparity, camera json)
and a nested image folder. Each writer returns what a test needs to predict the
loader's output pixel by pixel.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import h5py
import numpy as np
import scipy.io
from PIL import Image

# A 116-byte MATLAB 7.3 descriptive text, then subsystem offset, version 0x0200, "IM".
_MATLAB_TEXT = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
    b"HDF5 schema 1.00 ."
)
_MATLAB_CLASSES = {
    np.dtype(np.uint8): "uint8",
    np.dtype(np.uint16): "uint16",
    np.dtype(np.float32): "single",
    np.dtype(np.float64): "double",
}


def write_mat_v73(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` (in MATLAB orientation, e.g. images [H, W, 3, N]) like MATLAB -v7.3.

    MATLAB is column-major, so an [H, W, 3, N] array appears in HDF5 as [N, 3, W, H]:
    each array is stored transposed. The file starts with a 512-byte MATLAB header
    (HDF5 user block), exactly like files saved by MATLAB.
    """
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, array in arrays.items():
            dataset = handle.create_dataset(name, data=np.ascontiguousarray(np.asarray(array).T))
            dataset.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASSES[np.asarray(array).dtype])
    header = _MATLAB_TEXT.ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as handle:
        handle.write(header.ljust(512, b"\x00"))


@dataclass
class NYUMatFixture:
    """What the NYUv2 .mat fixture holds, in MATLAB orientation ([H, W, (3,) N])."""

    data_dir: str
    images: np.ndarray  # [H, W, 3, N] uint8
    depths: np.ndarray  # [H, W, N] float32
    labels: np.ndarray  # [H, W, N] uint16 raw ids
    train: list[int] = field(default_factory=list)  # 1-based
    test: list[int] = field(default_factory=list)  # 1-based


# Raw NYUv2 ids cycled through the label maps: unlabelled, wall, floor, chair, table,
# ceiling, cabinet, book, the last raw id, bed (157), books (85), television (172).
RAW_LABEL_CYCLE = (0, 21, 11, 5, 19, 4, 3, 1, 894, 157, 85, 172)


def write_nyu_mat(
    data_dir: str,
    height: int = 24,
    width: int = 32,
    num: int = 5,
    train: tuple[int, ...] = (1, 3, 4),
    test: tuple[int, ...] = (2, 5),
    splits_version: str = "5",
) -> NYUMatFixture:
    """Writes ``nyu_depth_v2_labeled.mat`` (v7.3) and ``splits.mat`` into ``data_dir``."""
    os.makedirs(data_dir, exist_ok=True)
    y, x, c, n = np.meshgrid(
        np.arange(height), np.arange(width), np.arange(3), np.arange(num), indexing="ij"
    )
    images = ((y * 7 + x * 3 + c * 50 + n * 20) % 256).astype(np.uint8)
    y, x, n = np.meshgrid(np.arange(height), np.arange(width), np.arange(num), indexing="ij")
    depths = (0.5 + 0.01 * y + 0.001 * x + n).astype(np.float32)
    cycle = np.asarray(RAW_LABEL_CYCLE, dtype=np.uint16)
    labels = cycle[(y * width + x + n) % len(cycle)]
    write_mat_v73(
        os.path.join(data_dir, "nyu_depth_v2_labeled.mat"),
        {
            "images": images,
            "depths": depths,
            "labels": labels,
            "rawDepths": depths,
            "sceneTypes_dummy": np.arange(num, dtype=np.float64),
        },
    )
    write_splits(os.path.join(data_dir, "splits.mat"), train, test, version=splits_version)
    return NYUMatFixture(data_dir, images, depths, labels, list(train), list(test))


def write_splits(
    path: str, train: tuple[int, ...], test: tuple[int, ...], version: str = "5"
) -> None:
    """Writes ``splits.mat``: 1-based column vectors of doubles, as in the official file."""
    arrays = {
        "trainNdxs": np.asarray(train, dtype=np.float64).reshape(-1, 1),
        "testNdxs": np.asarray(test, dtype=np.float64).reshape(-1, 1),
    }
    if version == "5":
        scipy.io.savemat(path, arrays, format="5")
    else:
        write_mat_v73(path, arrays)


@dataclass
class NYUNpyFixture:
    """The npy layout fixture: per split, the arrays written (image float in [0, 1])."""

    data_dir: str
    arrays: dict[str, list[dict[str, np.ndarray]]]


def write_nyu_npy(
    data_dir: str, height: int = 32, width: int = 64, counts: dict[str, int] | None = None
) -> NYUNpyFixture:
    """Writes ``<data_dir>/{train,val}/{image,label,depth,normal}/<i>.npy`` (MTAN layout)."""
    counts = counts or {"train": 3, "val": 2}
    rng = np.random.default_rng(0)
    arrays: dict[str, list[dict[str, np.ndarray]]] = {}
    for split, count in counts.items():
        arrays[split] = []
        for sub in ("image", "label", "depth", "normal"):
            os.makedirs(os.path.join(data_dir, split, sub), exist_ok=True)
        for index in range(count):
            image = rng.integers(0, 256, (height, width, 3)) / 255.0
            label = (rng.integers(-1, 13, (height, width))).astype(np.float64)
            depth = rng.uniform(0.5, 9.0, (height, width, 1)).astype(np.float32)
            depth[0, :, 0] = 0.0  # an invalid row
            normal = rng.normal(size=(height, width, 3)).astype(np.float32)
            normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
            example = {"image": image, "label": label, "depth": depth, "normal": normal}
            for sub, value in example.items():
                np.save(os.path.join(data_dir, split, sub, f"{index}.npy"), value)
            arrays[split].append(example)
    return NYUNpyFixture(data_dir, arrays)


@dataclass
class CityscapesFixture:
    """The Cityscapes fixture: per split, (stem, image, label ids, disparity, baseline, fx)."""

    data_dir: str
    frames: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float, float]]]


CITYSCAPES_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt",)}


def write_cityscapes(data_dir: str, height: int = 32, width: int = 64) -> CityscapesFixture:
    """Writes leftImg8bit/, gtFine/ (labelIds), disparity/ and camera/ for train and val."""
    rng = np.random.default_rng(1)
    frames: dict[str, list] = {}
    for split, cities in CITYSCAPES_CITIES.items():
        frames[split] = []
        for city_index, city in enumerate(cities):
            for frame in range(2 if city_index == 0 else 1):
                stem = f"{city}_{city_index:06d}_{frame * 19 + 19:06d}"
                image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                ids = rng.integers(0, 34, (height, width), dtype=np.uint8)
                disparity = rng.integers(0, 20000, (height, width)).astype(np.uint16)
                disparity[0, :4] = (0, 1, 257, 65535)  # invalid, zero disparity, 1 px, max
                baseline, fx = 0.209313 + 0.001 * frame, 2262.52 + city_index
                paths = cityscapes_paths(data_dir, split, city, stem)
                for path in paths.values():
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                Image.fromarray(image).save(paths["image"])
                Image.fromarray(ids, mode="L").save(paths["label"])
                Image.fromarray(disparity).save(paths["disparity"])
                camera = {
                    "extrinsic": {"baseline": baseline, "pitch": 0.038, "roll": 0.0, "x": 1.7},
                    "intrinsic": {"fx": fx, "fy": fx, "u0": 1096.98, "v0": 513.137},
                }
                with open(paths["camera"], "w") as handle:
                    json.dump(camera, handle)
                frames[split].append((stem, image, ids, disparity, baseline, fx))
    return CityscapesFixture(data_dir, frames)


def cityscapes_paths(data_dir: str, split: str, city: str, stem: str) -> dict[str, str]:
    """The four official file paths of one Cityscapes frame."""
    return {
        "image": os.path.join(data_dir, "leftImg8bit", split, city, f"{stem}_leftImg8bit.png"),
        "label": os.path.join(data_dir, "gtFine", split, city, f"{stem}_gtFine_labelIds.png"),
        "disparity": os.path.join(data_dir, "disparity", split, city, f"{stem}_disparity.png"),
        "camera": os.path.join(data_dir, "camera", split, city, f"{stem}_camera.json"),
    }


def write_image_folder(data_dir: str) -> dict[str, np.ndarray]:
    """Writes images in nested folders (png, jpg, JPEG, webp) plus a non-image file.

    Returns:
        Relative path -> RGB pixels written (lossless formats exact; jpg approximate).
    """
    rng = np.random.default_rng(2)
    written = {}
    layout = {
        "b.png": ((32, 48), "PNG"),
        "a/z.jpg": ((40, 40), "JPEG"),
        "a/nested/deep/c.webp": ((24, 64), "WEBP"),
        "a/nested/d.JPEG": ((32, 32), "JPEG"),
        "a/gray.png": ((16, 16), "PNG"),
    }
    for relative, ((height, width), fmt) in layout.items():
        path = os.path.join(data_dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if relative == "a/gray.png":
            gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
            Image.fromarray(gray, mode="L").save(path)
            written[relative] = np.repeat(gray[..., None], 3, axis=-1)
            continue
        if fmt == "JPEG":  # smooth ramps, so that lossy JPEG stays within a few levels
            y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(3), indexing="ij")
            pixels = (20 + 100 * y / height + 80 * x / width + 40 * c).astype(np.uint8)
        else:
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        options = {"lossless": True} if fmt == "WEBP" else {}
        Image.fromarray(pixels).save(path, format=fmt, **options)
        written[relative] = pixels
    with open(os.path.join(data_dir, "a", "notes.txt"), "w") as handle:
        handle.write("not an image\n")
    return written
