"""One base for the real-data loaders: list frames, check each, read them in parallel.

A real dataset on disk is a list of *frames* (an image plus whatever labels belong
to it). Every loader does the same four things, so they live here once:

1. :meth:`FrameDataset.list_frames` finds the frames (after the loader has checked
   its folders) — each frame a flat dict of strings and numbers, the same keys in
   every frame;
2. :meth:`FrameDataset.check_frame` checks one frame up front (files exist, headers
   readable, sizes agree) and returns its ``(height, width)``; a bad frame is a
   :class:`~ka_tf.errors.DataError` naming the file, or is left out with one warning
   when the loader skips corrupt frames;
3. :meth:`FrameDataset.decode_frame` decodes one frame *inside* ``tf.data`` with
   ``tf.io`` ops (PNG, JPEG, GIF, BMP, WebP; 16-bit PNG for disparity), running
   ``AUTOTUNE`` frames in parallel and outside the GIL, in a deterministic order;
4. :meth:`FrameDataset.read_frame` reads one frame in Python (PIL, numpy, h5py). It
   is used only where ``tf.io`` cannot read a frame: for formats it has no decoder
   for (an HDF5 ``.mat``, ``.npy`` files, palette label maps), for frames that
   :meth:`check_frame` marks ``python_only``, and to name the file and the reason
   when ``tf.io`` fails on a frame (a truncated JPEG): the Python reader then raises
   the one-line DataError, or returns the pixels if it can decode what ``tf.io``
   could not.

An error while iterating reaches the caller as a ``tf.errors.OpError`` whose message
holds ``DataError: <one line naming the file>`` (TensorFlow's wrapping of Python
errors inside ``tf.data``); tools turn it back into the one-line error.

Example (a loader)::

    class MyFrames(FrameDataset):
        what = "my dataset"

        def list_frames(self):
            return [{"image": path} for path in sorted(glob.glob(...))]

        def check_frame(self, frame):
            return resize.image_size(frame["image"]), False   # (hw, python_only)

        def decode_frame(self, frame):
            return {IMAGE: decode_rgb(tf.io.read_file(frame["image"]))}

        def read_frame(self, frame):
            return {IMAGE: resize.read_image(frame["image"])}

        def signature(self, hw):
            return {IMAGE: tf.TensorSpec([*hw, 3], tf.uint8)}

    dataset = MyFrames().load(shuffle=True, seed=0)
"""

from __future__ import annotations

import abc
import os
import threading
import warnings
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from ka_tf.errors import DataError

Frame = dict[str, str | int | float | bool]
HW = tuple[int | None, int | None]

ON_CORRUPT = ("error", "skip")
_MAX_NAMED = 10
_INDEX = "_frame_index"
_PYTHON_ONLY = "_python_only"
_HEIGHT, _WIDTH = "_frame_height", "_frame_width"
_OK = "_frame_ok"  # with on_corrupt="skip": False marks a frame to leave out


def frame_size(frame: Frame) -> tuple[int, int]:
    """The ``(height, width)`` that :meth:`FrameDataset.check_frame` found for a frame."""
    return int(frame[_HEIGHT]), int(frame[_WIDTH])


