"""Per-frame random seeds: deterministic, and disjoint between scenes and splits.

Frame ``i`` of (scene, split, seed) draws from a ``numpy`` generator seeded with the
integer tuple ``(SCENE_IDS[scene], SPLIT_IDS[split], seed, i)``. Two different
splits never share a tuple (their second entry differs), so no frame of one split
is drawn from the same random stream as a frame of another, whatever the seeds.
"""

from __future__ import annotations

import numpy as np

from ka_tf.errors import ConfigError

SPLITS = ("teacher", "transfer", "val", "test")

# Fixed, never to be renumbered: changing them changes every generated dataset.
SPLIT_IDS = {"teacher": 1, "transfer": 2, "val": 3, "test": 4}
SCENE_IDS = {"street": 11, "indoor": 12}


def check_split(split: str) -> str:
    """Returns ``split`` if it is a synthetic split, else raises ConfigError."""
    if split not in SPLIT_IDS:
        raise ConfigError(f"unknown split. Received: split={split!r}. Expected one of {SPLITS}.")
    return split


def frame_seed(scene: str, split: str, seed: int, index: int) -> tuple[int, int, int, int]:
    """The entropy tuple of one frame (see the module docstring).

    Raises:
        ConfigError: on an unknown scene or split, or a negative seed or index.
    """
    check_split(split)
    if scene not in SCENE_IDS:
        raise ConfigError(
            f"unknown scene. Received: scene={scene!r}. Expected one of {tuple(SCENE_IDS)}."
        )
    if seed < 0 or index < 0:
        raise ConfigError(f"seed and frame index must be >= 0. Received: {seed=}, {index=}.")
    return (SCENE_IDS[scene], SPLIT_IDS[split], int(seed), int(index))


def frame_rng(scene: str, split: str, seed: int, index: int) -> np.random.Generator:
    """The random generator of one frame; the same arguments give the same stream."""
    return np.random.Generator(np.random.PCG64(list(frame_seed(scene, split, seed, index))))
