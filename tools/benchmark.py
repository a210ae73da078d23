"""Benchmarks of ka_tf, by section; prints a table and writes JSON.

Usage:
    python tools/benchmark.py --sections=synth [--output=bench.json]

Each section is a function returning a JSON-able dict of measurements; add one by
writing ``def bench_<name>() -> dict`` and listing it in :data:`SECTIONS`.
Sections:

- ``synth``: synthetic-data rendering throughput (frames/s) at
  ``--synth_height`` x ``--synth_width`` with ``--synth_workers`` processes: the
  median and spread over ``--repeats`` timed runs of ``--synth_frames`` frames each,
  after a warm-up that starts the workers and renders one chunk per worker.
  Rendering includes the layout, pybullet, labels, depth and normals; not the
  TFRecord encoding and writing.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from absl import flags

from ka_tf import cli
from ka_tf.errors import ConfigError

flags.DEFINE_list(
    "sections",
    ["synth"],
    "Comma-separated sections to run; see --help for the list (currently: synth).",
)
flags.DEFINE_string("output", None, "Optional JSON file for the results (written atomically).")
flags.DEFINE_integer("repeats", 3, "Timed repeats per measurement (after a warm-up), >= 1.")
flags.DEFINE_integer("synth_frames", 48, "synth: frames per timed repeat, >= 1.")
flags.DEFINE_integer("synth_height", 128, "synth: image height (multiple of 32).")
flags.DEFINE_integer("synth_width", 256, "synth: image width (multiple of 32).")
flags.DEFINE_integer("synth_workers", 2, "synth: rendering processes, >= 1.")
flags.DEFINE_enum("synth_scene", "street", ["street", "indoor"], "synth: scene to render.")
FLAGS = flags.FLAGS


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def bench_synth() -> dict[str, Any]:
    """Rendering throughput of the synthetic benchmark (frames/s)."""
    import multiprocessing

    from ka_tf.data.synth.config import resolve_scene_config
    from ka_tf.data.synth.generate import render_task, validate_request

    scene, workers = FLAGS.synth_scene, FLAGS.synth_workers
    height, width, frames = FLAGS.synth_height, FLAGS.synth_width, FLAGS.synth_frames
    validate_request(scene, "val", frames, height, width)
    if workers < 1:
        raise ConfigError(f"--synth_workers must be >= 1. Received: {workers}.")
    config = resolve_scene_config(scene)

    def tasks(start: int, count: int) -> list[tuple]:
        return [(scene, "val", 0, i, height, width, config) for i in range(start, start + count)]

    fps = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        list(pool.imap(render_task, tasks(10_000, 2 * workers), chunksize=2))  # warm-up
        for repeat in range(FLAGS.repeats):
            started = time.perf_counter()
            list(pool.imap(render_task, tasks(repeat * frames, frames), chunksize=2))
            fps.append(frames / (time.perf_counter() - started))
    return {
        "scene": scene,
        "height": height,
        "width": width,
        "workers": workers,
        "frames_per_repeat": frames,
        "frames_per_s": _spread(fps),
        "target_frames_per_s": 30.0,
        "cpu_count": os.cpu_count(),
    }


SECTIONS: dict[str, Callable[[], dict[str, Any]]] = {"synth": bench_synth}


def _print_table(results: dict[str, dict[str, Any]]) -> None:
    rows = []
    for section, result in results.items():
        for key, value in result.items():
            if isinstance(value, dict) and "median" in value:
                text = f"{value['median']:.2f} (min {value['min']:.2f}, max {value['max']:.2f})"
            else:
                text = str(value)
            rows.append((section, key, text))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for section, key, text in rows:
        print(f"{section:<{widths[0]}}  {key:<{widths[1]}}  {text}")


def main(argv: list[str]) -> int:
    del argv
    unknown = [name for name in FLAGS.sections if name not in SECTIONS]
    if unknown or not FLAGS.sections:
        raise ConfigError(
            f"unknown benchmark section(s). Received: --sections={','.join(FLAGS.sections)}. "
            f"Expected a comma-separated subset of {sorted(SECTIONS)}."
        )
    if FLAGS.repeats < 1:
        raise ConfigError(f"--repeats must be >= 1. Received: --repeats={FLAGS.repeats}.")
    if FLAGS.output and os.path.isdir(FLAGS.output):
        raise ConfigError(f"--output={FLAGS.output} is a directory, expected a JSON file path.")
    results = {name: SECTIONS[name]() for name in FLAGS.sections}
    _print_table(results)
    if FLAGS.output:
        from ka_tf.io_utils import atomic_write_json

        atomic_write_json(
            FLAGS.output,
            {"machine": platform.platform(), "python": platform.python_version(), **results},
        )
        print(f"wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    cli.run(main)
