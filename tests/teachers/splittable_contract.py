"""The shared test every splittable teacher architecture passes (KerasHub's
``run_backbone_test`` style): call it from a test with a small instance."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ka_tf.models.arch import BRANCH_CANDIDATES
from ka_tf.teachers import SPLITTABLE, SplittableTeacher, teacher_tier


def run_splittable_teacher_test(teacher: keras.Model, images: np.ndarray, save_dir) -> None:
    """Checks the protocol of :mod:`ka_tf.teachers.splittable` on ``teacher``.

    - it is recognised as splittable, and the full pass equals ``forward_intermediates``;
    - at every candidate ``b`` the feature has ``candidate_channels()[b]`` channels and
      1/2^(5-b) of the image's size, and ``decode_from`` that feature with the pass's
      side inputs gives the output exactly (the decoder really runs from the tap);
    - the output depends on the tapped feature (a gradient flows back into it);
    - it saves to ``.keras`` and loads with the same outputs.
    """
    assert isinstance(teacher, SplittableTeacher) and teacher_tier(teacher) == SPLITTABLE
    height, width = images.shape[1:3]
    outputs = teacher(images, training=False)
    inter = teacher.forward_intermediates(images, training=False)
    for task in teacher.tasks:
        np.testing.assert_allclose(inter["outputs"][task], outputs[task], atol=1e-5, rtol=1e-5)
        channels = teacher.candidate_channels(task)
        features = inter["candidates"][task]
        assert len(features) == len(channels) == len(BRANCH_CANDIDATES)
        for b, feature in enumerate(features):
            scale = 2 ** (len(BRANCH_CANDIDATES) - b)
            assert tuple(feature.shape) == (
                len(images),
                height // scale,
                width // scale,
                channels[b],
            )
            decoded = teacher.decode_from(feature, inter["side"], b, task=task, training=False)
            np.testing.assert_allclose(decoded, outputs[task], atol=1e-5, rtol=1e-5)
            tap = tf.Variable(feature)
            with tf.GradientTape() as tape:
                value = tf.reduce_sum(
                    tf.square(teacher.decode_from(tap, inter["side"], b, task=task))
                )
            gradient = tape.gradient(value, tap)
            assert gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 0
    path = str(save_dir / f"{teacher.name}.keras")
    teacher.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(teacher)
    again = loaded(images, training=False)
    for task in teacher.tasks:
        np.testing.assert_allclose(again[task], outputs[task], atol=1e-5, rtol=1e-5)
