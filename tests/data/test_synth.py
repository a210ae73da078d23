"""The synthetic benchmark: determinism, split seeds, label/depth/normal validity,
exact geometry, class coverage, the loaders, the cache and corrupt-shard errors."""

from __future__ import annotations

import json
import os
import subprocess

import gin
import numpy as np
import pytest

from ka_tf.constants import CITYSCAPES_CLASSES, IGNORE_LABEL, NYU13_CLASSES
from ka_tf.data import load, tfrecord_io
from ka_tf.data.synth import camera as camera_lib
from ka_tf.data.synth import generate, seeds
from ka_tf.data.synth import renderer as renderer_lib
from ka_tf.data.synth.camera import intrinsics
from ka_tf.data.synth.config import resolve_scene_config, scene_config
from ka_tf.data.synth.primitives import Camera, LayoutBuilder, Lighting, Material, SceneLayout
from ka_tf.data.synth.renderer import Renderer
from ka_tf.data.synth.sky import sky_image
from ka_tf.data.synth.textures import TextureFiles, default_texture_dir
from ka_tf.data.synth_dataset import (
    class_names,
    default_cache_dir,
    ensure_generated,
    num_classes,
    palette,
)
from ka_tf.errors import ConfigError, DataError

H, W = 32, 64


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory):
    """Street and indoor `val` splits of 6 frames at 32x64, shared by the loader tests."""
    root = str(tmp_path_factory.mktemp("synth"))
    for scene in ("street", "indoor"):
        ensure_generated(scene, "val", num_frames=6, height=H, width=W, data_dir=root, workers=1)
    return root


def _render(scene: str, split: str, index: int, height: int = H, width: int = W, seed: int = 0):
    return generate.render_frame(
        scene, split, seed, index, height, width, resolve_scene_config(scene)
    )


def test_class_tables():
    assert num_classes("street") == 19 and num_classes("indoor") == 13
    assert class_names("street") == CITYSCAPES_CLASSES
    assert class_names("indoor") == NYU13_CLASSES
    assert palette("street").shape == (19, 3) and palette("street").dtype == np.uint8
    assert tuple(palette("street")[0]) == (128, 64, 128)
    with pytest.raises(ConfigError, match="unknown scene"):
        num_classes("forest")


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path))
    assert default_cache_dir() == str(tmp_path)
    monkeypatch.delenv("KA_TF_CACHE")
    assert default_cache_dir().endswith(os.path.join(".cache", "ka_tf", "synth"))


def test_generation_is_byte_identical_across_runs_and_worker_counts(tmp_path):
    kwargs = dict(scene="street", split="test", num_frames=5, height=H, width=W, seed=3)
    one = generate.generate_split(**kwargs, data_dir=str(tmp_path / "a"), workers=1, progress=False)
    two = generate.generate_split(**kwargs, data_dir=str(tmp_path / "b"), workers=2, progress=False)
    spec_a, spec_b = tfrecord_io.read_spec(one), tfrecord_io.read_spec(two)
    assert [s["sha256"] for s in spec_a["shards"]] == [s["sha256"] for s in spec_b["shards"]]
    for shard in spec_a["shards"]:
        with (
            open(os.path.join(one, shard["file"]), "rb") as a,
            open(os.path.join(two, shard["file"]), "rb") as b,
        ):
            assert a.read() == b.read()


def test_render_is_independent_of_renderer_history():
    config = resolve_scene_config("indoor")
    first = generate.render_frame("indoor", "val", 0, 2, H, W, config)
    for index in range(3):  # other frames in between
        generate.render_frame("street", "teacher", 0, index, H, W, resolve_scene_config("street"))
    again = generate.render_frame("indoor", "val", 0, 2, H, W, config)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])


def _frames(renderer, tasks):
    """Renders (scene, split, index, height, width) tasks with ``renderer``, in order."""
    frames = {}
    for scene, split, index, height, width in tasks:
        rng = seeds.frame_rng(scene, split, 0, index)
        layout = generate.LAYOUTS[scene](rng, resolve_scene_config(scene))
        frames[(scene, split, index, height, width)] = renderer.render(layout, height, width, rng)
    return frames


def _assert_same_frames(first, second):
    assert first.keys() == second.keys()
    for key in first:
        assert first[key].keys() == second[key].keys()
        for name in first[key]:
            assert first[key][name].dtype == second[key][name].dtype, (key, name)
            np.testing.assert_array_equal(first[key][name], second[key][name], err_msg=str(key))


