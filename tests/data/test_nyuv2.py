"""NYUv2 loader on fixtures in the official formats (v7.3 .mat, v5 splits.mat, npy layout)."""

import os
import shutil

import numpy as np
import pytest
import scipy.io

import ka_tf.data
from ka_tf.constants import NYU13_CLASSES
from ka_tf.data import label_maps, nyuv2
from ka_tf.errors import ConfigError, DataError
from tests.data import fixtures


def _examples(dataset):
    return [{k: v.numpy() for k, v in example.items()} for example in dataset]


@pytest.fixture(scope="module")
def nyu_mat(tmp_path_factory):
    return fixtures.write_nyu_mat(str(tmp_path_factory.mktemp("nyu_mat")))


@pytest.fixture(scope="module")
def nyu_npy(tmp_path_factory):
    return fixtures.write_nyu_npy(str(tmp_path_factory.mktemp("nyu_npy")))


def test_label_maps_known_entries():
    nyu40 = label_maps.nyu_raw_to_label_set("nyu40")
    names40 = label_maps.nyu_class_names("nyu40")
    # raw id -> NYU40 name (Gupta et al. classMapping40).
    known = {21: "wall", 11: "floor", 3: "cabinet", 157: "bed", 5: "chair", 19: "table"}
    known.update({4: "ceiling", 85: "books", 172: "television", 1: "otherprop"})
    for raw, name in known.items():
        assert names40[nyu40[raw]] == name, raw
    assert nyu40[0] == 255 and nyu40.shape == (895,)
    assert [names40[i] for i in range(7)] == [
        "wall", "floor", "cabinet", "bed", "chair", "sofa", "table"
    ]  # fmt: skip
    nyu13 = label_maps.nyu_raw_to_label_set("nyu13")
    names13 = label_maps.nyu_class_names("nyu13")
    assert names13 == NYU13_CLASSES
    known13 = {21: "wall", 11: "floor", 5: "chair", 19: "table", 157: "bed", 4: "ceiling"}
    known13.update({85: "books", 172: "tv", 3: "furniture", 1: "objects"})
    for raw, name in known13.items():
        assert names13[nyu13[raw]] == name, raw
    # Window (9) and blinds/curtain (13, 16) all go to "window"; door (8) to "wall".
    to13 = np.asarray(label_maps.NYU40_TO_13)
    assert {NYU13_CLASSES[to13[c - 1] - 1] for c in (9, 13, 16)} == {"window"}
    assert NYU13_CLASSES[to13[8 - 1] - 1] == "wall"
    assert len(label_maps.NYU894_TO_40) == 894 and set(label_maps.NYU894_TO_40) == set(range(1, 41))


def test_mat_orientation_labels_depth_and_split_membership(nyu_mat):
    table = label_maps.nyu_raw_to_label_set("nyu40")
    for split, members in (("train", nyu_mat.train), ("test", nyu_mat.test)):
        examples = _examples(ka_tf.data.load("nyuv2", nyu_mat.data_dir, split))
        assert len(examples) == len(members)
        for example, one_based in zip(examples, members, strict=True):
            n = one_based - 1
            assert example["image"].shape == (24, 32, 3) and example["image"].dtype == np.uint8
            np.testing.assert_array_equal(example["image"], nyu_mat.images[..., n])
            np.testing.assert_array_equal(example["depth"], nyu_mat.depths[..., n])
            np.testing.assert_array_equal(example["semseg"], table[nyu_mat.labels[..., n]])
            assert set(example) == {"image", "semseg", "depth"}
    # Pixel (row 2, col 5) of image 3 (1-based): value formula of the fixture.
    third = _examples(ka_tf.data.load("nyuv2", nyu_mat.data_dir, "all"))[2]
    assert third["image"][2, 5].tolist() == [(14 + 15 + 40) % 256, (14 + 15 + 90) % 256, 169]
    assert third["depth"][2, 5] == pytest.approx(0.5 + 0.02 + 0.005 + 2)
    raw = fixtures.RAW_LABEL_CYCLE[(2 * 32 + 5 + 2) % len(fixtures.RAW_LABEL_CYCLE)]
    assert third["semseg"][2, 5] == table[raw]
    # Unlabelled (raw 0) pixels are ignore.
    assert (third["semseg"][third["semseg"] == 255].size) == ((nyu_mat.labels[..., 2] == 0).sum())


