"""NYU Depth v2 (labelled set) as distributed, in two on-disk layouts.

``layout="mat"`` — the official files, both in ``data_dir``:

- ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, i.e. HDF5 after a 512-byte MATLAB
  header). MATLAB stores arrays column-major, so h5py sees them transposed:
  ``images`` [N, 3, W, H] uint8, ``depths`` [N, W, H] metres, ``labels`` [N, W, H]
  raw class ids 0..894 (0 = unlabelled). Image ``i`` is ``images[i].transpose(2, 1, 0)``.
- ``splits.mat`` (MATLAB v5): ``trainNdxs`` (795) and ``testNdxs`` (654), 1-based.

Raw labels are mapped to ``label_set`` ``"nyu40"`` (default) or ``"nyu13"`` with the
tables in :mod:`ka_tf.data.label_maps`; unlabelled pixels become 255.

``layout="npy"`` — the widely used pre-processed copy (MTAN, Liu et al. 2019):
``data_dir/{train,val}/{image,label,depth,normal}/<i>.npy`` at 288x384, images float
in [0, 1] (or uint8), 13 classes with -1 = ignore (-> 255), depth in metres (0 =
invalid), normals in [-1, 1]. Only ``label_set="nyu13"`` exists there.

The layout is auto-detected when only one of the two is present. NYUv2 has no
separate validation set: split ``"val"`` means the official test split in both
layouts (``"test"`` is accepted for the npy ``val`` folder too), and the mat layout
also offers ``"all"`` (all images, in file order).

Example:
    >>> ds = ka_tf.data.load("nyuv2", "/data/nyuv2", "train", label_set="nyu13",
    ...                      size=(224, 288), resize_mode="resize_crop")
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

import numpy as np
import tensorflow as tf

from ka_tf.constants import DEPTH, IGNORE_LABEL, IMAGE, NORMALS, SEMSEG
from ka_tf.data import label_maps, resize
from ka_tf.data.frame_dataset import Frame, FrameDataset
from ka_tf.errors import ConfigError, DataError

MAT_FILE = "nyu_depth_v2_labeled.mat"
SPLITS_FILE = "splits.mat"
LAYOUTS = ("mat", "npy")
NPY_SUBDIRS = ("image", "label", "depth", "normal")
NPY_NUM_CLASSES = 13

# The NYU evaluation crop (Eigen et al. 2014) of a 480x640 frame: rows 45:471, cols 41:601.
NYU_FRAME_HW = (480, 640)
EIGEN_CROP = (45, 471, 41, 601)

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MATLAB_HEADER_BYTES = 512
_MAT_SPLITS = {"train": "trainNdxs", "test": "testNdxs", "val": "testNdxs"}
_NPY_SPLITS = {"train": "train", "val": "val", "test": "val"}


def mat_version(path: str) -> str:
    """Returns ``"7.3"`` (HDF5, with or without MATLAB header), ``"5"`` or ``"unknown"``.

    Raises:
        DataError: if ``path`` is missing or unreadable.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(_MATLAB_HEADER_BYTES + len(_HDF5_SIGNATURE))
    except FileNotFoundError:
        raise DataError(f"missing file {path}.") from None
    except OSError as error:
        raise DataError(f"cannot read {path} ({error.strerror}).") from None
    if head.startswith(_HDF5_SIGNATURE) or head[_MATLAB_HEADER_BYTES:] == _HDF5_SIGNATURE:
        return "7.3"
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        return "5"
    return "unknown"


def _require_mat_version(path: str, expected: str, what: str) -> None:
    found = mat_version(path)
    if found == expected:
        return
    if found == "unknown":
        raise DataError(
            f"{path} is not a MATLAB .mat file (no MATLAB v5 header, no HDF5 signature); "
            f"expected the official {what} (MATLAB v{expected}). Re-download it."
        )
    if expected == "7.3":
        raise DataError(
            f"{path} is a MATLAB v{found} .mat file; expected MATLAB v7.3 (HDF5), the format "
            f"of the official {what}. Use the original file (re-saving with MATLAB "
            f"`save(..., '-v7.3')` also works)."
        )
    raise DataError(
        f"{path} is a MATLAB v{found} (HDF5) .mat file; expected MATLAB v5, the format of "
        f"the official {what}. Use the original file or re-save it with MATLAB "
        f"`save('splits.mat', 'trainNdxs', 'testNdxs', '-v7')`."
    )


