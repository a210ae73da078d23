"""A/B of synthetic-scene rendering between two ka_tf revisions: identical output, frames/s.

Usage:
    python benchmarks/synth_ab.py --old=HEAD [--new=.] [--rounds=3] [--scenes=street,indoor] \\
        [--check_frames=40] [--output=synth_ab.json]

``--old`` and ``--new`` are git revisions (checked out into temporary worktrees) or
directories (``.``: this working tree).

1. Identity: each side renders ``--check_frames`` frames of every scene, split
   (``val``, ``test``) and size (128x256, 64x128) in a process of its own, and the
   sha256 of every array ``render_frame`` returns is compared. The new side renders
   its frames in a shuffled order (warm caches, a different history), the old one in
   order; any difference is listed and makes the exit status 1.
2. Speed: ``tools/benchmark.py --sections=synth`` (2 workers, 128x256, 3 repeats of
   48 frames) of each side, alternating old/new (then new/old) for ``--rounds``
   rounds per scene, so that load from other processes hits both alike. Reported:
   the median, min and max over rounds of each run's median frames/s, and new/old.
3. CPU time (``--cpu_frames`` > 0): per round and scene, each side renders that many
   128x256 frames in one process (after a warm-up) and reports the process's CPU
   milliseconds per frame, alternating likewise; on a shared machine this swings
   less than wall-clock frames/s.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from ka_tf import path_flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_string("old", "HEAD", "Revision A (a git revision or a directory).")
flags.DEFINE_string("new", ".", "Revision B, or a directory ('.': this working tree).")
flags.DEFINE_integer("rounds", 3, "Benchmark runs per side and scene, alternating.", lower_bound=0)
flags.DEFINE_list("scenes", ["street", "indoor"], "Scenes to time.")
flags.DEFINE_integer("check_frames", 40, "Frames per scene/split/size compared; 0: none.")
flags.DEFINE_integer("workers", 2, "Rendering processes of the benchmark.")
path_flags.define_path("output", None, "Optional JSON file for the results.")
flags.DEFINE_boolean("wall", True, "Time the benchmark command (wall-clock frames/s).")
flags.DEFINE_integer("cpu_frames", 0, "Frames per CPU-time measurement; 0: none.")
flags.DEFINE_string("hash_worker", None, "(internal) Hash frames with ka_tf from this directory.")
flags.DEFINE_string("cpu_worker", None, "(internal) Time frames with ka_tf from this directory.")
flags.DEFINE_string("cpu_scene", "street", "(internal) The CPU worker's scene.")
flags.DEFINE_boolean("shuffle", False, "(internal) Hash worker: render in a shuffled order.")

SPLITS = ("val", "test")
SIZES = ((128, 256), (64, 128))


def _use_revision(directory: str) -> None:
    """Imports ka_tf from ``directory`` (not the installed one) from now on."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
    for name in [n for n in sys.modules if n == "ka_tf" or n.startswith("ka_tf.")]:
        del sys.modules[name]
    sys.path.insert(0, directory)


def frame_hashes(frames: int, shuffle: bool) -> dict[str, dict[str, str]]:
    """sha256 (with dtype and shape) of every array of every checked frame, by frame key."""
    from ka_tf.data.synth import generate
    from ka_tf.data.synth.config import resolve_scene_config

    tasks = [
        (scene, split, index, height, width)
        for scene in ("street", "indoor")
        for split in SPLITS
        for height, width in SIZES
        for index in range(frames)
    ]
    if shuffle:
        random.Random(0).shuffle(tasks)
    configs = {scene: resolve_scene_config(scene) for scene in ("street", "indoor")}
    hashes = {}
    for scene, split, index, height, width in tasks:
        frame = generate.render_frame(scene, split, 0, index, height, width, configs[scene])
        hashes[f"{scene}/{split}/{height}x{width}/{index}"] = {
            name: f"{array.dtype}{array.shape}:{hashlib.sha256(array.tobytes()).hexdigest()}"
            for name, array in sorted(frame.items())
        }
    return hashes