def test_cold_and_warm_renderers_give_the_same_frames_in_any_order(monkeypatch):
    # A renderer keeps its pybullet world, textures and meshes' templates between
    # frames; none of it may leak into a frame. Fresh renderers (cold) against one
    # reused renderer (warm, reset every 3 frames: textures reloaded) in another order.
    monkeypatch.setattr(renderer_lib, "RESET_EVERY", 3)
    tasks = [
        (scene, split, index, height, width)
        for scene in ("street", "indoor")
        for split, index in (("val", 0), ("test", 1))
        for height, width in ((H, W), (64, 128))
    ]
    cold = {}
    for task in tasks:
        cold.update(_frames(Renderer(), [task]))
    warm_renderer = Renderer()
    warm = _frames(warm_renderer, tasks[::-1] + tasks[1::2])
    _assert_same_frames(cold, warm)


@pytest.mark.parametrize("scene", ["street", "indoor"])
def test_leaving_out_hidden_triangles_changes_no_pixel(scene, monkeypatch):
    tasks = [(scene, "val", index, H, W) for index in range(3)] + [(scene, "test", 0, 64, 128)]
    culled = _frames(Renderer(), tasks)
    counts, hidden_triangles = [], camera_lib.hidden_triangles

    def nothing_hidden(vertices, triangles, camera, aspect):
        hidden = hidden_triangles(vertices, triangles, camera, aspect)
        counts.append((hidden.sum(), len(hidden)))
        return np.zeros(len(triangles), dtype=bool)

    monkeypatch.setattr(camera_lib, "hidden_triangles", nothing_hidden)
    _assert_same_frames(culled, _frames(Renderer(), tasks))
    hidden, total = np.sum(counts, axis=0)
    assert hidden > 0.3 * total  # the culling does drop most hidden triangles


def test_frames_do_not_depend_on_how_links_are_split_into_bodies(monkeypatch):
    tasks = [("street", "val", 0, H, W), ("indoor", "val", 1, H, W)]
    one_body = _frames(Renderer(), tasks)
    monkeypatch.setattr(renderer_lib, "MAX_LINKS", 4)  # many bodies: other mask codes
    renderer = Renderer()
    _assert_same_frames(one_body, _frames(renderer, tasks))
    assert len(renderer._bodies) >= 2  # (of the last frame)


def _reference_difference(points, valid, ids, axis):
    """The neighbour difference by its definition, one whole-image op at a time."""
    n = points.shape[axis]

    def shift(array, offset):
        return np.take(array, np.clip(np.arange(n) + offset, 0, n - 1), axis=axis)

    forward = shift(points, 1) - points
    backward = points - shift(points, -1)
    inside_f, inside_b = np.ones(valid.shape, bool), np.ones(valid.shape, bool)
    edge = [slice(None)] * valid.ndim
    edge[axis] = n - 1
    inside_f[tuple(edge)] = False
    edge[axis] = 0
    inside_b[tuple(edge)] = False
    ok_f = inside_f & valid & shift(valid, 1) & (shift(ids, 1) == ids)
    ok_b = inside_b & valid & shift(valid, -1) & (shift(ids, -1) == ids)
    use_f = ok_f & (~ok_b | (np.abs(forward[..., 2]) <= np.abs(backward[..., 2])))
    return np.where(use_f[..., None], forward, backward), ok_f | ok_b


def _reference_normals(depth, ids, fov_deg):
    """Normals by their definition (the batched normals_from_depth's specification)."""
    valid = depth > 0
    points = camera_lib.backproject(depth, fov_deg)
    dx, ok_x = _reference_difference(points, valid, ids, axis=1)
    dy, ok_y = _reference_difference(points, valid, ids, axis=0)
    normals = np.cross(dy, dx)
    length = np.linalg.norm(normals, axis=-1)
    ok = valid & ok_x & ok_y & (length > 1e-12)
    normals = normals / np.where(ok, length, 1.0)[..., None]
    normals[np.sum(normals * points, axis=-1) > 0] *= -1.0
    normals[~ok] = 0.0
    normals = normals.astype(np.float32)
    length32 = np.linalg.norm(normals, axis=-1, keepdims=True)
    return np.where(length32 > 0, normals / np.maximum(length32, 1e-12), 0.0).astype(np.float32)


