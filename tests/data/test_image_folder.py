"""The image-folder loader: recursive, sorted, images only, resize options, corrupt files."""

import io
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import ka_tf.data
from ka_tf.data import image_folder
from ka_tf.errors import ConfigError, DataError
from tests.data import fixtures

# Sorted relative paths of the fixture's images (notes.txt is not an image).
ORDER = ["a/gray.png", "a/nested/d.JPEG", "a/nested/deep/c.webp", "a/z.jpg", "b.png"]


def _images(dataset):
    return [example["image"].numpy() for example in dataset]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("images"))
    return root, fixtures.write_image_folder(root)


def test_recursive_sorted_images_only(folder):
    root, written = folder
    paths, others = image_folder.find_images(root)
    assert [os.path.relpath(p, root) for p in paths] == ORDER
    assert [os.path.relpath(p, root) for p in others] == ["a/notes.txt"]
    images = _images(ka_tf.data.load("image_folder", root, "all"))
    assert len(images) == 5
    for image, relative in zip(images, ORDER, strict=True):
        assert image.dtype == np.uint8 and image.shape == written[relative].shape
        if relative.endswith((".png", ".webp")):
            np.testing.assert_array_equal(image, written[relative])  # lossless
        else:
            assert np.abs(image.astype(int) - written[relative]).mean() < 4  # jpeg
    element = ka_tf.data.load("image_folder", root, "all").element_spec
    assert set(element) == {"image"} and element["image"].shape.as_list() == [None, None, 3]


def test_subfolder_split_resize_and_shuffle(folder):
    root, written = folder
    nested = _images(image_folder.load_image_folder(root, "a/nested"))
    assert len(nested) == 2
    resized = image_folder.load_image_folder(root, "all", size=(32, 64), resize_mode="resize_crop")
    assert resized.element_spec["image"].shape.as_list() == [32, 64, 3]
    batch = next(iter(resized.batch(5)))["image"]
    assert batch.shape == (5, 32, 64, 3) and batch.dtype == tf.uint8
    # c.webp is 24x64: scaled by 4/3 to 32x85, centre 64 columns kept.
    assert np.abs(batch[2].numpy().astype(int).mean() - written["a/nested/deep/c.webp"].mean()) < 8

    def order(**options):
        images = _images(image_folder.load_image_folder(root, "all", **options))
        keys = [written[r].shape for r in ORDER]
        return [keys.index(image.shape) for image in images]

    first, second = order(shuffle=True, seed=5), order(shuffle=True, seed=5)
    assert sorted(first) == [0, 1, 2, 3, 4] and first == second
    assert order() == [0, 1, 2, 3, 4]


def test_errors_for_bad_folders_and_options(folder, tmp_path):
    root, _ = folder
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.md").write_text("x")
    with pytest.raises(DataError, match=r"no images under .*empty \(found 1 other file.*readme"):
        image_folder.load_image_folder(str(empty), "all")
    (tmp_path / "bare").mkdir()  # no files at all
    with pytest.raises(DataError, match=r"no images under .*bare; expected files ending in \.jpg"):
        image_folder.load_image_folder(str(tmp_path / "bare"), "all")
    with pytest.raises(DataError, match="does not exist"):
        image_folder.load_image_folder(str(tmp_path / "missing"), "all")
    with pytest.raises(DataError, match=r"no folder .*train for split='train'.*split='all'"):
        image_folder.load_image_folder(root, "train")
    with pytest.raises(ConfigError, match=r"on_corrupt='ignore'"):
        image_folder.load_image_folder(root, "all", on_corrupt="ignore")
    with pytest.raises(ConfigError, match=r"size=\(33, 64\)"):
        image_folder.load_image_folder(root, "all", size=(33, 64))
    with pytest.raises(ConfigError, match=r"center_crop.*gray\.png is 16x16"):
        image_folder.load_image_folder(root, "all", size=(32, 32), resize_mode="center_crop")


def test_corrupt_files_error_or_skip(folder, tmp_path):
    root = str(tmp_path / "copy")
    shutil.copytree(folder[0], root)
    with open(os.path.join(root, "a", "broken.png"), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(DataError, match=r"unreadable image file .*broken\.png.*on_corrupt='skip'"):
        image_folder.load_image_folder(root, "all")
    with pytest.warns(UserWarning, match=r"skipped 1 corrupt image file\(s\) .*a/broken\.png"):
        dataset = image_folder.load_image_folder(root, "all", on_corrupt="skip")
    assert len(_images(dataset)) == 5
    # A JPEG whose header is fine but whose data is cut: found while decoding.
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG", quality=95)
    with open(os.path.join(root, "a", "z.jpg"), "wb") as handle:
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    os.remove(os.path.join(root, "a", "broken.png"))
    dataset = image_folder.load_image_folder(root, "all")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"DataError: corrupt .*z\.jpg"):
        _images(dataset)
    with pytest.raises(DataError, match=r"z\.jpg"):
        image_folder.load_image_folder(root, "all", check="decode")
    with pytest.warns(UserWarning, match=r"skipped 1 .*failed to decode.*a/z\.jpg"):
        assert len(_images(image_folder.load_image_folder(root, "all", on_corrupt="skip"))) == 4