def test_mat_nyu13_and_val_alias(nyu_mat):
    table13 = label_maps.nyu_raw_to_label_set("nyu13")
    examples = _examples(nyuv2.load_nyuv2(nyu_mat.data_dir, "val", label_set="nyu13"))
    assert len(examples) == 2
    np.testing.assert_array_equal(examples[1]["semseg"], table13[nyu_mat.labels[..., 4]])
    # Image 5 holds raw wall (21) pixels: nyu13 id of "wall".
    wall = nyu_mat.labels[..., 4] == 21
    assert wall.any() and set(np.unique(examples[1]["semseg"][wall])) == {
        NYU13_CLASSES.index("wall")
    }
    assert set(np.unique(examples[0]["semseg"])) <= set(range(13)) | {255}


def test_mat_shuffle_is_seeded_and_resize_divisible(nyu_mat):
    def order(**options):
        ds = nyuv2.load_nyuv2(nyu_mat.data_dir, "all", **options)
        return [round(float(e["depth"][0, 0]) - 0.5) for e in _examples(ds)]

    assert order() == [0, 1, 2, 3, 4]
    shuffled = order(shuffle=True, seed=3)
    assert sorted(shuffled) == [0, 1, 2, 3, 4] and shuffled != [0, 1, 2, 3, 4]
    assert shuffled == order(shuffle=True, seed=3)
    resized = _examples(nyuv2.load_nyuv2(nyu_mat.data_dir, "train", size=(64, 96)))
    assert resized[0]["image"].shape == (64, 96, 3) and resized[0]["semseg"].shape == (64, 96)
    with pytest.raises(ConfigError, match=r"multiples of 32.*size=\(60, 96\)"):
        nyuv2.load_nyuv2(nyu_mat.data_dir, "train", size=(60, 96))


def test_mapping_file_replaces_builtin_table(nyu_mat, tmp_path):
    custom = np.full(894, 40, dtype=np.float64)
    custom[20] = 2  # wall -> floor
    path = str(tmp_path / "classMapping40.mat")
    scipy.io.savemat(path, {"mapClass": custom.reshape(1, -1)})
    example = _examples(nyuv2.load_nyuv2(nyu_mat.data_dir, "train", mapping_file=path))[0]
    labels = nyu_mat.labels[..., 0]
    assert set(np.unique(example["semseg"][labels == 21])) == {1}
    assert set(np.unique(example["semseg"][(labels != 21) & (labels != 0)])) == {39}
    scipy.io.savemat(path, {"mapClass": custom[:100].reshape(1, -1)})
    with pytest.raises(DataError, match="100 entries; expected 894"):
        nyuv2.load_nyuv2(nyu_mat.data_dir, "train", mapping_file=path)


def test_eval_crop_on_full_frames(tmp_path):
    fixture = fixtures.write_nyu_mat(
        str(tmp_path), height=480, width=640, num=2, train=(2,), test=(1,)
    )
    example = _examples(nyuv2.load_nyuv2(str(tmp_path), "train", eval_crop=True))[0]
    assert example["image"].shape == (426, 560, 3)
    np.testing.assert_array_equal(example["image"], fixture.images[45:471, 41:601, :, 1])
    np.testing.assert_array_equal(example["depth"], fixture.depths[45:471, 41:601, 1])


def test_eval_crop_needs_full_frames(nyu_mat):
    with pytest.raises(ConfigError, match=r"eval_crop=True .* 480x640 .* 24x32"):
        nyuv2.load_nyuv2(nyu_mat.data_dir, "train", eval_crop=True)


def test_mat_header_is_real_matlab_v73(nyu_mat):
    with open(os.path.join(nyu_mat.data_dir, "nyu_depth_v2_labeled.mat"), "rb") as handle:
        head = handle.read(520)
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[512:] == b"\x89HDF\r\n\x1a\n"
    assert nyuv2.mat_version(os.path.join(nyu_mat.data_dir, "splits.mat")) == "5"


def _copy(nyu_mat, tmp_path):
    target = str(tmp_path / "copy")
    shutil.copytree(nyu_mat.data_dir, target)
    return target