def test_batched_normals_equal_their_definition_bit_for_bit():
    rng = np.random.default_rng(0)
    depth = np.repeat(rng.uniform(1.0, 30.0, (24, 5)), 8, axis=1)  # flat runs and steps
    depth += rng.normal(0.0, 0.01, depth.shape)
    depth[rng.random(depth.shape) < 0.1] = 0.0
    ids = np.repeat(rng.integers(0, 3, (24, 10)), 4, axis=1)
    for fov in (30.0, 50.0):
        expected = _reference_normals(depth, ids, fov)
        assert (np.linalg.norm(expected, axis=-1) > 0).mean() > 0.3
        np.testing.assert_array_equal(camera_lib.normals_from_depth(depth, ids, fov), expected)


def test_labels_map_mask_codes_and_reject_unknown_ones():
    code_class = {7 + (1 << 24): 3, 7: 5, 9 + (2 << 24): 11, 9 + (5 << 24): 2}  # two bodies
    mask = np.random.default_rng(0).choice([-1, *code_class], size=(16, 16)).astype(np.int32)
    surface, semseg = renderer_lib._labels(mask, code_class, 255)
    expected = [[code_class.get(int(code), 255) for code in row] for row in mask]
    np.testing.assert_array_equal(semseg, np.array(expected, dtype=np.uint8))
    for code in code_class:  # one surface id per code, another for the background
        assert len(np.unique(surface[mask == code])) == 1
    assert len(np.unique(surface)) == len(np.unique(mask))
    for unknown in (8 + (1 << 24), 7 + (3 << 24)):
        mask[0, 0] = unknown
        with pytest.raises(RuntimeError, match="no body has"):
            renderer_lib._labels(mask, code_class, 255)


def test_sky_of_some_rows_equals_those_rows_of_the_whole_sky():
    args = (48, 64, 35.0, -3.0, (0.2, 0.4, 0.8), (0.8, 0.85, 0.9))
    for cloudiness in (0.0, 0.5):
        whole_rng, part_rng = np.random.default_rng(1), np.random.default_rng(1)
        whole = sky_image(whole_rng, *args, cloudiness)
        part = sky_image(part_rng, *args, cloudiness, rows=slice(5, 20))
        np.testing.assert_array_equal(part, whole[5:20])
        assert whole_rng.random() == part_rng.random()  # the generators advanced alike


def test_splits_use_disjoint_seeds():
    tuples = {
        split: {seeds.frame_seed("street", split, seed, i) for seed in range(4) for i in range(50)}
        for split in seeds.SPLITS
    }
    for a in seeds.SPLITS:
        for b in seeds.SPLITS:
            if a != b:
                assert not tuples[a] & tuples[b], (a, b)
    images = {split: _render("street", split, 0)["image"] for split in seeds.SPLITS}
    assert len({img.tobytes() for img in images.values()}) == len(seeds.SPLITS)
    with pytest.raises(ConfigError, match="unknown split"):
        seeds.frame_seed("street", "train", 0, 0)


@pytest.mark.parametrize("scene", ["street", "indoor"])
def test_labels_depth_and_normals_are_valid(scene):
    config = resolve_scene_config(scene)
    n_classes = num_classes(scene)
    for index in range(4):
        frame = _render(scene, "teacher", index)
        assert frame["image"].dtype == np.uint8 and frame["image"].shape == (H, W, 3)
        labels, depth, normals = frame["semseg"], frame["depth"], frame["normals"]
        assert labels.dtype == np.uint8 and depth.dtype == np.float32
        assert normals.dtype == np.float32 and normals.shape == (H, W, 3)
        assert np.all((labels < n_classes) | (labels == IGNORE_LABEL))
        assert np.all(np.isfinite(depth)) and np.all(depth >= 0)
        valid = depth > 0
        assert valid.mean() > 0.5
        assert depth[valid].min() >= config.near_m * 0.999
        assert depth[valid].max() <= config.far_m * 1.001
        length = np.linalg.norm(normals, axis=-1)
        has_normal = length > 0
        assert has_normal.mean() > 0.5
        np.testing.assert_allclose(length[has_normal], 1.0, atol=1e-5)
        assert not np.any(has_normal & ~valid), "normals where depth is invalid"
        if scene == "street":  # sky = no depth, no normal
            sky = labels == CITYSCAPES_CLASSES.index("sky")
            assert np.all(depth[sky] == 0) and np.all(length[sky] == 0)


