"""TensorBoard summaries beyond Keras' loss curves: validation figures and pictures.

Keras' TensorBoard callback (``run_phase``) logs each phase's training losses under
``logs/<phase>/train``. This module adds what a person looks for next, each under
``logs/<run>``: the validation projection losses of the block-wise phase (``validation``),
the metrics of every evaluation with its prediction panels and the block-loss figure
(``evaluation``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf


def write_scalars(log_dir: str, run: str, values: Mapping[str, float | None], step: int) -> None:
    """Writes ``{tag: value}`` as scalars of ``log_dir/run`` at ``step`` (non-finite skipped)."""
    writer = tf.summary.create_file_writer(os.path.join(log_dir, run))
    with writer.as_default():
        for tag, value in values.items():
            if value is not None and np.isfinite(value):
                tf.summary.scalar(tag, float(value), step=int(step))
    writer.close()


def write_images(log_dir: str, run: str, tag: str, images: Sequence[np.ndarray], step: int) -> None:
    """Writes uint8 RGB ``images`` (any sizes) as one image summary of ``log_dir/run``.

    Images of different sizes are padded with white to the largest, as TensorBoard
    shows one summary's images at one size.
    """
    if not images:
        return
    height = max(image.shape[0] for image in images)
    width = max(image.shape[1] for image in images)
    batch = np.full((len(images), height, width, 3), 255, np.uint8)
    for index, image in enumerate(images):
        batch[index, : image.shape[0], : image.shape[1]] = image[..., :3]
    writer = tf.summary.create_file_writer(os.path.join(log_dir, run))
    with writer.as_default():
        tf.summary.image(tag, batch, step=int(step), max_outputs=len(images))
    writer.close()
