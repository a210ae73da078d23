"""Building the student from its teachers: the block-wise trunk and the branched result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from ka_tf.constants import SEMSEG
from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.models import SegNet, TargetNet
from ka_tf.models.arch import BRANCH_CANDIDATES
from ka_tf.tasks import get_task
from ka_tf.teachers import SPLITTABLE, seeds_student, teacher_tier

# Constructor arguments a student copies from its teachers (they must agree).
SHARED_ARCH_KEYS = ("arch", "batch_norm", "channels", "width_multiplier", "image_mean", "image_std")
INIT_CHOICES = ("scratch",)  # or a task name: start from that teacher's encoder/decoder


def teacher_arch(teachers: Mapping[str, keras.Model], own_width: bool = False) -> dict:
    """The architecture all teachers share; raises a ConfigError naming any mismatch.

    With ``own_width`` (a student whose width is its own) the teachers need not agree
    on ``width_multiplier``; the first teacher's is returned.
    """
    reference_task, reference = next(iter(teachers.items()))
    keys = [k for k in SHARED_ARCH_KEYS if not (own_width and k == "width_multiplier")]
    config = {key: getattr(reference, key) for key in SHARED_ARCH_KEYS}
    for task, teacher in teachers.items():
        for key in keys:
            if getattr(teacher, key) != config[key]:
                raise ConfigError(
                    f"teachers disagree on {key}: {reference_task!r} has {config[key]}, {task!r} "
                    f"has {getattr(teacher, key)}. The student copies their architecture, so "
                    f"convert/train the teachers with the same {key}."
                )
    return config


def num_classes_of(teachers: Mapping[str, keras.Model]) -> int | None:
    """The class count of the teacher of a task with classes (semseg), None without one."""
    for task, teacher in teachers.items():
        if get_task(task).has_classes:
            return int(teacher.num_classes)
    return None


def check_teacher(task: str, teacher: Any, path: str = "") -> None:
    """Raises ModelFileError unless ``teacher`` predicts ``task`` with that task's output.

    A splittable teacher is a ka_tf SegNet/TargetNet; an output-only teacher
    (:class:`~ka_tf.teachers.ForeignTeacher`) checked its outputs when it loaded.
    """
    where = f" ({path})" if path else ""
    if task not in teacher.tasks:
        raise ModelFileError(
            f"the teacher given for {task!r}{where} predicts {list(teacher.tasks)}, not {task!r}."
        )
    if teacher_tier(teacher) != SPLITTABLE:
        return
    channels = teacher.heads[task].channels
    definition = get_task(task)
    if not definition.has_classes and channels != definition.head_channels(None):
        raise ModelFileError(
            f"the {task!r} teacher{where} outputs {channels} channels; a {task} teacher "
            f"must output {definition.head_channels(None)}."
        )


def seeding_teachers(teachers: Mapping[str, Any]) -> dict[str, keras.Model]:
    """The teachers whose architecture and weights the student can take (SegNet family)."""
    return {task: t for task, t in teachers.items() if seeds_student(t)}


def _copy(target: keras.layers.Layer, source: keras.layers.Layer) -> None:
    target.set_weights(source.get_weights())


def inherit_weights(target: keras.layers.Layer, source: keras.layers.Layer) -> bool:
    """Copies ``source``'s weights into ``target``, channel-sliced where shapes differ.

    Each weight of ``target`` takes the leading block of the same weight of ``source``
    (kernel ``[:k, :k, :c_in, :c_out]``, BatchNorm ``[:c]``), the usual weight
    inheritance of a narrower network from a wider one; where ``target`` is wider,
    its extra channels keep their initial values. Returns whether every weight was
    copied whole (the shapes all matched).
    """
    targets, sources = target.get_weights(), source.get_weights()
    if len(targets) != len(sources):
        raise ConfigError(
            f"cannot initialise {target.name} from {source.name}: {len(targets)} vs "
            f"{len(sources)} weights (different layer types)."
        )
    merged, whole = [], True
    for mine, theirs in zip(targets, sources, strict=True):
        if mine.ndim != theirs.ndim:
            raise ConfigError(
                f"cannot initialise {target.name} from {source.name}: weight ranks "
                f"{mine.shape} vs {theirs.shape}."
            )
        if mine.shape == theirs.shape:
            merged.append(theirs)
            continue
        whole = False
        region = tuple(slice(0, min(a, b)) for a, b in zip(mine.shape, theirs.shape, strict=True))
        value = np.array(mine, copy=True)
        value[region] = theirs[region]
        merged.append(value)
    target.set_weights(merged)
    return whole


def _teacher_step(teacher: keras.Model, task: str, k: int) -> keras.layers.Layer:
    """Decoder block ``k`` on ``task``'s path through ``teacher``.

    For a joint teacher (a finished TargetNet) the path's own channel-coding gate at
    its branch point is not a block and is not copied: a new branch starts with its
    own gate only, and fine-tuning adapts the copied blocks.
    """
    if isinstance(teacher, SegNet):
        return teacher.decoder_blocks[k]
    return teacher.decoder_step(task, k)


def _depth_activation(teachers: Mapping[str, Any]) -> str:
    activations = {
        t.depth_activation
        for task, t in teachers.items()
        if task == "depth" and teacher_tier(t) == SPLITTABLE and hasattr(t, "depth_activation")
    }
    return activations.pop() if activations else "exp"


def default_student_arch() -> dict:
    """The SegNet architecture of a student none of whose teachers is a SegNet/TargetNet:
    VGG-16 with BatchNorm, ImageNet normalisation, width 1 (``student_width_multiplier``
    sets its width)."""
    from ka_tf.models import arch as arch_lib

    return {
        "arch": "vgg16",
        "batch_norm": True,
        "channels": tuple(arch_lib.DEFAULT_CHANNELS),
        "width_multiplier": 1.0,
        "image_mean": tuple(arch_lib.IMAGENET_MEAN),
        "image_std": tuple(arch_lib.IMAGENET_STD),
    }


def build_blockwise_student(
    teachers: Mapping[str, keras.Model],
    init_from: str = SEMSEG,
    gate_scale: float = 2.0,
    synchronized_bn: bool = False,
    width_multiplier: float | None = None,
) -> TargetNet:
    """A fully shared student (trunk through up2) for the block-wise phase.

    Args:
        teachers: Task → teacher.
        init_from: ``"scratch"`` or the task whose teacher's encoder and decoder blocks
            (up5..up2) initialise the student (channel-sliced when the student is
            narrower: :func:`inherit_weights`).
        gate_scale: Passed to the student's channel-coding gates.
        synchronized_bn: Synchronise the student's BatchNorm statistics across replicas
            (without it, each replica normalises by its own share of the batch).
        width_multiplier: The student's own width (default: the teachers'). A student
            of another width reaches the teachers' decoders through the 1×1 adaptors
            of its block-wise gates (:func:`~ka_tf.amalgamation.amalgamator.build_coders`).
    """
    tasks = tuple(teachers)
    seeding = seeding_teachers(teachers)
    if init_from not in (*INIT_CHOICES, *seeding):
        raise ConfigError(
            f"unknown student initialisation. Received: init_from={init_from!r}. "
            f"Expected one of {[*INIT_CHOICES, *seeding]} (the student starts from "
            f"scratch or from a SegNet/TargetNet teacher's encoder and decoder)."
        )
    if width_multiplier is not None and not width_multiplier > 0:
        raise ConfigError(
            f"the student's width must be > 0. Received: "
            f"amalgamate.student_width_multiplier={width_multiplier}. Use e.g. 0.1875 for a "
            f"student at 3/4 of 1/4-width teachers, or None for the teachers' width."
        )
    arch = (
        teacher_arch(seeding, own_width=width_multiplier is not None)
        if seeding
        else default_student_arch()
    )
    if width_multiplier is not None:
        arch["width_multiplier"] = float(width_multiplier)
    last = len(BRANCH_CANDIDATES) - 1
    student = TargetNet(
        tasks,
        num_classes=num_classes_of(teachers),
        branch_points={task: last for task in tasks},
        depth_activation=_depth_activation(teachers),
        gate_scale=gate_scale,
        synchronized_bn=synchronized_bn,
        **arch,
    )
    if init_from != "scratch":
        teacher = teachers[init_from]
        for mine, theirs in zip(student.encoder_blocks, teacher.encoder_blocks, strict=True):
            inherit_weights(mine, theirs)
        for k, block in enumerate(student.trunk_blocks):
            inherit_weights(block, _teacher_step(teacher, init_from, k))
    return student


def assemble_student(
    blockwise: TargetNet,
    coders: Mapping[str, list],
    teachers: Mapping[str, keras.Model],
    branch_points: Mapping[str, int],
) -> TargetNet:
    """The branched student: trunk from the block-wise student, branches from the teachers.

    Task ``t`` branching at ``b`` gets the gate trained at ``b`` in the block-wise phase,
    then copies of teacher ``t``'s decoder blocks from ``b`` on and its head (an
    output-only or U-Net teacher's branch copies the block-wise student's own blocks and
    head) — exactly
    the path its projection loss was measured through, when the student has its
    teachers' width. A student of its own width keeps the gate without its adaptor,
    and its branch blocks and heads are channel-sliced from the teacher's
    (:func:`inherit_weights`): a different path from the measured one, which the
    fine-tuning phase trains end to end.
    """
    tasks = tuple(teachers)
    student = TargetNet(
        tasks,
        num_classes=blockwise.num_classes,
        branch_points=dict(branch_points),
        depth_activation=blockwise.depth_activation,
        gate_scale=blockwise.gate_scale,
        synchronized_bn=blockwise.synchronized_bn,
        **{key: getattr(blockwise, key) for key in SHARED_ARCH_KEYS},
    )
    for mine, theirs in zip(student.encoder_blocks, blockwise.encoder_blocks, strict=True):
        _copy(mine, theirs)
    for mine, theirs in zip(student.trunk_blocks, blockwise.trunk_blocks, strict=False):
        _copy(mine, theirs)
    for task in tasks:
        point = student.branch_points[task]
        student.coders[task].set_weights(coders[task][point].gate_weights())
        # A teacher outside the SegNet family (U-Net, output-only) has no blocks that
        # fit: the branch starts as the block-wise student's own path (trunk blocks,
        # then its head for the task).
        source = teachers[task] if seeds_student(teachers[task]) else blockwise
        for offset, block in enumerate(student.branches[task]):
            inherit_weights(block, _teacher_step(source, task, point + offset))
        inherit_weights(student.heads[task], source.heads[task])
    return student


def student_param_counter(blockwise: TargetNet) -> Callable[[Mapping[str, int]], int]:
    """``points → parameters`` of the student :func:`assemble_student` would build.

    The student is the block-wise student's encoder and normaliser, the decoder
    blocks before its deepest branch point as the trunk, and per task a gate at its
    branch point, the decoder blocks from there on and a head; decoder block ``k``
    has the same parameters on the trunk and on a branch. So one model branched at
    candidate 0 gives every part's count, and any choice is a sum (equal to building
    that student and counting, without building 4^tasks models).
    """
    from ka_tf.models.channel_coding import ChannelCoding

    tasks = tuple(blockwise.tasks)
    skeleton = TargetNet(
        tasks,
        num_classes=blockwise.num_classes,
        branch_points={task: 0 for task in tasks},
        depth_activation=blockwise.depth_activation,
        gate_scale=blockwise.gate_scale,
        **{key: getattr(blockwise, key) for key in SHARED_ARCH_KEYS},
    )
    first = tasks[0]
    blocks = [block.count_params() for block in skeleton.branches[first]]
    heads = {task: skeleton.heads[task].count_params() for task in tasks}
    gates = []
    for channels in skeleton.candidate_channels():
        gate = ChannelCoding(channels, gate_scale=blockwise.gate_scale)
        gate.build((None, None, None, channels))
        gates.append(gate.count_params())
    base = skeleton.count_params() - sum(gates[0] + sum(blocks) + heads[t] for t in tasks)

    def count(points: Mapping[str, int]) -> int:
        trunk = sum(blocks[: max(points[t] for t in tasks)])
        return (
            base
            + trunk
            + sum(gates[points[t]] + sum(blocks[points[t] :]) + heads[t] for t in tasks)
        )

    return count