def _flat_layout(builder: LayoutBuilder, camera: Camera) -> SceneLayout:
    light = Lighting((0.3, -0.5, 0.8), (1.0, 1.0, 1.0), 0.6, 0.4, 0.0, False, 1.0, 0.0)
    return SceneLayout(builder.primitives(), camera, light, IGNORE_LABEL, None)


def test_depth_and_normals_match_known_geometry():
    """A wall 5 m ahead and a floor 1.5 m below a level camera."""
    builder = LayoutBuilder()
    grey = Material(None, (0.7, 0.7, 0.7))
    builder.box((0.0, 5.1, 0.0), (20.0, 0.1, 20.0), 3, grey)  # wall face at y = 5
    builder.box((0.0, 2.0, -1.6), (20.0, 3.0, 0.1), 4, grey)  # floor top at z = -1.5
    builder.box((-2.1, 2.0, 0.0), (0.1, 3.0, 1.5), 5, grey)  # side wall face at x = -2
    camera = Camera((0.0, 0.0, 0.0), 0.0, 0.0, 60.0, 0.1, 50.0)
    frame = Renderer().render(_flat_layout(builder, camera), 64, 128, np.random.default_rng(0))
    labels, depth, normals = frame["semseg"], frame["depth"], frame["normals"]
    wall, floor = labels == 3, labels == 4
    assert wall.sum() > 500 and floor.sum() > 500
    np.testing.assert_allclose(depth[wall], 5.0, rtol=1e-3)
    interior = wall & (np.linalg.norm(normals, axis=-1) > 0)
    np.testing.assert_allclose(normals[interior], [[0.0, 0.0, -1.0]] * interior.sum(), atol=1e-3)
    # Floor: camera y points down, so the floor's normal (world up) is -y.
    floor_normals = normals[floor & (np.linalg.norm(normals, axis=-1) > 0)]
    np.testing.assert_allclose(np.median(floor_normals, axis=0), [0.0, -1.0, 0.0], atol=1e-2)
    # Pinhole geometry with the renderer's intrinsics: floor z = 1.5 f / (v - cy),
    # side wall z = 2 f / (cx - u).
    focal, cx, cy = intrinsics(64, 128, 60.0)
    rows, cols = np.nonzero(floor & (np.arange(64)[:, None] > cy + 1))
    np.testing.assert_allclose(depth[rows, cols], 1.5 * focal / (rows - cy), rtol=2e-3)
    rows, cols = np.nonzero(labels == 5)
    assert rows.size > 100
    np.testing.assert_allclose(depth[rows, cols], 2.0 * focal / (cx - cols), rtol=2e-3)
    side = (labels == 5) & (np.linalg.norm(normals, axis=-1) > 0)
    np.testing.assert_allclose(np.median(normals[side], axis=0), [1.0, 0.0, 0.0], atol=1e-2)


def test_layouts_cover_every_class_in_100_frames():
    for scene, names in (("street", CITYSCAPES_CLASSES), ("indoor", NYU13_CLASSES)):
        config = resolve_scene_config(scene)
        seen = set()
        for index in range(100):
            rng = seeds.frame_rng(scene, "teacher", 0, index)
            layout = generate.LAYOUTS[scene](rng, config)
            seen |= layout.class_ids() | {layout.background_class}  # street: sky
        missing = [names[c] for c in range(len(names)) if c not in seen]
        assert not missing, (scene, missing)


@pytest.mark.parametrize("scene,frames", [("indoor", 60), ("street", 40)])
def test_rendered_frames_show_every_class_fast(scene, frames):
    seen = set()
    for index in range(frames):
        seen |= set(np.unique(_render(scene, "val", index)["semseg"]).tolist())
    missing = [name for c, name in enumerate(class_names(scene)) if c not in seen]
    assert not missing, missing


@pytest.mark.slow
@pytest.mark.parametrize("scene", ["street", "indoor"])
def test_every_class_present_in_a_100_frame_split(scene, tmp_path):
    data_dir = ensure_generated(scene, "test", 100, 64, 128, data_dir=str(tmp_path), workers=2)
    seen = set()
    for element in load(f"synth_{scene}", data_dir=data_dir, split="test"):
        seen |= set(np.unique(element["semseg"].numpy()).tolist())
    missing = [name for c, name in enumerate(class_names(scene)) if c not in seen]
    assert not missing, missing