def detect_layout(data_dir: str) -> str:
    """Returns ``"mat"`` or ``"npy"`` for ``data_dir``.

    Raises:
        DataError: if the folder is missing, holds both layouts, or neither.
    """
    if not os.path.isdir(data_dir):
        raise DataError(
            f"NYUv2 data_dir {data_dir} does not exist or is not a directory; expected a "
            f"folder with {MAT_FILE} + {SPLITS_FILE}, or train/ and val/ .npy folders."
        )
    has_mat = os.path.exists(os.path.join(data_dir, MAT_FILE))
    has_npy = any(os.path.isdir(os.path.join(data_dir, s, "image")) for s in ("train", "val"))
    if has_mat and has_npy:
        raise DataError(
            f"ambiguous NYUv2 layout in {data_dir}: found both {MAT_FILE} and train|val/image/ "
            f".npy folders. Pass layout='mat' or layout='npy'."
        )
    if has_mat:
        return "mat"
    if has_npy:
        return "npy"
    found = sorted(os.listdir(data_dir))
    shown = ", ".join(found[:10]) + (f", ... ({len(found)} entries)" if len(found) > 10 else "")
    raise DataError(
        f"no NYUv2 data found in {data_dir} (it contains: {shown or 'nothing'}). Expected "
        f"{MAT_FILE} and {SPLITS_FILE} (layout='mat'), or "
        f"{{train,val}}/{{image,label,depth,normal}}/<i>.npy (layout='npy')."
    )


def read_splits(path: str, num_images: int) -> dict[str, np.ndarray]:
    """Reads ``splits.mat`` into 0-based index arrays ``{"train": ..., "test": ...}``.

    Raises:
        DataError: on a missing/wrong-version file, missing keys or out-of-range indices.
    """
    from scipy.io import loadmat

    if not os.path.isfile(path):
        raise DataError(
            f"missing split file {path}; expected the official NYUv2 {SPLITS_FILE} "
            f"(trainNdxs, testNdxs) next to {MAT_FILE}."
        )
    _require_mat_version(path, "5", SPLITS_FILE)
    try:
        content = loadmat(path)
    except (ValueError, OSError) as error:
        raise DataError(f"cannot read {path} as a MATLAB v5 file ({error}).") from None
    splits = {}
    for split, key in (("train", "trainNdxs"), ("test", "testNdxs")):
        if key not in content:
            keys = sorted(k for k in content if not k.startswith("__"))
            raise DataError(f"{path} has no '{key}' array (found {keys}); expected {SPLITS_FILE}.")
        values = np.asarray(content[key], dtype=np.float64).ravel()
        if values.size and (values != np.round(values)).any():
            raise DataError(f"{path} '{key}' holds non-integer indices; expected 1-based ints.")
        indices = values.astype(np.int64)
        bad = indices[(indices < 1) | (indices > num_images)]
        if bad.size:
            raise DataError(
                f"split index {int(bad[0])} in {path} '{key}' is out of range: the labelled "
                f".mat holds {num_images} images, so 1-based indices must lie in "
                f"1..{num_images}. Use the {SPLITS_FILE} that belongs to this .mat."
            )
        splits[split] = indices - 1
    return splits


def _read_mapping_file(path: str) -> np.ndarray:
    from scipy.io import loadmat

    if not os.path.isfile(path):
        raise DataError(f"missing mapping_file {path}; expected classMapping40.mat (mapClass).")
    try:
        content = loadmat(path)
    except (ValueError, OSError, NotImplementedError) as error:
        raise DataError(f"cannot read mapping_file {path} as a MATLAB v5 file ({error}).") from None
    if "mapClass" not in content:
        raise DataError(
            f"mapping_file {path} has no 'mapClass' array; expected classMapping40.mat."
        )
    table = np.asarray(content["mapClass"]).ravel()
    if table.size != label_maps.NUM_NYU_RAW_CLASSES:
        raise DataError(
            f"mapping_file {path} 'mapClass' has {table.size} entries; expected "
            f"{label_maps.NUM_NYU_RAW_CLASSES} (one per raw NYUv2 class)."
        )
    return table