def test_bad_mat_files(nyu_mat, tmp_path):
    root = _copy(nyu_mat, tmp_path)
    mat = os.path.join(root, "nyu_depth_v2_labeled.mat")
    splits = os.path.join(root, "splits.mat")
    # splits.mat saved as v7.3 instead of v5.
    fixtures.write_splits(splits, (1,), (2,), version="7.3")
    with pytest.raises(DataError, match=r"splits\.mat is a MATLAB v7\.3 .* expected MATLAB v5"):
        nyuv2.load_nyuv2(root, "train")
    # Split index out of range.
    fixtures.write_splits(splits, (1, 6), (2,))
    with pytest.raises(DataError, match=r"split index 6 .* 'trainNdxs' .* holds 5 images"):
        nyuv2.load_nyuv2(root, "train")
    fixtures.write_splits(splits, (0, 1), (2,))  # 0-based by mistake
    with pytest.raises(DataError, match=r"split index 0 .* 1-based indices must lie in 1\.\.5"):
        nyuv2.load_nyuv2(root, "train")
    fixtures.write_splits(splits, (1,), (2,))
    # Labels of another size than the images.
    other = os.path.join(tmp_path, "other")
    os.makedirs(other)
    shutil.copy(splits, other)
    fixtures.write_mat_v73(
        os.path.join(other, "nyu_depth_v2_labeled.mat"),
        {
            "images": np.zeros((24, 32, 3, 2), np.uint8),
            "depths": np.ones((24, 32, 2), np.float32),
            "labels": np.zeros((12, 32, 2), np.uint16),
        },
    )
    with pytest.raises(
        DataError, match=r"'labels' has shape \(2, 32, 12\); expected \(2, 32, 24\)"
    ):
        nyuv2.load_nyuv2(other, "train")
    # The labelled .mat missing, layout named explicitly.
    os.remove(os.path.join(other, "nyu_depth_v2_labeled.mat"))
    with pytest.raises(DataError, match=r"missing .*other/nyu_depth_v2_labeled\.mat; expected"):
        nyuv2.load_nyuv2(other, "train", layout="mat")
    # Missing splits.mat.
    os.remove(splits)
    with pytest.raises(DataError, match=r"missing split file .*splits\.mat"):
        nyuv2.load_nyuv2(root, "test")
    # The labelled .mat saved as v5 instead of v7.3.
    scipy.io.savemat(mat, {"images": np.zeros((2, 2, 3, 1), np.uint8)})
    with pytest.raises(DataError, match=r"labeled\.mat is a MATLAB v5 .* expected MATLAB v7\.3"):
        nyuv2.load_nyuv2(root, "all")
    # Not a .mat at all.
    with open(mat, "wb") as handle:
        handle.write(b"hello")
    with pytest.raises(DataError, match=r"is not a MATLAB \.mat file"):
        nyuv2.load_nyuv2(root, "all", layout="mat")
    # A v7.3 file without labels.
    fixtures.write_mat_v73(mat, {"images": np.zeros((4, 4, 3, 1), np.uint8)})
    with pytest.raises(DataError, match=r"no \['depths', 'labels'\] dataset"):
        nyuv2.load_nyuv2(root, "all")


def test_layout_detection_errors(nyu_mat, nyu_npy, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        nyuv2.load_nyuv2(str(tmp_path / "nope"), "train")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"no NYUv2 data .*readme\.txt.*nyu_depth_v2_labeled"):
        nyuv2.load_nyuv2(str(tmp_path / "empty"), "train")
    both = _copy(nyu_mat, tmp_path)
    shutil.copytree(os.path.join(nyu_npy.data_dir, "train"), os.path.join(both, "train"))
    with pytest.raises(DataError, match="ambiguous NYUv2 layout"):
        nyuv2.load_nyuv2(both, "train")
    assert len(_examples(nyuv2.load_nyuv2(both, "train", layout="npy"))) == 3
    assert len(_examples(nyuv2.load_nyuv2(both, "train", layout="mat"))) == 3
    with pytest.raises(ConfigError, match=r"unknown NYUv2 split.*split='training'"):
        nyuv2.load_nyuv2(nyu_mat.data_dir, "training")
    with pytest.raises(ConfigError, match=r"unknown nyuv2 option\(s\) \['labelset'\]"):
        nyuv2.load_nyuv2(nyu_mat.data_dir, "train", labelset="nyu13")