@pytest.mark.parametrize("scene", ["street", "indoor"])
def test_load_returns_documented_dtypes_and_shapes(tiny_data_dir, scene):
    dataset = load(f"synth_{scene}", data_dir=tiny_data_dir, split="val")
    spec = dataset.element_spec
    assert set(spec) == {"image", "semseg", "depth", "normals"}
    assert spec["image"].shape == (H, W, 3) and spec["image"].dtype.name == "uint8"
    assert spec["semseg"].shape == (H, W) and spec["semseg"].dtype.name == "uint8"
    assert spec["depth"].shape == (H, W) and spec["depth"].dtype.name == "float32"
    assert spec["normals"].shape == (H, W, 3) and spec["normals"].dtype.name == "float32"
    elements = list(dataset)
    assert len(elements) == 6 == int(dataset.cardinality())
    first = _render(scene, "val", 0)
    np.testing.assert_array_equal(elements[0]["image"].numpy(), first["image"])
    np.testing.assert_array_equal(elements[0]["semseg"].numpy(), first["semseg"])
    np.testing.assert_array_equal(elements[0]["depth"].numpy(), first["depth"])
    loaded_normals = elements[0]["normals"].numpy()
    np.testing.assert_allclose(loaded_normals, first["normals"], atol=2e-3)
    length = np.linalg.norm(loaded_normals, axis=-1)
    np.testing.assert_allclose(length[length > 0], 1.0, atol=1e-5)

    images = load(f"synth_{scene}", data_dir=tiny_data_dir, split="val", images_only=True)
    assert set(images.element_spec) == {"image"}
    shuffled = [
        e["image"].numpy().tobytes()
        for e in load(f"synth_{scene}", data_dir=tiny_data_dir, split="val", shuffle=True, seed=1)
    ]
    assert sorted(shuffled) == sorted(e["image"].numpy().tobytes() for e in elements)


def test_load_errors_name_the_problem(tiny_data_dir, tmp_path):
    with pytest.raises(DataError, match=r"make_synth\.py --scene=street --split=teacher"):
        load("synth_street", data_dir=tiny_data_dir, split="teacher")
    with pytest.raises(ConfigError, match="unknown split"):
        load("synth_indoor", data_dir=tiny_data_dir, split="train")


def _copy_split(src_root: str, dst_root: str, scene: str = "street") -> str:
    import shutil

    dst = os.path.join(dst_root, scene, "val")
    shutil.copytree(os.path.join(src_root, scene, "val"), dst)
    return dst


def test_truncated_shard_is_a_data_error_naming_the_file(tiny_data_dir, tmp_path):
    directory = _copy_split(tiny_data_dir, str(tmp_path))
    shard = os.path.join(directory, tfrecord_io.read_spec(directory)["shards"][0]["file"])
    with open(shard, "rb+") as handle:
        handle.truncate(os.path.getsize(shard) // 2)
    with pytest.raises(DataError, match="truncated") as info:
        load("synth_street", data_dir=str(tmp_path), split="val")
    assert shard in str(info.value)


def test_corrupt_shard_is_a_data_error_naming_the_file(tiny_data_dir, tmp_path):
    directory = _copy_split(tiny_data_dir, str(tmp_path))
    shard = os.path.join(directory, tfrecord_io.read_spec(directory)["shards"][0]["file"])
    with open(shard, "rb+") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DataError, match="SHA-256") as info:
        load("synth_street", data_dir=str(tmp_path), split="val")
    assert shard in str(info.value)


def test_interrupted_write_leaves_previous_dataset_and_no_half_shard(tmp_path):
    features = {"x": tfrecord_io.feature("float32", (2,))}
    directory = str(tmp_path / "ds")
    tfrecord_io.write_dataset(directory, [{"x": np.ones(2)}] * 3, features, num_records=3)
    before = tfrecord_io.read_spec(directory)

    def failing():
        yield {"x": np.zeros(2)}
        raise KeyboardInterrupt  # a user pressing Ctrl-C mid-generation

    with pytest.raises(KeyboardInterrupt):
        tfrecord_io.write_dataset(directory, failing(), features, num_records=3)
    assert tfrecord_io.read_spec(directory) == before
    tfrecord_io.verify_shards(directory, before)
    assert sorted(os.listdir(tmp_path)) == ["ds"], "staging files left behind"
    values = [e["x"].numpy().tolist() for e in tfrecord_io.load_dataset(directory)]
    assert values == [[1.0, 1.0]] * 3

    fresh = str(tmp_path / "fresh")
    with pytest.raises(KeyboardInterrupt):
        tfrecord_io.write_dataset(fresh, failing(), features, num_records=3)
    with pytest.raises(DataError, match=r"spec\.json is missing"):
        tfrecord_io.load_dataset(fresh)