def _open_labeled_mat(path: str) -> tuple[int, int, int]:
    """Validates the labelled .mat and returns (num_images, height, width)."""
    import h5py

    if not os.path.isfile(path):
        raise DataError(f"missing {path}; expected the official NYUv2 {MAT_FILE} (2.8 GB).")
    _require_mat_version(path, "7.3", MAT_FILE)
    try:
        with h5py.File(path, "r") as mat:
            missing = [key for key in ("images", "depths", "labels") if key not in mat]
            if missing:
                raise DataError(
                    f"{path} has no {missing} dataset(s) (found {sorted(mat.keys())}); expected "
                    f"the labelled NYUv2 file {MAT_FILE} with images, depths and labels."
                )
            images, depths, labels = mat["images"], mat["depths"], mat["labels"]
            if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
                raise DataError(
                    f"{path} 'images' has shape {images.shape} {images.dtype}; expected uint8 "
                    f"[N, 3, W, H] (MATLAB's [H, W, 3, N] seen column-major)."
                )
            num, _, width, height = images.shape
            for name, dataset in (("depths", depths), ("labels", labels)):
                if dataset.shape != (num, width, height):
                    raise DataError(
                        f"{path} '{name}' has shape {dataset.shape}; expected "
                        f"{(num, width, height)} to match 'images' {images.shape}."
                    )
    except OSError as error:
        raise DataError(f"cannot read {path} as HDF5 ({error}).") from None
    return num, height, width


class _MatFrames(FrameDataset):
    """Frames of the labelled .mat (HDF5), read with h5py: one handle per reading thread."""

    what = "NYUv2"

    def __init__(
        self, mat_path: str, indices: np.ndarray, table: np.ndarray, crop: tuple[int, int, int, int]
    ) -> None:
        self.mat_path = mat_path
        self.indices = indices
        self.table = table
        self.crop = crop
        self._local = threading.local()

    def list_frames(self) -> list[Frame]:
        return [{"index": int(index)} for index in self.indices]

    def check_frame(self, frame: Frame) -> tuple[tuple[int, int], bool]:
        top, bottom, left, right = self.crop  # the whole file was checked by _open_labeled_mat
        return (bottom - top, right - left), True

    def frame_label(self, frame: Frame) -> str:
        return f"{self.mat_path} [{frame['index']}]"

    def _file(self):
        import h5py

        if getattr(self._local, "mat", None) is None:
            self._local.mat = h5py.File(self.mat_path, "r")
        return self._local.mat

    def read_frame(self, frame: Frame) -> dict[str, np.ndarray]:
        mat, index = self._file(), int(frame["index"])
        top, bottom, left, right = self.crop
        raw = np.asarray(mat["labels"][index]).T[top:bottom, left:right]
        if raw.size and raw.max() > label_maps.NUM_NYU_RAW_CLASSES:
            raise DataError(
                f"{self.mat_path} labels[{index}] holds raw class {int(raw.max())}; expected "
                f"0..{label_maps.NUM_NYU_RAW_CLASSES} (0 = unlabelled)."
            )
        depth = np.asarray(mat["depths"][index], dtype=np.float32).T[top:bottom, left:right]
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        image = np.asarray(mat["images"][index]).transpose(2, 1, 0)[top:bottom, left:right]
        return {
            IMAGE: np.ascontiguousarray(image),
            SEMSEG: self.table[raw.astype(np.int64)],
            DEPTH: depth,
        }

    def signature(self, hw) -> dict[str, tf.TensorSpec]:
        return {
            IMAGE: tf.TensorSpec([*hw, 3], tf.uint8),
            SEMSEG: tf.TensorSpec(hw, tf.uint8),
            DEPTH: tf.TensorSpec(hw, tf.float32),
        }


def _mat_frames(
    data_dir: str, split: str, label_set: str, mapping_file: str | None, eval_crop: bool
) -> _MatFrames:
    mat_path = os.path.join(data_dir, MAT_FILE)
    num, height, width = _open_labeled_mat(mat_path)
    if split == "all":
        indices = np.arange(num)
    elif split in _MAT_SPLITS:
        key = "train" if split == "train" else "test"
        indices = read_splits(os.path.join(data_dir, SPLITS_FILE), num)[key]
    else:
        raise ConfigError(
            f"unknown NYUv2 split. Received: split={split!r}. Expected one of "
            f"{[*_MAT_SPLITS, 'all']} ('val' is the official test split)."
        )
    table = label_maps.nyu_raw_to_label_set(
        label_set, _read_mapping_file(mapping_file) if mapping_file else None
    )
    if eval_crop and (height, width) != NYU_FRAME_HW:
        raise ConfigError(
            f"eval_crop=True is defined on {NYU_FRAME_HW[0]}x{NYU_FRAME_HW[1]} NYUv2 frames, but "
            f"{mat_path} holds {height}x{width} images. Set eval_crop=False."
        )
    crop = EIGEN_CROP if eval_crop else (0, height, 0, width)
    return _MatFrames(mat_path, indices, table, crop)


