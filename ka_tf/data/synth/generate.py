"""Renders synthetic splits, in parallel worker processes, into TFRecord datasets.

A split directory is ``<data_dir>/<scene>/<split>/`` (several scenes and splits
share one ``data_dir``). Frame ``i`` depends only on (scene, split, seed, i, size,
scene config), so the output is byte-identical whatever the number of workers.
Workers are started with ``spawn`` (no TensorFlow state is forked into them) and
import only numpy, PIL and pybullet; the parent encodes and writes the records.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ka_tf.constants import DEPTH, IMAGE, NORMALS, SEMSEG, SIZE_DIVISOR
from ka_tf.data.synth.classes import SCENE_CLASSES
from ka_tf.data.synth.config import SCENES, SceneConfig, resolve_scene_config
from ka_tf.data.synth.indoor import indoor_layout
from ka_tf.data.synth.primitives import SceneLayout
from ka_tf.data.synth.seeds import check_split, frame_rng
from ka_tf.data.synth.street import street_layout
from ka_tf.errors import ConfigError

# Bump when a change to the generator changes its output (invalidates caches).
GENERATOR_VERSION = 1

LAYOUTS: dict[str, Callable[[np.random.Generator, SceneConfig], SceneLayout]] = {
    "street": street_layout,
    "indoor": indoor_layout,
}

_renderer = None  # one per process, created on first use


def split_dir(data_dir: str, scene: str, split: str) -> str:
    """``<data_dir>/<scene>/<split>``."""
    return os.path.join(data_dir, scene, split)


def features_spec(height: int, width: int) -> dict[str, dict]:
    """The TFRecord feature spec of a synthetic frame."""
    from ka_tf.data.tfrecord_io import feature

    return {
        IMAGE: feature("uint8", (height, width, 3), "png"),
        SEMSEG: feature("uint8", (height, width), "png"),
        DEPTH: feature("float32", (height, width), "raw"),
        # Unit normals lose nothing that matters in float16 (< 0.05 degrees); the
        # loader re-normalises them.
        NORMALS: feature("float32", (height, width, 3), "raw", storage_dtype="float16"),
    }


def validate_request(scene: str, split: str, num_frames: int, height: int, width: int) -> None:
    """Raises ConfigError (naming the flag) for a request that cannot be generated."""
    if scene not in SCENES:
        raise ConfigError(f"unknown scene. Received: --scene={scene!r}. Expected one of {SCENES}.")
    check_split(split)
    for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if int(value) <= 0:
            raise ConfigError(f"--{name} must be positive. Received: --{name}={value}.")
    for name, value in (("height", height), ("width", width)):
        if int(value) % SIZE_DIVISOR:
            raise ConfigError(
                f"--{name} must be a multiple of {SIZE_DIVISOR} (the models downsample 5 "
                f"times). Received: --{name}={value}; try {max(1, round(value / 32)) * 32}."
            )


def render_frame(
    scene: str,
    split: str,
    seed: int,
    index: int,
    height: int,
    width: int,
    config: SceneConfig,
) -> dict[str, np.ndarray]:
    """Renders frame ``index`` of a split (in this process's renderer).

    Returns:
        ``image`` uint8 [H, W, 3], ``semseg`` uint8 [H, W], ``depth`` float32 [H, W],
        ``normals`` float32 [H, W, 3].
    """
    global _renderer
    from ka_tf.data.synth.renderer import Renderer, paused_gc

    if _renderer is None:
        _renderer = Renderer()
    with paused_gc():  # the layout, too, creates no reference cycle
        rng = frame_rng(scene, split, seed, index)
        layout = LAYOUTS[scene](rng, config)
        return _renderer.render(layout, height, width, rng)


def render_task(args: tuple) -> dict[str, np.ndarray]:
    """:func:`render_frame` on one argument tuple (what worker pools map over)."""
    return render_frame(*args)


def iter_frames(
    scene: str,
    split: str,
    num_frames: int,
    height: int,
    width: int,
    seed: int,
    config: SceneConfig,
    workers: int = 2,
) -> Iterator[dict[str, np.ndarray]]:
    """Yields the frames of a split in order, rendered by ``workers`` processes."""
    tasks = [(scene, split, seed, i, height, width, config) for i in range(num_frames)]
    if workers <= 1:
        for task in tasks:
            yield render_task(task)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=workers) as pool:
        yield from pool.imap(render_task, tasks, chunksize=4)


def spec_metadata(
    scene: str, split: str, num_frames: int, height: int, width: int, seed: int, config
) -> dict[str, Any]:
    """What identifies a generated split (compared by the cache)."""
    return {
        "generator": "ka_tf.data.synth",
        "generator_version": GENERATOR_VERSION,
        "scene": scene,
        "split": split,
        "seed": int(seed),
        "num_frames": int(num_frames),
        "height": int(height),
        "width": int(width),
        "classes": list(SCENE_CLASSES[scene]),
        "config_fingerprint": config.fingerprint(),
        "config": config.to_json(),
    }


def is_complete(directory: str, metadata: dict[str, Any]) -> bool:
    """Whether ``directory`` holds a complete split generated with ``metadata``."""
    from ka_tf.data.tfrecord_io import read_spec, verify_shards
    from ka_tf.errors import DataError

    try:
        spec = read_spec(directory)
        verify_shards(directory, spec, checksums=False)
    except DataError:
        return False
    stored = spec.get("metadata", {})
    keys = [key for key in metadata if key != "config"]
    return all(stored.get(key) == metadata[key] for key in keys)


def generate_split(
    scene: str,
    split: str,
    num_frames: int,
    height: int,
    width: int,
    seed: int,
    data_dir: str,
    workers: int = 2,
    config: SceneConfig | None = None,
    progress: bool = True,
) -> str:
    """Renders a split and writes it to ``<data_dir>/<scene>/<split>`` atomically.

    Args:
        scene: ``"street"`` or ``"indoor"``.
        split: ``"teacher"``, ``"transfer"``, ``"val"`` or ``"test"``.
        num_frames: Frames to render.
        height: Image height (multiple of 32).
        width: Image width (multiple of 32).
        seed: Dataset seed.
        data_dir: Root directory shared by scenes and splits.
        workers: Rendering processes (1 renders in this process).
        config: Scene config; default: :func:`~.config.scene_config` under gin.
        progress: Show a tqdm progress bar.

    Returns:
        The split directory.
    """
    from ka_tf.data.tfrecord_io import write_dataset

    validate_request(scene, split, num_frames, height, width)
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0. Received: --seed={seed}.")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1. Received: --workers={workers}.")
    config = config or resolve_scene_config(scene)
    if config.scene != scene:
        raise ConfigError(f"config is for scene {config.scene!r}, not {scene!r}.")
    from tqdm import tqdm

    frames = iter_frames(scene, split, num_frames, height, width, seed, config, workers)
    directory = split_dir(data_dir, scene, split)
    with tqdm(total=num_frames, desc=f"{scene}/{split}", unit="frame", disable=not progress) as bar:
        write_dataset(
            directory,
            _counted(frames, bar),
            features_spec(height, width),
            num_records=num_frames,
            metadata=spec_metadata(scene, split, num_frames, height, width, seed, config),
        )
    return directory


def _counted(frames, bar):
    """Yields ``frames``, advancing ``bar`` once each frame is rendered."""
    for frame in frames:
        bar.update(1)
        yield frame