def test_write_removes_leftovers_of_a_killed_writer(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a finished process: its pid names no live writer
    leftover = tmp_path / f".ds.staging-{dead.pid}"
    leftover.mkdir()
    (leftover / ".data-00000-of-00001.tfrecord.tmp").write_bytes(b"half a shard")
    live = tmp_path / f".ds.staging-{os.getppid()}"  # another writer still running: kept
    live.mkdir()
    features = {"x": tfrecord_io.feature("float32", (2,))}
    tfrecord_io.write_dataset(str(tmp_path / "ds"), [{"x": np.ones(2)}], features, 1)
    assert not leftover.exists() and live.exists()
    assert tfrecord_io.read_spec(str(tmp_path / "ds"))["num_records"] == 1


def test_ensure_generated_caches_by_spec(tmp_path):
    root = str(tmp_path)
    ensure_generated("indoor", "val", 2, H, W, data_dir=root, workers=1)
    spec_path = os.path.join(root, "indoor", "val", "spec.json")
    stamp = os.stat(spec_path).st_mtime_ns
    assert ensure_generated("indoor", "val", 2, H, W, data_dir=root, workers=1) == root
    assert os.stat(spec_path).st_mtime_ns == stamp, "regenerated an identical split"
    ensure_generated("indoor", "val", 3, H, W, data_dir=root, workers=1)
    with open(spec_path) as handle:
        assert json.load(handle)["num_records"] == 3
    with pytest.raises(ConfigError, match="multiple of 32"):
        ensure_generated("indoor", "val", 2, 30, W, data_dir=root)


def test_scene_config_is_gin_bindable_per_scene():
    gin.parse_config(
        "scene_config.sensor_noise_std = 0.0\nstreet/scene_config.fov_deg = (30.0, 30.0)"
    )
    street, indoor = resolve_scene_config("street"), resolve_scene_config("indoor")
    assert street.fov_deg == (30.0, 30.0) and street.sensor_noise_std == 0.0
    assert indoor.fov_deg == scene_config("indoor").fov_deg and indoor.sensor_noise_std == 0.0
    assert street.fingerprint() != scene_config("street").fingerprint()
    counts = scene_config("street", counts={"parked_car": (1, 1)}).counts
    assert counts["parked_car"] == (1, 1) and counts["moving_car"] == (0, 4)
    with pytest.raises(ConfigError, match="unknown object kind"):
        scene_config("street", counts={"car": (1, 1), "dragon": (1, 2)})
    with pytest.raises(ConfigError, match="low <= high"):
        scene_config("indoor", fov_deg=(60, 40))


def test_texture_files_share_one_directory_per_source_version(tmp_path):
    # Rendering workers are terminated, never closed: a fresh temp dir per process
    # leaked one directory per worker and run. Now every process shares one.
    first, second = TextureFiles(), TextureFiles()
    assert first.directory == second.directory == default_texture_dir()
    path = first.path("brick/1")
    assert os.path.dirname(path) == first.directory
    assert second.path("brick/1") == path
    explicit = TextureFiles(str(tmp_path / "textures"))
    assert os.path.getsize(explicit.path("brick/1")) == os.path.getsize(path)


@pytest.mark.slow  # two renderer processes: ~20 s
def test_two_processes_wanting_one_split_at_once_both_get_it(tmp_path):
    # The workers of a multi-worker run on one machine share the cache; without a lock
    # both rendered and one failed renaming its staging directory into place.
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT

    script = (
        "from ka_tf.data.synth_dataset import ensure_generated\n"
        f"ensure_generated('street', 'val', 4, 32, 64, data_dir={str(tmp_path)!r}, workers=1)\n"
        "print('ready')\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [process.communicate(timeout=300) for process in processes]
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0 and "ready" in out, err[-3000:]
    # One rendered (its progress bar names the split); the other waited and reused it.
    rendered = ["street/val" in err for _, err in results]
    assert sorted(rendered) == [False, True], [err[-500:] for _, err in results]
    from ka_tf.data import load

    assert sum(1 for _ in load("synth_street", data_dir=str(tmp_path), split="val")) == 4