def test_npy_layout_values(nyu_npy):
    examples = _examples(ka_tf.data.load("nyuv2", nyu_npy.data_dir, "val"))
    assert len(examples) == 2
    for example, written in zip(examples, nyu_npy.arrays["val"], strict=True):
        np.testing.assert_array_equal(example["image"], np.round(written["image"] * 255))
        expected = np.where(written["label"] < 0, 255, written["label"]).astype(np.uint8)
        np.testing.assert_array_equal(example["semseg"], expected)
        np.testing.assert_array_equal(example["depth"], written["depth"][..., 0])
        assert (example["depth"][0] == 0).all()
        np.testing.assert_array_equal(example["normals"], written["normal"])
    assert len(_examples(nyuv2.load_nyuv2(nyu_npy.data_dir, "test"))) == 2
    with pytest.raises(ConfigError, match=r"13-class labels only.*label_set='nyu40'"):
        nyuv2.load_nyuv2(nyu_npy.data_dir, "train", label_set="nyu40")


def test_npy_layout_errors(nyu_npy, tmp_path):
    root = str(tmp_path / "npy")
    shutil.copytree(nyu_npy.data_dir, root)
    np.save(os.path.join(root, "train", "label", "1.npy"), np.zeros((16, 64)))
    with pytest.raises(DataError, match=r"label/1\.npy has shape \(16, 64\); expected"):
        nyuv2.load_nyuv2(root, "train")
    os.remove(os.path.join(root, "train", "label", "1.npy"))
    with pytest.raises(DataError, match=r"missing .*label/1\.npy: .*image/1\.npy has no matching"):
        nyuv2.load_nyuv2(root, "train")
    shutil.rmtree(os.path.join(root, "val", "normal"))
    with pytest.raises(DataError, match=r"missing folder .*val/normal"):
        nyuv2.load_nyuv2(root, "val")


def test_gin_data_file_binds_load(nyu_mat):
    import gin

    from ka_tf import config
    from tests.helpers import REPO_ROOT

    gin_file = os.path.join(REPO_ROOT, "gin", "data", "nyuv2.gin")
    with pytest.raises(ConfigError, match=r"DATA_DIR is required .*nyuv2\.gin"):
        config.parse_gin_config([gin_file])  # DATA_DIR = %gin.REQUIRED left unbound
    gin.clear_config()
    config.parse_gin_config([gin_file], [f"DATA_DIR = '{nyu_mat.data_dir}'"])
    assert gin.query_parameter("%NUM_CLASSES") == len(NYU13_CLASSES)
    dataset = ka_tf.data.load(
        split=gin.query_parameter("%TRAIN_SPLIT"),
        label_set=gin.query_parameter("%LABEL_SET"),
        size=gin.query_parameter("%IMAGE_SIZE"),
    )
    example = next(iter(dataset))
    assert example["image"].shape == (288, 384, 3) and example["depth"].shape == (288, 384)
    assert set(np.unique(example["semseg"].numpy())) <= set(range(13)) | {255}


def test_npy_layout_value_errors_while_reading(nyu_npy, tmp_path):
    # Raised inside the generator: tf.data surfaces them as InvalidArgumentError, whose
    # message carries the DataError (the tools turn it back into one line).
    import tensorflow as tf

    root = str(tmp_path / "npy")
    shutil.copytree(nyu_npy.data_dir, root)
    image = os.path.join(root, "train", "image", "0.npy")
    saved = np.load(image)
    np.save(image, np.full(saved.shape, 255.0))  # 0..255 floats where 0..1 is expected
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"image/0\.npy holds values in \[255, 255\]; expected a",
    ):
        _examples(nyuv2.load_nyuv2(root, "train"))
    np.save(image, saved)
    label = os.path.join(root, "train", "label", "0.npy")
    np.save(label, np.full(np.load(label).shape, 50.0))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"label/0\.npy holds values in \[50.0, 50.0\]"
    ):
        _examples(nyuv2.load_nyuv2(root, "train"))
