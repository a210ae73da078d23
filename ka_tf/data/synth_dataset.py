"""Loaders and cache of the synthetic benchmark (``synth_street``, ``synth_indoor``).

``tools/make_synth.py --scene=street --split=val --out_dir=D`` writes
``D/street/val/``; ``ka_tf.data.load("synth_street", data_dir=D, split="val")``
reads it. From Python, :func:`ensure_generated` renders a split into the cache
(``$KA_TF_CACHE`` or ``~/.cache/ka_tf/synth``) unless the same split is already
complete there, and returns the ``data_dir`` to load from.

Example:
    >>> data_dir = ensure_generated("street", "val", num_frames=100, height=64, width=128)
    >>> ds = ka_tf.data.load("synth_street", data_dir=data_dir, split="val")
"""

from __future__ import annotations

import fcntl
import os

import numpy as np

from ka_tf.constants import DEPTH, IMAGE, NORMALS, SEMSEG
from ka_tf.data.synth.classes import SCENE_CLASSES, SCENE_PALETTES
from ka_tf.data.synth.config import SCENES
from ka_tf.data.synth.seeds import SPLITS
from ka_tf.errors import ConfigError, DataError

CACHE_ENV = "KA_TF_CACHE"


def default_cache_dir() -> str:
    """``$KA_TF_CACHE`` if set, else ``~/.cache/ka_tf/synth``."""
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "ka_tf", "synth"
    )


def _check_scene(scene: str) -> str:
    if scene not in SCENES:
        raise ConfigError(f"unknown scene. Received: scene={scene!r}. Expected one of {SCENES}.")
    return scene


def num_classes(scene: str) -> int:
    """Number of classes of ``scene`` (19 street, 13 indoor); 255 is ignore."""
    return len(SCENE_CLASSES[_check_scene(scene)])


def class_names(scene: str) -> tuple[str, ...]:
    """Class names of ``scene`` in id order."""
    return SCENE_CLASSES[_check_scene(scene)]


def palette(scene: str) -> np.ndarray:
    """The class colours of ``scene``, uint8 [C, 3]."""
    return np.asarray(SCENE_PALETTES[_check_scene(scene)], dtype=np.uint8)


def ensure_generated(
    scene: str,
    split: str,
    num_frames: int,
    height: int,
    width: int,
    seed: int = 0,
    data_dir: str | None = None,
    workers: int = 2,
) -> str:
    """Generates a split unless the same one is already complete on disk.

    "The same" means equal scene, split, seed, frame count, size, generator version
    and scene-config fingerprint (gin bindings of ``scene_config`` count).

    Args:
        scene: ``"street"`` or ``"indoor"``.
        split: ``"teacher"``, ``"transfer"``, ``"val"`` or ``"test"``.
        num_frames: Frames in the split.
        height: Image height (multiple of 32).
        width: Image width (multiple of 32).
        seed: Dataset seed.
        data_dir: Root directory; :func:`default_cache_dir` if None.
        workers: Rendering processes.

    Returns:
        The ``data_dir`` to pass to :func:`ka_tf.data.load`.
    """
    from ka_tf.data.synth import generate
    from ka_tf.data.synth.config import resolve_scene_config

    generate.validate_request(scene, split, num_frames, height, width)
    data_dir = data_dir or default_cache_dir()
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise DataError(f"data_dir={data_dir} is a file, expected a directory.")
    config = resolve_scene_config(scene)
    metadata = generate.spec_metadata(scene, split, num_frames, height, width, seed, config)
    directory = generate.split_dir(data_dir, scene, split)
    if generate.is_complete(directory, metadata):
        return data_dir
    # Several processes may want the same split at once (the workers of a multi-worker
    # run on one machine, or sharing $KA_TF_CACHE): one renders, the others wait for
    # it and then find the split complete. Without the lock two renderers raced to
    # rename their staging directories into place, and one failed.
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, f".{scene}_{split}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not generate.is_complete(directory, metadata):
                generate.generate_split(
                    scene, split, num_frames, height, width, seed, data_dir, workers, config
                )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return data_dir


def _renormalise(element: dict) -> dict:
    import tensorflow as tf

    normals = element[NORMALS]
    length = tf.norm(normals, axis=-1, keepdims=True)
    element[NORMALS] = tf.where(length > 0.5, normals / tf.maximum(length, 1e-6), 0.0)
    return element


def _load(
    scene: str, data_dir: str, split: str, images_only: bool, shuffle: bool, seed: int, verify: bool
):
    import tensorflow as tf

    from ka_tf.data import tfrecord_io
    from ka_tf.data.synth.generate import split_dir

    if split not in SPLITS:
        raise ConfigError(
            f"unknown split for synth_{scene}. Received: split={split!r}. Expected one of {SPLITS}."
        )
    directory = split_dir(data_dir, scene, split)
    if not os.path.isfile(os.path.join(directory, tfrecord_io.SPEC_NAME)):
        raise DataError(
            f"no complete synth_{scene} split {split!r} in {data_dir} (looked for "
            f"{directory}/{tfrecord_io.SPEC_NAME}). Generate it: python tools/make_synth.py "
            f"--scene={scene} --split={split} --out_dir={data_dir}"
        )
    spec = tfrecord_io.read_spec(directory)
    stored_scene = spec.get("metadata", {}).get("scene")
    if stored_scene != scene:
        raise DataError(f"{directory} holds scene {stored_scene!r}, expected {scene!r}.")
    keys = [IMAGE] if images_only else [IMAGE, SEMSEG, DEPTH, NORMALS]
    dataset = tfrecord_io.load_dataset(
        directory, keys=keys, shuffle=shuffle, seed=seed, verify=verify
    )
    if not images_only:
        dataset = dataset.map(_renormalise, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset


def load_synth_street(
    data_dir: str,
    split: str,
    images_only: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    verify: bool = True,
):
    """Reads a street split written by ``tools/make_synth.py --scene=street``.

    Args:
        data_dir: The ``--out_dir`` it was written to.
        split: ``"teacher"``, ``"transfer"``, ``"val"`` or ``"test"``.
        images_only: Yield ``{"image"}`` only (the amalgamation view; labels unread).
        shuffle: Shuffle shards and records (seeded).
        seed: Shuffle seed.
        verify: Check shard sizes and checksums before reading.

    Returns:
        A ``tf.data.Dataset`` of dicts: ``image`` uint8 [H, W, 3], ``semseg`` uint8
        [H, W] (Cityscapes train ids, 255 ignore), ``depth`` float32 [H, W] metres
        (0 = sky/invalid), ``normals`` float32 [H, W, 3] (camera frame, 0 = invalid).

    Raises:
        DataError: if the split is missing, incomplete, truncated or corrupt.
    """
    return _load("street", data_dir, split, images_only, shuffle, seed, verify)


def load_synth_indoor(
    data_dir: str,
    split: str,
    images_only: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    verify: bool = True,
):
    """Reads an indoor split written by ``tools/make_synth.py --scene=indoor``.

    Same arguments and element contract as :func:`load_synth_street`, with the
    NYUv2 13 classes in ``semseg``.
    """
    return _load("indoor", data_dir, split, images_only, shuffle, seed, verify)
