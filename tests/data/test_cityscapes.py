"""Cityscapes loader on a fixture tree in the official layout (PNGs, 16-bit disparity, json)."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import ka_tf.data
from ka_tf.data import cityscapes, label_maps
from ka_tf.errors import ConfigError, DataError
from tests.data import fixtures


def _examples(dataset):
    return [{k: v.numpy() for k, v in example.items()} for example in dataset]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return fixtures.write_cityscapes(str(tmp_path_factory.mktemp("cityscapes")))


def _copy(tree, tmp_path):
    target = str(tmp_path / "copy")
    shutil.copytree(tree.data_dir, target)
    return target


def test_official_train_ids():
    table = label_maps.cityscapes_id_to_train_id()
    assert table[7] == 0 and table[8] == 1 and table[11] == 2 and table[26] == 13
    assert table[24] == 11 and table[33] == 18 and table[23] == 10 and table[31] == 16
    for ignored in (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 255):
        assert table[ignored] == 255, ignored
    assert sorted(set(table.tolist()) - {255}) == list(range(19))


def test_disparity_to_depth_formula():
    raw = np.array([[0, 1, 257, 513, 65535]], dtype=np.uint16)
    depth = cityscapes.disparity_to_depth(raw, baseline=0.2, fx=2000.0)
    # p=0 invalid; p=1 is zero disparity -> invalid; p=257 -> 1 px; 513 -> 2 px.
    np.testing.assert_allclose(depth, [[0, 0, 400.0, 200.0, 400.0 / (65534 / 256)]], rtol=1e-6)
    assert depth.dtype == np.float32


def test_values_pixel_by_pixel(tree):
    table = label_maps.cityscapes_id_to_train_id()
    for split in ("train", "val"):
        examples = _examples(ka_tf.data.load("cityscapes", tree.data_dir, split))
        written = tree.frames[split]
        assert len(examples) == len(written)
        # Sorted order of <city>/<file>: the fixture writes in that order.
        for example, (stem, image, ids, disparity, baseline, fx) in zip(
            examples, written, strict=True
        ):
            assert stem.split("_")[0] in fixtures.CITYSCAPES_CITIES[split]
            np.testing.assert_array_equal(example["image"], image)
            np.testing.assert_array_equal(example["semseg"], table[ids])
            disp = np.where(disparity > 0, (disparity.astype(np.float64) - 1) / 256, 0)
            expected = np.where(disp > 0, baseline * fx / np.where(disp > 0, disp, 1), 0)
            np.testing.assert_allclose(example["depth"], expected, rtol=1e-6)
            assert example["depth"][0, 0] == 0 and example["depth"][0, 1] == 0
            assert example["depth"][0, 2] == pytest.approx(baseline * fx, rel=1e-6)
            assert example["semseg"].dtype == np.uint8 and example["depth"].dtype == np.float32


def test_options_shuffle_resize_and_tasks(tree):
    base = _examples(cityscapes.load_cityscapes(tree.data_dir, "train"))
    shuffled = _examples(cityscapes.load_cityscapes(tree.data_dir, "train", shuffle=True, seed=1))
    again = _examples(cityscapes.load_cityscapes(tree.data_dir, "train", shuffle=True, seed=1))
    key = [e["image"].tobytes() for e in base]
    order = [key.index(e["image"].tobytes()) for e in shuffled]
    assert sorted(order) == [0, 1, 2]
    assert order == [key.index(e["image"].tobytes()) for e in again]
    only_images = _examples(
        cityscapes.load_cityscapes(tree.data_dir, "val", with_semseg=False, with_depth=False)
    )
    assert set(only_images[0]) == {"image"}
    cropped = _examples(
        cityscapes.load_cityscapes(tree.data_dir, "train", size=(32, 32), resize_mode="center_crop")
    )
    np.testing.assert_array_equal(cropped[0]["semseg"], base[0]["semseg"][:, 16:48])
    np.testing.assert_array_equal(cropped[0]["depth"], base[0]["depth"][:, 16:48])
    with pytest.raises(ConfigError, match=r"center_crop.*32x64"):
        cityscapes.load_cityscapes(tree.data_dir, "train", size=(64, 64), resize_mode="center_crop")


def test_missing_and_wrong_files(tree, tmp_path):
    root = _copy(tree, tmp_path)
    stem, *_ = tree.frames["train"][0]
    paths = fixtures.cityscapes_paths(root, "train", "aachen", stem)
    with pytest.raises(ConfigError, match=r"split='training'"):
        cityscapes.load_cityscapes(root, "training")
    with pytest.raises(DataError, match=r"missing folder .*leftImg8bit/test"):
        cityscapes.load_cityscapes(root, "test")
    # Label file of another size.
    Image.fromarray(np.zeros((16, 64), np.uint8), mode="L").save(paths["label"])
    with pytest.raises(DataError, match=r"labelIds file .* is 16x64 but its image .* is 32x64"):
        cityscapes.load_cityscapes(root, "train")
    # Label file missing.
    os.remove(paths["label"])
    with pytest.raises(DataError, match=r"missing gtFine labelIds file .*gtFine_labelIds\.png"):
        cityscapes.load_cityscapes(root, "train")
    assert len(_examples(cityscapes.load_cityscapes(root, "train", with_semseg=False))) == 3
    # Corrupt image PNG.
    with open(paths["image"], "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(DataError, match=r"corrupt or unreadable Cityscapes image file .*aachen"):
        cityscapes.load_cityscapes(root, "train", with_semseg=False)
    # Camera json without baseline.
    val_stem, *_ = tree.frames["val"][0]
    val_paths = fixtures.cityscapes_paths(root, "val", "frankfurt", val_stem)
    with open(val_paths["camera"], "w") as handle:
        json.dump({"intrinsic": {"fx": 1.0}}, handle)
    with pytest.raises(DataError, match=r"camera\.json lacks numeric extrinsic\.baseline"):
        cityscapes.load_cityscapes(root, "val")
    # Label file that is not an image at all; then one cut in half (found when decoding).
    label = open(val_paths["label"], "rb").read()
    with open(val_paths["label"], "wb") as handle:
        handle.write(b"not a png at all")
    with pytest.raises(DataError, match=r"corrupt or unreadable gtFine labelIds file .*frankfurt"):
        cityscapes.load_cityscapes(root, "val", with_depth=False)
    with open(val_paths["label"], "wb") as handle:
        handle.write(label[: len(label) // 2])
    with pytest.raises(Exception, match=r"DataError: corrupt or unreadable gtFine labelIds file"):
        _examples(cityscapes.load_cityscapes(root, "val", with_depth=False))
    # Camera json and disparity file missing: each named with its image.
    os.remove(val_paths["camera"])
    with pytest.raises(
        DataError, match=r"missing camera file .*_camera\.json for image .*leftImg8bit"
    ):
        cityscapes.load_cityscapes(root, "val", with_semseg=False)
    images_only = cityscapes.load_cityscapes(root, "val", with_depth=False, with_semseg=False)
    assert len(_examples(images_only)) > 0
    with open(val_paths["camera"], "w") as handle:
        json.dump({"intrinsic": {"fx": 1.0}}, handle)
    os.remove(val_paths["disparity"])
    with pytest.raises(DataError, match=r"missing disparity file .*_disparity\.png for image"):
        cityscapes.load_cityscapes(root, "val", with_semseg=False)
    # Disparity saved 8-bit instead of 16-bit.
    Image.fromarray(np.zeros((32, 64), np.uint8), mode="L").save(val_paths["disparity"])
    with pytest.raises(DataError, match=r"disparity file .* mode 'L'; expected 'I'"):
        cityscapes.load_cityscapes(root, "val", with_semseg=False)
    shutil.rmtree(os.path.join(root, "disparity"))
    with pytest.raises(DataError, match=r"missing folder .*disparity/val.*with_depth=False"):
        cityscapes.load_cityscapes(root, "val")


def test_gin_data_file_binds_load(tree):
    import gin

    from ka_tf import config
    from tests.helpers import REPO_ROOT

    gin_file = os.path.join(REPO_ROOT, "gin", "data", "cityscapes.gin")
    config.parse_gin_config([gin_file], [f"DATA_DIR = '{tree.data_dir}'"])
    assert gin.query_parameter("%NUM_CLASSES") == 19
    example = next(iter(ka_tf.data.load(split=gin.query_parameter("%EVAL_SPLIT"), size=(64, 128))))
    assert example["semseg"].shape == (64, 128) and example["depth"].dtype == "float32"