def decode_rgb(contents: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG/PNG/GIF/BMP/WebP bytes to uint8 ``[H, W, 3]`` RGB.

    JPEG uses libjpeg's accurate integer IDCT, the one PIL uses, so that both give the
    same pixels. Grey, palette and RGBA images become RGB (alpha dropped, as PIL's
    ``convert("RGB")`` does).
    """
    return tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )


def decode_grey(contents: tf.Tensor, dtype: tf.DType = tf.uint8) -> tf.Tensor:
    """Decodes a one-channel PNG (8- or 16-bit) to ``[H, W]`` of ``dtype``."""
    return tf.io.decode_png(contents, channels=1, dtype=dtype)[..., 0]


class FrameDataset(abc.ABC):
    """A dataset of frames listed and checked up front, read inside ``tf.data``.

    Subclasses set :attr:`what` and implement :meth:`list_frames`,
    :meth:`check_frame`, :meth:`read_frame` and :meth:`signature`; they implement
    :meth:`decode_frame` when ``tf.io`` can decode their files. :meth:`load` builds the
    dataset.

    Attributes:
        what: The dataset as named in messages (``"Cityscapes"``).
        item: What one frame is called in messages (``"frame"``, ``"file"``).
        where: Where the frames are, for messages (``" under /photos"``), or empty.
        on_corrupt: ``"error"`` (default: a bad frame is a DataError naming its file)
            or ``"skip"`` (left out, with one warning naming the files).
    """

    what: str = "dataset"
    item: str = "frame"
    where: str = ""
    on_corrupt: str = "error"

    @abc.abstractmethod
    def list_frames(self) -> list[Frame]:
        """The frames in reading order (each a flat dict, the same keys in every frame).

        Raises:
            DataError: when there are no frames.
        """

    @abc.abstractmethod
    def check_frame(self, frame: Frame) -> tuple[HW, bool]:
        """Checks one frame before any is read.

        It may fill in fields of ``frame`` that it reads anyway (a camera's focal
        length, say); the frame is copied after the check.

        Returns:
            ``((height, width), python_only)``: the frame's size and whether it must be
            read by :meth:`read_frame` because ``tf.io`` cannot decode it.

        Raises:
            DataError: naming the bad file and the fix.
        """

    @abc.abstractmethod
    def read_frame(self, frame: Frame) -> dict[str, np.ndarray]:
        """Reads one frame in Python, with the dtypes of :meth:`signature`.

        Raises:
            DataError: naming the file that cannot be read and why.
        """

    @abc.abstractmethod
    def signature(self, hw: HW) -> dict[str, tf.TensorSpec]:
        """The element spec for frames of size ``hw`` (None where sizes differ)."""

    def decode_frame(self, frame: dict[str, tf.Tensor]) -> dict[str, tf.Tensor] | None:
        """Decodes one frame with ``tf.io`` ops; None (the default) if it cannot.

        Args:
            frame: The frame's fields as scalar tensors.
        """
        del frame
        return None

    def frame_label(self, frame: Frame) -> str:
        """How a frame is named in warnings: its first field (a path, usually)."""
        return str(next(iter(frame.values())))

    def skipped_warning(self, labels: Sequence[str], when: str) -> str:
        """The warning for frames left out with ``on_corrupt="skip"``."""
        named = ", ".join(labels[:_MAX_NAMED])
        more = f" and {len(labels) - _MAX_NAMED} more" if len(labels) > _MAX_NAMED else ""
        return (
            f"skipped {len(labels)} corrupt {self.what} {self.item}(s){self.where} ({when}): "
            f"{named}{more}."
        )

    def check_sizes(self, checked: list[tuple[Frame, HW]]) -> HW:
        """The common ``(height, width)`` of the checked frames, ``(None, None)`` if they
        differ. Loaders whose frames must share one size override this to raise."""
        sizes = {hw for _, hw in checked}
        return next(iter(sizes)) if len(sizes) == 1 else (None, None)

    # --- The pipeline -----------------------------------------------------------

    def checked_frames(self) -> tuple[list[Frame], HW]:
        """Lists and checks every frame (once); returns the kept frames and their
        common size. Each kept frame gains its own size as ``frame_size(frame)``.

        Raises:
            DataError: on the first bad frame (``on_corrupt="error"``), or when every
                frame is bad.
        """
        if getattr(self, "_checked", None) is None:
            self._checked = self._check_all()
        return self._checked

    def _check_all(self) -> tuple[list[Frame], HW]:
        frames = self.list_frames()
        checked, skipped = [], []
        for frame in frames:
            try:
                hw, python_only = self.check_frame(frame)
            except DataError:
                if self.on_corrupt == "error":
                    raise
                skipped.append(self.frame_label(frame))
                continue
            extra = {_PYTHON_ONLY: bool(python_only), _HEIGHT: hw[0], _WIDTH: hw[1]}
            checked.append(({**frame, **extra}, hw))
        if skipped:
            warnings.warn(
                self.skipped_warning(skipped, "checked when loading"), UserWarning, stacklevel=3
            )
        if not checked:
            raise DataError(
                f"every one of the {len(frames)} {self.what} {self.item}s{self.where} is corrupt."
            )
        hw = self.check_sizes(checked)
        kept = [{**frame, _INDEX: index} for index, (frame, _) in enumerate(checked)]
        return kept, hw

    def load(self, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
        """Builds the dataset: checked frames, in order (or shuffled), read in parallel.

        Args:
            shuffle: A different order each epoch (pass of the dataset), seeded.
            seed: Seed of the shuffled orders; the same seed gives the same orders.

        Returns:
            A ``tf.data.Dataset`` of dicts following :meth:`signature`.
        """
        frames, hw = self.checked_frames()
        signature = self.signature(hw)
        columns = {key: tf.constant([frame[key] for frame in frames]) for key in frames[0]}
        order = tf.data.Dataset.range(len(frames))
        if shuffle:
            order = order.shuffle(len(frames), seed=seed, reshuffle_each_iteration=True)
        reader = _PythonReader(self, frames, signature)
        graph_decodes = type(self).decode_frame is not FrameDataset.decode_frame

        def read(index: tf.Tensor) -> tf.data.Dataset:
            if not graph_decodes:
                return tf.data.Dataset.from_tensors(reader.read(index))
            frame = {key: column[index] for key, column in columns.items()}
            decoded = (
                tf.data.Dataset.from_tensors(frame)
                .filter(lambda frame: tf.logical_not(frame[_PYTHON_ONLY]))
                .map(lambda frame: (True, self._decoded(frame, signature)))
                .ignore_errors()  # a frame tf.io fails on is read (or named) in Python
            )
            fallback = tf.data.Dataset.from_tensors((False, reader.empty()))
            return (
                decoded.concatenate(fallback)
                .take(1)
                .map(
                    lambda decoded_ok, example: _with_shapes(
                        tf.cond(decoded_ok, lambda: example, lambda: reader.read(index)),
                        signature,
                    )
                )
            )

        dataset = order.interleave(
            read,
            cycle_length=tf.data.AUTOTUNE,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if self.on_corrupt == "skip":
            dataset = dataset.filter(lambda example: example[_OK]).map(
                lambda example: {k: v for k, v in example.items() if k != _OK}
            )
        return dataset

    def _decoded(self, frame: dict[str, tf.Tensor], signature: dict) -> dict[str, tf.Tensor]:
        example = self.decode_frame(frame)
        if set(example) != set(signature):
            raise TypeError(
                f"{type(self).__name__}.decode_frame returned keys {sorted(example)}; "
                f"expected {sorted(signature)}."
            )
        shaped = _with_shapes(
            {key: tf.cast(example[key], signature[key].dtype) for key in example}, signature
        )
        if self.on_corrupt == "skip":
            shaped[_OK] = tf.constant(True)
        return shaped


def _with_shapes(example: dict[str, tf.Tensor], signature: dict) -> dict[str, tf.Tensor]:
    """``example`` with the static shapes of ``signature`` (checked at run time)."""
    return {
        key: tf.ensure_shape(value, signature[key].shape) if key in signature else value
        for key, value in example.items()
    }


class _PythonReader:
    """Calls :meth:`FrameDataset.read_frame` from inside ``tf.data`` (``tf.py_function``)."""

    def __init__(
        self, source: FrameDataset, frames: list[Frame], signature: dict[str, tf.TensorSpec]
    ) -> None:
        self._source = source
        self._frames = frames
        self._signature = signature
        self._keys = list(signature)
        self._skipped: set[int] = set()
        self._lock = threading.Lock()

    def empty(self) -> dict[str, tf.Tensor]:
        """A placeholder element of the signature's structure (zero-sized)."""
        example = {
            key: tf.zeros([0 if d is None else d for d in spec.shape], spec.dtype)
            for key, spec in self._signature.items()
        }
        if self._source.on_corrupt == "skip":
            example[_OK] = tf.constant(False)
        return {
            key: tf.ensure_shape(value, [None] * len(value.shape)) for key, value in example.items()
        }

    def read(self, index: tf.Tensor) -> dict[str, tf.Tensor]:
        """Reads frame ``index`` in Python; with skip, a placeholder marks a bad frame."""
        dtypes = [self._signature[key].dtype for key in self._keys]
        skip = self._source.on_corrupt == "skip"
        values = tf.py_function(self._read_numpy, [index], dtypes + ([tf.bool] if skip else []))
        example = {}
        for key, value in zip(self._keys, values[: len(self._keys)], strict=True):
            value.set_shape(self._signature[key].shape)
            example[key] = value
        if skip:
            example[_OK] = values[-1]
        return example

    def _read_numpy(self, index: tf.Tensor) -> list[np.ndarray]:
        frame = self._frames[int(index.numpy())]
        try:
            example = self._source.read_frame(frame)
            ok = True
        except DataError:
            if self._source.on_corrupt == "error":
                raise
            example = {
                key: np.zeros(
                    [0 if d is None else d for d in spec.shape], spec.dtype.as_numpy_dtype
                )
                for key, spec in self._signature.items()
            }
            ok = False
            self._warn_skipped(frame)
        values = [
            np.asarray(example[key], self._signature[key].dtype.as_numpy_dtype)
            for key in self._keys
        ]
        return values + ([np.bool_(ok)] if self._source.on_corrupt == "skip" else [])

    def _warn_skipped(self, frame: Frame) -> None:
        with self._lock:
            first_time = frame[_INDEX] not in self._skipped
            self._skipped.add(frame[_INDEX])
        if first_time:
            label = self._source.frame_label(frame)
            message = self._source.skipped_warning([label], "failed to decode")
            warnings.warn(message, UserWarning, stacklevel=2)


def relative_label(path: str, root: str) -> str:
    """``path`` relative to ``root`` with ``/`` separators, for messages."""
    return os.path.relpath(path, root).replace(os.sep, "/")
