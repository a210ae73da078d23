r"""Renders one split of the embedded synthetic benchmark into sharded TFRecords.

Usage:
    python tools/make_synth.py --scene=street --split=teacher --num_frames=600 \
        --height=64 --width=128 --seed=0 --out_dir=/tmp/synth [--workers=2] \
        [--preview=sheet.png] [--gin_bindings='scene_config.fov_deg = (30, 40)']

Writes ``<out_dir>/<scene>/<split>/`` (data-*.tfrecord + spec.json), which
``ka_tf.data.load("synth_<scene>", data_dir=<out_dir>, split=<split>)`` reads.
Several scenes and splits share one ``--out_dir``. Scene variation (camera, light,
object counts, textures) is bound through gin on ``scene_config``.
"""

from __future__ import annotations

import os

from absl import flags

from ka_tf import cli, config, io_utils, path_flags
from ka_tf.errors import ConfigError

flags.DEFINE_enum(
    "scene",
    None,
    ["street", "indoor"],
    "Scene kind: 'street' (Cityscapes 19 classes) or 'indoor' (NYUv2 13 classes).",
)
flags.DEFINE_enum(
    "split",
    None,
    ["teacher", "transfer", "val", "test"],
    "Split to render; each split draws from its own disjoint seeds.",
)
flags.DEFINE_integer("num_frames", 100, "Number of frames to render (> 0).")
flags.DEFINE_integer("height", 128, "Image height in pixels (a positive multiple of 32).")
flags.DEFINE_integer("width", 256, "Image width in pixels (a positive multiple of 32).")
flags.DEFINE_integer("seed", 0, "Dataset seed (>= 0); the same seed gives byte-identical output.")
path_flags.define_path(
    "out_dir",
    None,
    "Root output directory (created); the split goes to "
    "<out_dir>/<scene>/<split>/ and replaces a previous one there atomically.",
)
flags.DEFINE_integer("workers", 2, "Rendering processes (>= 1); output does not depend on it.")
path_flags.define_path(
    "preview",
    None,
    "Optional PNG path: a contact sheet of the first frames, "
    "RGB | labels | depth | normals per row, with a class legend.",
)
flags.DEFINE_integer("preview_frames", 8, "Rows in the --preview contact sheet (> 0).")
config.define_gin_flags()
flags.mark_flags_as_required(["scene", "split", "out_dir"])
FLAGS = flags.FLAGS


def _check_flags() -> None:
    from ka_tf.data.synth.generate import validate_request

    validate_request(FLAGS.scene, FLAGS.split, FLAGS.num_frames, FLAGS.height, FLAGS.width)
    if FLAGS.seed < 0:
        raise ConfigError(f"--seed must be >= 0. Received: --seed={FLAGS.seed}.")
    if FLAGS.workers < 1:
        raise ConfigError(f"--workers must be >= 1. Received: --workers={FLAGS.workers}.")
    if FLAGS.preview_frames < 1:
        raise ConfigError(
            f"--preview_frames must be >= 1. Received: --preview_frames={FLAGS.preview_frames}."
        )
    if FLAGS.preview and os.path.isdir(FLAGS.preview):
        raise ConfigError(f"--preview={FLAGS.preview} is a directory, expected a PNG file path.")
    # Last, since it creates --out_dir: a file there, or a path below a file, is an error.
    io_utils.ensure_writable_dir(FLAGS.out_dir, "--out_dir")


def write_preview(path: str, data_dir: str, scene: str, split: str, frames: int) -> None:
    """Writes the contact sheet of the first ``frames`` frames of a written split."""
    import numpy as np

    from ka_tf import visualize
    from ka_tf.data import load
    from ka_tf.data.synth_dataset import class_names, palette

    rows = []
    for element in load(f"synth_{scene}", data_dir=data_dir, split=split).take(frames):
        item = {key: np.asarray(value) for key, value in element.items()}
        rows.append(
            [
                item["image"],
                visualize.colorize_labels(item["semseg"], palette(scene)),
                visualize.colorize_depth(item["depth"]),
                visualize.colorize_normals(item["normals"]),
            ]
        )
    titles = ("RGB", "labels", "depth (near dark)", "normals (camera frame)")
    width = rows[0][0].shape[1]
    header = visualize.make_grid(
        [[visualize.titled(np.zeros((0, width, 3), np.uint8), title) for title in titles]]
    )
    grid = np.concatenate([header, visualize.make_grid(rows)], axis=0)
    key = visualize.legend(class_names(scene), palette(scene), grid.shape[1])
    visualize.save_png(path, np.concatenate([grid, key], axis=0))


def main(argv: list[str]) -> int:
    del argv
    _check_flags()
    import ka_tf.data.synth.config  # noqa: F401 - registers scene_config with gin
    from ka_tf.data.synth.generate import generate_split

    config.parse_gin_config(FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.gin_search_paths)
    directory = generate_split(
        FLAGS.scene,
        FLAGS.split,
        FLAGS.num_frames,
        FLAGS.height,
        FLAGS.width,
        FLAGS.seed,
        FLAGS.out_dir,
        workers=FLAGS.workers,
    )
    print(f"wrote {FLAGS.num_frames} {FLAGS.scene} frames to {directory}")
    if FLAGS.preview:
        write_preview(
            FLAGS.preview,
            FLAGS.out_dir,
            FLAGS.scene,
            FLAGS.split,
            min(FLAGS.preview_frames, FLAGS.num_frames),
        )
        print(f"wrote preview {FLAGS.preview}")
    return 0


def run() -> None:
    """The `ka-make-synth` console script and `python tools/make_synth.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
