"""The embedded default as one gin value: render (once) and return the data directory."""

from __future__ import annotations

import os
from collections.abc import Mapping

import gin

from ka_tf.data.synth_dataset import default_cache_dir, ensure_generated

DEFAULT_SPLITS = {"teacher": 600, "transfer": 600, "val": 100, "test": 100}


@gin.configurable
def synth_benchmark(
    scene: str = "street",
    image_size: tuple[int, int] = (64, 128),
    splits: Mapping[str, int] | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    workers: int = 2,
) -> str:
    """Makes sure every split of the synthetic benchmark exists; returns its directory.

    Rendering happens once: a later call with the same arguments finds the splits
    complete and returns at once. Bind it in gin as an evaluated reference, e.g.
    ``DATA_DIR = @synth_benchmark()``.

    Args:
        scene: ``"street"`` or ``"indoor"``.
        image_size: Frame ``(height, width)``, multiples of 32.
        splits: Split → number of frames (default 600/600/100/100 for
            teacher/transfer/val/test).
        seed: Dataset seed.
        data_dir: Root directory; default ``<cache>/<H>x<W>_seed<seed>``.
        workers: Rendering processes.
    """
    height, width = (int(v) for v in image_size)
    data_dir = data_dir or os.path.join(default_cache_dir(), f"{height}x{width}_seed{seed}")
    for split, frames in (splits or DEFAULT_SPLITS).items():
        ensure_generated(scene, split, frames, height, width, seed, data_dir, workers)
    return data_dir
