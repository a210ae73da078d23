"""Building the ``efficientnet_lite`` student: a :class:`~ka_tf.models.LiteStudent` with
its encoder's ImageNet weights, and the tap adaptors to its splittable teachers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gin

from ka_tf.amalgamation.amalgamator import BLOCKWISE_TIERS
from ka_tf.amalgamation.student_builder import num_classes_of
from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.models import LiteStudent
from ka_tf.teachers import teacher_tier

IMAGENET = "imagenet"  # encoder_weights: the converted ImageNet weights in the real cache


def encoder_weights_path(encoder_weights: str | None) -> str | None:
    """The ``.weights.h5`` file ``encoder_weights`` names (``'imagenet'``: the file
    ``make real-teachers`` converts into the real-asset cache), None for random init.

    Raises:
        ModelFileError: the file is missing (names the command that makes it).
    """
    if encoder_weights is None:
        return None
    if encoder_weights == IMAGENET:
        from ka_tf.real.assets import asset_path

        return asset_path("efficientnet_lite0_keras")
    if not os.path.isfile(encoder_weights):
        raise ModelFileError(
            f"lite_student.encoder_weights={encoder_weights!r} is not a file. Pass "
            f"'imagenet' (after `make real-teachers`), None, or a .weights.h5 written by "
            f"tools/convert_encoder.py."
        )
    return encoder_weights


@gin.configurable
def lite_student(
    teachers: Mapping[str, Any],
    decoder_channels: int = 64,
    encoder_weights: str | None = IMAGENET,
) -> LiteStudent:
    """The student of family ``efficientnet_lite`` for ``teachers`` (task → teacher).

    Args:
        teachers: Task → teacher; a semseg teacher gives the class count, a depth
            SegNet its depth head's transform.
        decoder_channels: Width of each task's decoder (see :class:`LiteStudent`).
        encoder_weights: ``'imagenet'`` (converted from PyTorch by ``make
            real-teachers``), a ``.weights.h5`` path, or None (random).
    """
    tasks = tuple(teachers)
    num_classes = num_classes_of(teachers)
    activations = {
        getattr(t, "depth_activation", None) for task, t in teachers.items() if task == "depth"
    } - {None, "identity"}
    student = LiteStudent(
        tasks,
        num_classes=num_classes,
        decoder_channels=decoder_channels,
        depth_activation=activations.pop() if activations else "exp",
        name="lite_student",
    )
    path = encoder_weights_path(encoder_weights)
    if path is not None:
        student.encoder.load_weights(path)
    student.encoder_weights_source = encoder_weights  # for the report
    return student


def tap_teacher_channels(teachers: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Task → channels at the five branch candidates, for each teacher that has features
    there (splittable or tap-only); output-only teachers have none."""
    return {
        task: tuple(int(c) for c in teacher.candidate_channels(task))
        for task, teacher in teachers.items()
        if teacher_tier(teacher) in BLOCKWISE_TIERS
    }


def check_lite_settings(
    blockwise_steps: int,
    branch_points: Mapping[str, int] | None,
    student_width_multiplier: float | None = None,
) -> None:
    """Raises ConfigError for a setting only the ``target_net`` family has."""
    if blockwise_steps:
        raise ConfigError(
            f"amalgamate.student_family='efficientnet_lite' has no block-wise phase "
            f"(blockwise_steps={blockwise_steps}): bind amalgamate.blockwise_steps = 0."
        )
    if branch_points:
        raise ConfigError(
            f"amalgamate.branch_points={dict(branch_points)} belongs to the target_net "
            f"student; the efficientnet_lite student has one decoder per task. Unbind it."
        )
    if student_width_multiplier is not None:
        raise ConfigError(
            f"amalgamate.student_width_multiplier={student_width_multiplier} sets the "
            f"target_net student's width; the efficientnet_lite student's size is "
            f"lite_student.decoder_channels. Bind amalgamate.student_width_multiplier = None."
        )
