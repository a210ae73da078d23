"""The frame-dataset base: tf.io decoding in parallel, Python reads only where tf.io
cannot, one-line errors naming the file, skipping, and seeded per-epoch orders."""

import os
import threading

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ka_tf.constants import IMAGE
from ka_tf.data import resize
from ka_tf.data.frame_dataset import FrameDataset, decode_grey, decode_rgb, frame_size
from ka_tf.errors import DataError


class CountingFrames(FrameDataset):
    """A dummy loader over image files that counts its Python reads."""

    what = "dummy"

    def __init__(self, paths, python_only=(), on_corrupt="error"):
        self.paths = paths
        self.python_only = set(python_only)
        self.on_corrupt = on_corrupt
        self.python_reads = []
        self.lock = threading.Lock()

    def list_frames(self):
        return [{"path": path} for path in self.paths]

    def check_frame(self, frame):
        return resize.image_size(frame["path"]), frame["path"] in self.python_only

    def decode_frame(self, frame):
        return {IMAGE: decode_rgb(tf.io.read_file(frame["path"]))}

    def read_frame(self, frame):
        with self.lock:
            self.python_reads.append(os.path.basename(frame["path"]))
        return {IMAGE: resize.read_image(frame["path"])}

    def signature(self, hw):
        return {IMAGE: tf.TensorSpec([*hw, 3], tf.uint8)}


@pytest.fixture()
def pictures(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    for index in range(6):
        pixels = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
        name = f"{index}.png" if index % 2 else f"{index}.jpg"
        Image.fromarray(pixels).save(tmp_path / name, **({"quality": 90} if index % 2 == 0 else {}))
        written[name] = np.asarray(Image.open(tmp_path / name).convert("RGB"))
    return tmp_path, written


def _paths(root, written):
    return [str(root / name) for name in written]


def _first_pixels(dataset):
    return [example[IMAGE].numpy() for example in dataset]


def test_tf_io_decodes_every_readable_frame_as_pil_does(pictures):
    root, written = pictures
    frames = CountingFrames(_paths(root, written))
    images = _first_pixels(frames.load())
    assert frames.python_reads == []  # no frame went through Python
    for image, expected in zip(images, written.values(), strict=True):
        np.testing.assert_array_equal(image, expected)  # JPEG too: the same IDCT as PIL
    spec = frames.load().element_spec[IMAGE]
    assert spec.shape.as_list() == [16, 24, 3] and spec.dtype == tf.uint8
    checked, hw = frames.checked_frames()
    assert hw == (16, 24) and frame_size(checked[0]) == (16, 24)


def test_python_reads_only_marked_frames_and_frames_tf_io_fails_on(pictures, tmp_path):
    root, written = pictures
    paths = _paths(root, written)
    # A file PIL reads but tf.io does not: a TIFF (tf.io has no TIFF decoder).
    tiff = str(tmp_path / "odd.tiff")
    Image.fromarray(written["1.png"]).save(tiff)
    frames = CountingFrames([*paths, tiff], python_only={paths[2]})
    images = _first_pixels(frames.load())
    assert sorted(frames.python_reads) == sorted([os.path.basename(paths[2]), "odd.tiff"])
    np.testing.assert_array_equal(images[-1], written["1.png"])
    np.testing.assert_array_equal(images[2], list(written.values())[2])


def test_a_file_neither_reader_can_decode_is_one_error_naming_it(pictures, tmp_path):
    root, written = pictures
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "cut.jpg", quality=95)
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])  # the header still reads
    paths = [str(tmp_path / "cut.jpg"), *_paths(root, written)]
    with pytest.raises(tf.errors.OpError, match=r"DataError: corrupt or unreadable .*cut\.jpg"):
        _first_pixels(CountingFrames(paths).load())
    with pytest.warns(UserWarning, match=r"skipped 1 corrupt dummy frame\(s\) .*cut\.jpg"):
        images = _first_pixels(CountingFrames(paths, on_corrupt="skip").load())
    assert len(images) == len(paths) - 1
    os.remove(paths[2])  # gone before loading: found by the up-front check
    with pytest.raises(DataError, match=r"missing image file .*1\.png"):
        CountingFrames(paths).load()


def test_shuffled_orders_are_seeded_and_change_each_epoch(pictures):
    root, written = pictures
    paths = _paths(root, written)
    key = [image.tobytes() for image in written.values()]

    def epochs(**options):
        dataset = CountingFrames(paths).load(**options).repeat(3)
        order = [key.index(image.tobytes()) for image in _first_pixels(dataset)]
        return [order[:6], order[6:12], order[12:]]

    assert epochs() == [list(range(6))] * 3
    first = epochs(shuffle=True, seed=3)
    assert all(sorted(epoch) == list(range(6)) for epoch in first)
    assert len({tuple(epoch) for epoch in first}) > 1
    assert first == epochs(shuffle=True, seed=3)
    assert first != epochs(shuffle=True, seed=4)


def test_decode_grey_reads_16_bit_png(tmp_path):
    values = np.arange(16 * 8, dtype=np.uint16).reshape(16, 8) * 500
    Image.fromarray(values).save(tmp_path / "d.png")
    decoded = decode_grey(tf.io.read_file(str(tmp_path / "d.png")), tf.uint16).numpy()
    np.testing.assert_array_equal(decoded, values)
