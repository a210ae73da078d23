r"""Input-pipeline throughput of the real-data loaders on full-size fixture files.

Usage:
    python benchmarks/pipeline_throughput.py [--frames=24] [--repeats=3] [--output=p.json]

Writes, once, into --fixture_dir (default: a temporary folder) a Cityscapes tree of
--frames frames at 1024×2048 (leftImg8bit RGB, gtFine labelIds, 16-bit disparity,
camera json) and an image folder of as many 1024×2048 PNGs, with smooth content plus
noise so that the PNGs compress like photographs (~2-4 MB each), then times
``ka_tf.data.load(...)`` for each: frames per second through the whole pipeline
(decode, label mapping, disparity → depth, resize to --size), median and spread over
--repeats passes. Compare revisions by running it on each (the figure depends on
the machine; the ratio between two runs on one machine is what to read).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from ka_tf import path_flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_integer("frames", 24, "Frames per fixture.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed passes over each dataset.", lower_bound=1)
flags.DEFINE_list("size", ["512", "1024"], "H,W the pipelines resize to.")
path_flags.define_path("fixture_dir", None, "Where the fixtures are written (default: temp).")
path_flags.define_path("output", None, "Optional JSON file for the results.")

HEIGHT, WIDTH = 1024, 2048


def _photo_like(rng: np.random.Generator, channels: int) -> np.ndarray:
    """A smooth random field plus mild noise, [HEIGHT, WIDTH, channels] in 0..1."""
    coarse = rng.uniform(0, 1, (HEIGHT // 64 + 1, WIDTH // 64 + 1, channels))
    field = np.kron(coarse, np.ones((64, 64, 1)))[:HEIGHT, :WIDTH]
    return np.clip(field + rng.normal(0, 0.02, field.shape), 0, 1)


def write_fixtures(root: str, frames: int) -> dict[str, str]:
    """Writes the Cityscapes tree and the image folder (once); returns their roots."""
    from PIL import Image

    cityscapes, folder = os.path.join(root, "cityscapes"), os.path.join(root, "images")
    marker = os.path.join(root, f".done_{frames}")
    if os.path.exists(marker):
        return {"cityscapes": cityscapes, "image_folder": folder}
    rng = np.random.default_rng(0)
    for index in range(frames):
        stem = f"bench_{index:06d}_000019"
        paths = {
            "image": f"leftImg8bit/val/bench/{stem}_leftImg8bit.png",
            "label": f"gtFine/val/bench/{stem}_gtFine_labelIds.png",
            "disparity": f"disparity/val/bench/{stem}_disparity.png",
            "camera": f"camera/val/bench/{stem}_camera.json",
        }
        for relative in paths.values():
            os.makedirs(os.path.dirname(os.path.join(cityscapes, relative)), exist_ok=True)
        image = (_photo_like(rng, 3) * 255).astype(np.uint8)
        Image.fromarray(image).save(os.path.join(cityscapes, paths["image"]))
        ids = (_photo_like(rng, 1)[..., 0] * 33).astype(np.uint8)
        Image.fromarray(ids, mode="L").save(os.path.join(cityscapes, paths["label"]))
        disparity = (_photo_like(rng, 1)[..., 0] * 30000).astype(np.uint16)
        Image.fromarray(disparity).save(os.path.join(cityscapes, paths["disparity"]))
        camera = {"extrinsic": {"baseline": 0.209}, "intrinsic": {"fx": 2262.5}}
        with open(os.path.join(cityscapes, paths["camera"]), "w") as handle:
            json.dump(camera, handle)
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).save(os.path.join(folder, f"{stem}.png"))
    open(marker, "w").close()
    return {"cityscapes": cityscapes, "image_folder": folder}


def frames_per_second(make_dataset, frames: int, repeats: int) -> list[float]:
    """Frames per second of full passes over ``make_dataset()`` (one warm-up pass first)."""
    for _ in make_dataset():
        pass
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = sum(1 for _ in make_dataset())
        rates.append(count / (time.perf_counter() - started))
        assert count == frames, (count, frames)
    return rates


def main(argv: list[str]) -> int:
    del argv
    sys.path.insert(0, REPO_ROOT)
    import ka_tf.data
    from ka_tf import cli  # noqa: F401  (imports TensorFlow without its C++ start-up lines)

    size = tuple(int(v) for v in FLAGS.size)
    root = FLAGS.fixture_dir or tempfile.mkdtemp(prefix="ka_tf_pipeline_")
    roots = write_fixtures(root, FLAGS.frames)
    loaders = {
        "cityscapes": lambda: ka_tf.data.load("cityscapes", roots["cityscapes"], "val", size=size),
        "image_folder": lambda: ka_tf.data.load(
            "image_folder", roots["image_folder"], "all", size=size
        ),
    }
    results = {"frames": FLAGS.frames, "source_size": [HEIGHT, WIDTH], "size": list(size)}
    for name, loader in loaders.items():
        rates = frames_per_second(loader, FLAGS.frames, FLAGS.repeats)
        results[name] = {
            "frames_per_s_median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
        }
        print(
            f"{name:>13}: {statistics.median(rates):6.2f} frames/s "
            f"(min {min(rates):.2f}, max {max(rates):.2f}; {FLAGS.repeats} passes of "
            f"{FLAGS.frames} {HEIGHT}x{WIDTH} frames -> {size[0]}x{size[1]})",
            flush=True,
        )
    if FLAGS.output:
        with open(FLAGS.output, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    app.run(main)