def _npy_header(path: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"missing file {path}.") from None
    except (ValueError, OSError) as error:
        raise DataError(f"corrupt .npy file {path} ({error}); expected a numpy array.") from None
    return array.shape, array.dtype


def _npy_indices(folder: str) -> list[int]:
    pattern = re.compile(r"^(\d+)\.npy$")
    return sorted(int(m.group(1)) for m in map(pattern.match, os.listdir(folder)) if m)


_NPY_SHAPES = {
    "image": lambda hw: [(*hw, 3)],
    "label": lambda hw: [hw, (*hw, 1)],
    "depth": lambda hw: [hw, (*hw, 1)],
    "normal": lambda hw: [(*hw, 3)],
}


class _NpyFrames(FrameDataset):
    """Frames of the pre-processed copy: four ``<i>.npy`` files each, read with numpy."""

    what = "NYUv2"

    def __init__(self, root: str, indices: list[int]) -> None:
        self.root = root
        self.indices = indices
        self.hw: tuple[int, int] | None = None

    def list_frames(self) -> list[Frame]:
        return [{sub: os.path.join(self.root, sub, f"{i}.npy") for sub in NPY_SUBDIRS}
                for i in self.indices]  # fmt: skip

    def check_frame(self, frame: Frame) -> tuple[tuple[int, int], bool]:
        for sub in NPY_SUBDIRS:
            path = str(frame[sub])
            if not os.path.isfile(path):
                raise DataError(f"missing {path}: {frame['image']} has no matching {sub} file.")
            shape, _ = _npy_header(path)
            if self.hw is None:
                self.hw = tuple(shape[:2])
            if tuple(shape) not in _NPY_SHAPES[sub](self.hw):
                raise DataError(
                    f"{path} has shape {tuple(shape)}; expected one of "
                    f"{_NPY_SHAPES[sub](self.hw)} to match the other "
                    f"{self.hw[0]}x{self.hw[1]} files."
                )
        return self.hw, True

    def read_frame(self, frame: Frame) -> dict[str, np.ndarray]:
        path = {sub: str(frame[sub]) for sub in NPY_SUBDIRS}
        hw = self.hw
        image = np.load(path["image"])
        if image.dtype != np.uint8:
            if image.size and (image.min() < 0 or image.max() > 1.0 + 1e-6):
                raise DataError(
                    f"{path['image']} holds values in [{image.min():.3g}, {image.max():.3g}]; "
                    f"expected a float image in [0, 1] (or uint8)."
                )
            image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
        label = np.load(path["label"]).reshape(hw)
        if label.size and (
            label.min() < -1 or label.max() >= NPY_NUM_CLASSES or (label != np.round(label)).any()
        ):
            raise DataError(
                f"{path['label']} holds values in [{label.min()}, {label.max()}]; expected "
                f"integer classes 0..{NPY_NUM_CLASSES - 1} and -1 = ignore."
            )
        semseg = np.where(label < 0, IGNORE_LABEL, label).astype(np.uint8)
        depth = np.load(path["depth"]).reshape(hw).astype(np.float32)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        normals = np.nan_to_num(np.load(path["normal"]).astype(np.float32))
        return {IMAGE: image, SEMSEG: semseg, DEPTH: depth, NORMALS: normals}

    def check_sizes(self, checked):
        return self.hw

    def signature(self, hw) -> dict[str, tf.TensorSpec]:
        return {
            IMAGE: tf.TensorSpec([*hw, 3], tf.uint8),
            SEMSEG: tf.TensorSpec(hw, tf.uint8),
            DEPTH: tf.TensorSpec(hw, tf.float32),
            NORMALS: tf.TensorSpec([*hw, 3], tf.float32),
        }