def _hashes_of(directory: str, shuffle: bool) -> dict[str, dict[str, str]]:
    """Runs :func:`frame_hashes` in a fresh process importing ka_tf from ``directory``."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            sys.executable,
            os.path.abspath(__file__),
            f"--hash_worker={directory}",
            f"--check_frames={FLAGS.check_frames}",
            f"--shuffle={shuffle}",
            f"--output={out.name}",
        ]
        subprocess.run(command, check=True, cwd=directory)
        with open(out.name, encoding="utf-8") as handle:
            return json.load(handle)


def check_identity(old_dir: str, new_dir: str) -> dict:
    """Compares the arrays of both sides; returns a summary (differences listed)."""
    old, new = _hashes_of(old_dir, shuffle=False), _hashes_of(new_dir, shuffle=True)
    differences = [
        f"{key}/{name}"
        for key in sorted(set(old) | set(new))
        for name in sorted(set(old.get(key, {})) | set(new.get(key, {})))
        if old.get(key, {}).get(name) != new.get(key, {}).get(name)
    ]
    arrays = sum(len(entry) for entry in old.values())
    print(f"identity: {len(old)} frames, {arrays} arrays, {len(differences)} differ", flush=True)
    for difference in differences[:20]:
        print(f"  differs: {difference}", flush=True)
    return {"frames": len(old), "arrays": arrays, "differences": differences}


def cpu_ms_per_frame(scene: str, frames: int) -> float:
    """CPU milliseconds per 128x256 ``val`` frame of this process (after 4 warm-up frames)."""
    from ka_tf.data.synth import generate
    from ka_tf.data.synth.config import resolve_scene_config

    config = resolve_scene_config(scene)
    for index in range(10_000, 10_004):
        generate.render_frame(scene, "val", 0, index, 128, 256, config)
    started = time.process_time()
    for index in range(frames):
        generate.render_frame(scene, "val", 0, index, 128, 256, config)
    return 1000.0 * (time.process_time() - started) / frames


def _cpu_of(directory: str, scene: str) -> float:
    """Runs :func:`cpu_ms_per_frame` in a fresh process importing ka_tf from ``directory``."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--cpu_worker={directory}",
        f"--cpu_scene={scene}",
        f"--cpu_frames={FLAGS.cpu_frames}",
    ]
    result = subprocess.run(command, check=True, cwd=directory, capture_output=True, text=True)
    return float(result.stdout.strip().splitlines()[-1])


def _alternate(name: str, measure, old_dir: str, new_dir: str, unit: str) -> dict:
    """``measure(directory, scene)`` of both sides, alternating, ``--rounds`` per scene."""
    results: dict = {}
    for scene in FLAGS.scenes:
        runs: dict[str, list[float]] = {"old": [], "new": []}
        for round_index in range(FLAGS.rounds):
            order = ("old", "new") if round_index % 2 == 0 else ("new", "old")
            for side in order:
                value = measure(old_dir if side == "old" else new_dir, scene)
                runs[side].append(value)
                print(f"{name} {scene} round {round_index} {side}: {value:.2f} {unit}", flush=True)
        summary: dict = {
            side: {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "runs": values,
            }
            for side, values in runs.items()
        }
        summary["new_vs_old"] = summary["new"]["median"] / summary["old"]["median"]
        results[scene] = summary
        print(
            f"{name} {scene}: old {summary['old']['median']:.2f}, new "
            f"{summary['new']['median']:.2f} {unit} (median of {FLAGS.rounds}), "
            f"new/old {summary['new_vs_old']:.3f}",
            flush=True,
        )
    return results


def _frames_per_s(directory: str, scene: str) -> float:
    """The median frames/s of one ``tools/benchmark.py --sections=synth`` run of a side."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            sys.executable,
            os.path.join(directory, "tools", "benchmark.py"),
            "--sections=synth",
            f"--synth_scene={scene}",
            f"--synth_workers={FLAGS.workers}",
            "--synth_height=128",
            "--synth_width=256",
            "--repeats=3",
            f"--output={out.name}",
        ]
        env = {**os.environ, "PYTHONPATH": directory}
        subprocess.run(command, check=True, cwd=directory, env=env, capture_output=True)
        with open(out.name, encoding="utf-8") as handle:
            results = json.load(handle)
    return results["synth"]["frames_per_s"]["median"]


def main(argv: list[str]) -> int:
    del argv
    if FLAGS.hash_worker:
        _use_revision(FLAGS.hash_worker)
        hashes = frame_hashes(FLAGS.check_frames, FLAGS.shuffle)
        with open(FLAGS.output, "w", encoding="utf-8") as handle:
            json.dump(hashes, handle)
        return 0
    if FLAGS.cpu_worker:
        _use_revision(FLAGS.cpu_worker)
        print(cpu_ms_per_frame(FLAGS.cpu_scene, FLAGS.cpu_frames))
        return 0
    results: dict = {"revisions": {"old": FLAGS.old, "new": FLAGS.new}}
    if REPO_ROOT not in sys.path:  # run as `python benchmarks/synth_ab.py`
        sys.path.insert(0, REPO_ROOT)
    from benchmarks.harness import git_checkout

    with git_checkout(FLAGS.old) as old_dir, git_checkout(FLAGS.new) as new_dir:
        if FLAGS.check_frames > 0:
            results["identity"] = check_identity(old_dir, new_dir)
        if FLAGS.rounds > 0 and FLAGS.wall:
            results["frames_per_s"] = _alternate(
                "benchmark", _frames_per_s, old_dir, new_dir, "frames/s"
            )
        if FLAGS.rounds > 0 and FLAGS.cpu_frames > 0:
            results["cpu_ms_per_frame"] = _alternate(
                "cpu", _cpu_of, old_dir, new_dir, "CPU ms/frame"
            )
    if FLAGS.output:
        with open(FLAGS.output, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    identical = not results.get("identity", {}).get("differences")
    return 0 if identical else 1


if __name__ == "__main__":
    app.run(main)