def _npy_frames(data_dir: str, split: str, label_set: str, eval_crop: bool) -> _NpyFrames:
    if split not in _NPY_SPLITS:
        raise ConfigError(
            f"unknown NYUv2 split for layout='npy'. Received: split={split!r}. Expected one of "
            f"{list(_NPY_SPLITS)} ('test' reads the val/ folder)."
        )
    if label_set != "nyu13":
        raise ConfigError(
            f"the NYUv2 npy layout holds 13-class labels only. Received: label_set="
            f"{label_set!r}. Use label_set='nyu13' (or layout='mat' for nyu40)."
        )
    if eval_crop:
        raise ConfigError(
            "eval_crop=True needs 480x640 frames (layout='mat'); the npy layout is already "
            "resized to 288x384. Set eval_crop=False."
        )
    root = os.path.join(data_dir, _NPY_SPLITS[split])
    for sub in NPY_SUBDIRS:
        if not os.path.isdir(os.path.join(root, sub)):
            raise DataError(
                f"missing folder {os.path.join(root, sub)}; the NYUv2 npy layout needs "
                f"{root}/{{{','.join(NPY_SUBDIRS)}}}/<i>.npy."
            )
    indices = _npy_indices(os.path.join(root, "image"))
    if not indices:
        raise DataError(f"no <i>.npy files in {os.path.join(root, 'image')}; expected 0.npy, ...")
    return _NpyFrames(root, indices)


def load_nyuv2(
    data_dir: str,
    split: str,
    *,
    layout: str | None = None,
    label_set: str | None = None,
    mapping_file: str | None = None,
    eval_crop: bool = False,
    size: tuple[int, int] | None = None,
    resize_mode: str = "resize",
    depth_method: str = "nearest",
    shuffle: bool = False,
    seed: int = 0,
    **unknown: Any,
) -> tf.data.Dataset:
    """Loads NYUv2 (labelled set) as a dataset of ``image``/``semseg``/``depth`` dicts.

    Args:
        data_dir: Folder with the official .mat files or the npy layout (see module doc).
        split: ``"train"``, ``"test"`` or ``"val"`` (= official test); ``"all"`` (mat only).
        layout: ``"mat"``, ``"npy"`` or None to auto-detect.
        label_set: ``"nyu40"`` or ``"nyu13"``; None means nyu40 for mat, nyu13 for npy.
        mapping_file: Optional ``classMapping40.mat`` whose ``mapClass`` replaces the
            built-in 894 -> 40 table (mat layout).
        eval_crop: Cut the NYU evaluation crop (rows 45:471, cols 41:601) of 480x640 frames
            before any resizing (mat layout).
        size: ``(height, width)`` output size (multiples of 32) or None for native size.
        resize_mode: ``"resize"``, ``"center_crop"`` or ``"resize_crop"`` (see
            :mod:`ka_tf.data.resize`).
        depth_method: ``"nearest"`` or ``"masked"`` depth resizing.
        shuffle: Shuffle the order each epoch (deterministically by ``seed``).
        seed: Seed of the shuffled order.
        **unknown: Rejected with a ConfigError naming the option.

    Returns:
        A ``tf.data.Dataset`` of dicts (npy layout also has ``normals``).

    Raises:
        ConfigError: on unknown options or option values.
        DataError: on missing, malformed or inconsistent files.
    """
    if unknown:
        raise ConfigError(
            f"unknown nyuv2 option(s) {sorted(unknown)}. Expected some of: layout, label_set, "
            f"mapping_file, eval_crop, size, resize_mode, depth_method, shuffle, seed."
        )
    data_dir = resize.require_data_dir(data_dir, "nyuv2")
    size = resize.validate_resize_options(size, resize_mode, depth_method)
    if layout is None:
        layout = detect_layout(data_dir)
    elif layout not in LAYOUTS:
        raise ConfigError(f"unknown NYUv2 layout. Received: layout={layout!r}. Expected {LAYOUTS}.")
    elif not os.path.isdir(data_dir):
        raise DataError(f"NYUv2 data_dir {data_dir} does not exist or is not a directory.")
    if label_set is None:
        label_set = "nyu40" if layout == "mat" else "nyu13"
    if label_set not in label_maps.NYU_LABEL_SETS:
        raise ConfigError(
            f"unknown NYUv2 label set. Received: label_set={label_set!r}. "
            f"Expected one of {label_maps.NYU_LABEL_SETS}."
        )

    if layout == "mat":
        frames = _mat_frames(data_dir, split, label_set, mapping_file, eval_crop)
    else:
        if mapping_file:
            raise ConfigError("mapping_file applies to layout='mat' only; remove it.")
        frames = _npy_frames(data_dir, split, label_set, eval_crop)
    _, hw = frames.checked_frames()
    resize.check_crop_fits(hw, size, resize_mode, f"NYUv2 ({layout} layout)")
    return resize.apply_resize(frames.load(shuffle, seed), size, resize_mode, depth_method)
