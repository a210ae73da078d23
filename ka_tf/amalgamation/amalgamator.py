"""The Amalgamator: trains a student from frozen teachers' outputs, with no labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from ka_tf.amalgamation.target_views import average_views, check_target_scales
from ka_tf.constants import IMAGE, TEACHER_TARGET
from ka_tf.errors import ConfigError
from ka_tf.losses import FeatureMSE
from ka_tf.models.channel_coding import ChannelCoding
from ka_tf.teachers import SPLITTABLE, TAP_ONLY, teacher_tier

MODES = ("blockwise", "finetune")
BLOCKWISE_TIERS = ("splittable", "tap_only")  # teachers the block-wise phase can use


def check_blockwise_teachers(
    teachers: Mapping[str, Any], paths: Mapping[str, str] | None = None
) -> None:
    """Raises ConfigError naming the first teacher the block-wise phase cannot use (one
    neither splittable nor tap-only), and the bindings that run without that phase."""
    for task, teacher in teachers.items():
        tier = teacher_tier(teacher)
        if tier not in BLOCKWISE_TIERS:
            where = f" {paths[task]}" if paths and task in paths else ""
            raise ConfigError(
                f"the {task!r} teacher{where} is {tier}: the block-wise phase projects through "
                f"each teacher's decoder or matches its taps, and this teacher has neither. "
                f"Bind amalgamate.blockwise_steps = 0 and amalgamate.branch_points = "
                f"{{task: 0..4, ...}}, or declare teacher_spec.taps (docs/teachers.md)."
            )


def build_coders(
    channels: Sequence[int],
    tasks: Sequence[str],
    gate_scale: float = 2.0,
    teacher_channels: Mapping[str, Sequence[int]] | None = None,
):
    """One channel-coding gate per task and branch candidate (training-time adaptors).

    All are built at once, so a checkpoint of any phase holds every gate.

    Args:
        channels: The student's channels at each branch candidate.
        tasks: Tasks to build gates for.
        gate_scale: See :class:`~ka_tf.models.channel_coding.ChannelCoding`.
        teacher_channels: Task → its teacher's channels at each candidate. Where they
            differ from the student's, the gate ends in a 1×1 adaptor to the teacher's
            width (default: the student's widths, no adaptors).
    """
    coders = {}
    for task in tasks:
        coders[task] = []
        outputs = (teacher_channels or {}).get(task, channels)
        for b, (c, out) in enumerate(zip(channels, outputs, strict=True)):
            coder = ChannelCoding(
                c, gate_scale=gate_scale, out_channels=out, name=f"{task}_coding_b{b}"
            )
            coder.build((None, None, None, c))
            coders[task].append(coder)
    return coders


def build_tap_adaptors(
    student_channels: Mapping[str, Sequence[int]],
    teacher_channels: Mapping[str, Sequence[int]],
) -> dict[str, list[keras.layers.Layer]]:
    """Task → five 1×1 convs from the student's tap widths to its teacher's, built.

    Args:
        student_channels: Task → the student's channels at each tap
            (:meth:`~ka_tf.models.LiteStudent.tap_channels`).
        teacher_channels: Task → its teacher's channels at each branch candidate (only
            the tasks given here get adaptors).
    """
    adaptors = {}
    for task, outputs in teacher_channels.items():
        adaptors[task] = []
        for k, (c_in, c_out) in enumerate(zip(student_channels[task], outputs, strict=True)):
            adaptor = keras.layers.Conv2D(int(c_out), 1, name=f"{task}_tap_adaptor_{k}")
            adaptor.build((None, None, None, int(c_in)))
            adaptors[task].append(adaptor)
    return adaptors


class Amalgamator(keras.Model):
    """Trains a :class:`~ka_tf.models.TargetNet` against frozen teachers, labels never read.

    Two modes, one per phase of the paper's schedule:

    - ``"blockwise"`` at branch candidate ``block``: the student's shared feature at that
      block goes through each task's channel-coding gate and then through that
      task's *frozen teacher decoder from the same block on*, unpooled with the
      teacher's own side inputs (SegNet's pooling switches, U-Net's skips)
      computed on the same image. The result is compared with
      the teacher's output (term ``<task>_projection``), optionally plus an MSE to the
      teacher's own feature at that block (``<task>_feature``). Only the student's
      encoder, trunk blocks before ``block`` and the gates at ``block`` train.
    - ``"finetune"``: the whole student end to end, its outputs against the teachers'
      (term ``<task>_output``). With ``tap_adaptors`` (a
      :class:`~ka_tf.models.LiteStudent`), also the student's decoder feature at each
      of the five branch candidates, through a 1×1 adaptor to the teacher's width and
      resized to its size, against a splittable teacher's feature there or a tap-only
      teacher's tap (term ``<task>_tap``, weighted by ``tap_weight``, mean over taps).

    Teacher targets are, by default, the average of the teacher on the image and on
    its mirror image (``flip_average_targets``), a better target than either. With
    ``target_scales`` they also average over the image resized by each scale (each
    side rounded to a multiple of 32; every output resized back bilinearly): the
    multi-view inference of data distillation (Radosavovic et al., CVPR 2018), whose
    targets are better than the teacher's single pass.

    The train step reads ``data["image"]``, and, in ``finetune`` mode, each task's
    cached targets where ``data`` carries them (``teacher_target/<task>``; then the
    teachers do not run: :mod:`ka_tf.amalgamation.target_cache`); every other key,
    labels included, is ignored.

    Args:
        student: The student model (a TargetNet).
        teachers: Task → frozen teacher: a SegNet or a finished TargetNet (splittable),
            or, in ``finetune`` mode only, an output-only teacher
            (:class:`~ka_tf.teachers.ForeignTeacher`).
        losses: Task → distillation loss (``keras.losses.Loss``) to the teacher output.
        mode: ``"blockwise"`` or ``"finetune"``.
        block: Branch candidate trained in ``blockwise`` mode.
        coders: Task → list of 5 gates (``blockwise`` mode).
        task_weights: Task → weight of its terms (default 1).
        feature_weight: Weight of the feature-level term (``blockwise`` mode).
        flip_average_targets: Average the teacher over the image and its mirror.
        target_scales: Scales of the image the teacher targets are averaged over
            (each mirrored too with ``flip_average_targets``); 1.0 first.
        tap_adaptors: Task → five 1×1 adaptors from the student's taps to the
            teacher's channels (``finetune`` mode; see :func:`build_tap_adaptors`).
        tap_weight: Weight of the tap term.
    """

    def __init__(
        self,
        student: keras.Model,
        teachers: Mapping[str, keras.Model],
        losses: Mapping[str, keras.losses.Loss],
        mode: str = "finetune",
        block: int | None = None,
        coders: Mapping[str, Sequence[ChannelCoding]] | None = None,
        task_weights: Mapping[str, float] | None = None,
        feature_weight: float = 0.0,
        flip_average_targets: bool = True,
        target_scales: Sequence[float] = (1.0,),
        tap_adaptors: Mapping[str, Sequence[keras.layers.Layer]] | None = None,
        tap_weight: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ConfigError(f"unknown mode. Received: mode={mode!r}. Expected one of {MODES}.")
        self.tasks = tuple(teachers)
        if sorted(losses) != sorted(self.tasks):
            raise ConfigError(
                f"losses {sorted(losses)} must match the teachers' tasks {sorted(self.tasks)}."
            )
        if mode == "blockwise" and (block is None or coders is None):
            raise ConfigError("mode='blockwise' needs block and coders.")
        if mode == "blockwise":
            check_blockwise_teachers(teachers)
        for teacher in teachers.values():
            teacher.trainable = False
        self.student = student
        self.teachers = dict(teachers)
        self.distill_losses = dict(losses)
        self.mode = mode
        self.block = block
        self.coders = {task: list(coders[task]) for task in self.tasks} if coders else {}
        self.task_weights = {
            task: float((task_weights or {}).get(task, 1.0)) for task in self.tasks
        }
        self.feature_weight = float(feature_weight)
        self.flip_average_targets = bool(flip_average_targets)
        self.target_scales = check_target_scales(target_scales)
        self.tap_adaptors = {task: list(a) for task, a in (tap_adaptors or {}).items()}
        if self.tap_adaptors and mode != "finetune":
            raise ConfigError(
                "tap_adaptors are a fine-tuning term: pass them with mode='finetune'."
            )
        self.tap_weight = float(tap_weight)
        self.feature_loss = FeatureMSE()
        self.term_names = [f"{task}_{term}" for task in self.tasks for term in self._terms_of(task)]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ["loss", *self.term_names]}
        if mode == "blockwise":
            self._check_channels()

    def _terms_of(self, task: str) -> list[str]:
        """The loss terms of ``task`` in this mode: ``output`` (fine-tuning); ``projection``
        (+ ``feature``) through a splittable teacher's decoder; ``tap`` for a tap-only one."""
        if self.mode == "finetune":
            return ["output"] + (["tap"] if task in self.tap_adaptors else [])
        if teacher_tier(self.teachers[task]) == TAP_ONLY:
            return ["tap"]
        return ["projection"] + (["feature"] if self.feature_weight else [])

    def _check_channels(self) -> None:
        block = self.block
        student_channels = self.student.candidate_channels()[block]
        for task, teacher in self.teachers.items():
            teacher_channels = teacher.candidate_channels(task)[block]
            coder = self.coders[task][block]
            if (coder.channels, coder.out_channels) != (student_channels, teacher_channels):
                raise ConfigError(
                    f"the {task!r} gate at block {block} maps {coder.channels} to "
                    f"{coder.out_channels} channels, but the student's feature there has "
                    f"{student_channels} and the {task!r} teacher's {teacher_channels}: build "
                    f"the gates with build_coders(student.candidate_channels(), tasks, "
                    f"teacher_channels=...)."
                )

    # --- Keras plumbing ------------------------------------------------------------------

    @property
    def metrics(self):
        return list(self.trackers.values())

    def build(self, input_shape=None):
        # Student, teachers and gates are built on their own (see ``prepare``).
        self.built = True

    def call(self, data, training=False):
        return self.student(self._images(data), training=training)

    def prepare(self, sample_images) -> None:
        """Creates every variable on a sample batch, then builds the optimizer for the
        variables this mode trains (call after ``compile``, before ``fit`` or restoring
        a checkpoint)."""
        images = self._images(sample_images)
        self.loss_terms(images, self.teacher_targets(images), training=False)
        if not self.optimizer.built:
            self.optimizer.build(self.variables_to_train())

    def variables_to_train(self) -> list:
        """The variables the current mode updates."""
        if self.mode == "finetune":
            adaptors = [a for task_adaptors in self.tap_adaptors.values() for a in task_adaptors]
            return list(self.student.trainable_variables) + [
                v for adaptor in adaptors for v in adaptor.trainable_variables
            ]
        layers = [*self.student.encoder_blocks, *self.student.trunk_blocks[: self.block]]
        layers += [self.coders[task][self.block] for task in self.tasks]
        return [v for layer in layers for v in layer.trainable_variables]

    # --- targets and losses ----------------------------------------------------------------

    def teacher_targets(self, images, tasks: Sequence[str] | None = None) -> dict[str, dict]:
        """Runs each distinct teacher once: outputs (flip-averaged), switches, features.

        Args:
            images: float32 ``[B, H, W, 3]``.
            tasks: Only these tasks' teachers (default: all).
        """
        targets = {}
        by_model: dict[int, list[str]] = {}
        for task, teacher in self.teachers.items():
            if tasks is None or task in tasks:
                by_model.setdefault(id(teacher), []).append(task)
        for tasks in by_model.values():
            teacher = self.teachers[tasks[0]]
            # Side inputs, features and taps exist only where a term reads them: the
            # block-wise phase, or fine-tuning's tap term.
            features_needed = self.mode == "blockwise" or any(
                task in self.tap_adaptors for task in tasks
            )
            tier = teacher_tier(teacher) if features_needed else None
            splittable = tier == SPLITTABLE
            if splittable:
                inter = teacher.forward_intermediates(images, training=False)
                outputs = inter["outputs"]
            elif tier == TAP_ONLY:
                inter = teacher.forward_taps(images)
                outputs = inter["outputs"]
            else:
                outputs = teacher(images, training=False)
            averaged = average_views(
                teacher, images, outputs, tasks, self.target_scales, self.flip_average_targets
            )
            for task in tasks:
                output = averaged[task]
                targets[task] = {"output": ops.stop_gradient(output)}
                if tier == TAP_ONLY:
                    targets[task]["taps"] = [ops.stop_gradient(t) for t in inter["taps"]]
                if splittable:
                    targets[task]["side"] = [ops.stop_gradient(s) for s in inter["side"]]
                    targets[task]["features"] = [
                        ops.stop_gradient(f) for f in inter["candidates"][task]
                    ]
        return targets

    def loss_terms(self, images, targets, training: bool) -> dict:
        """The named, weighted loss terms for one batch (each a replica-scaled scalar)."""
        terms = {}
        if self.mode == "finetune":
            if self.tap_adaptors:
                inter = self.student.forward_taps(images, training=training)
                outputs = inter["outputs"]
            else:
                outputs = self.student(images, training=training)
            for task in self.tasks:
                loss = self.distill_losses[task](targets[task]["output"], outputs[task])
                terms[f"{task}_output"] = self.task_weights[task] * loss
                if task in self.tap_adaptors:
                    terms[f"{task}_tap"] = self._tap_term(task, inter["taps"][task], targets[task])
            return terms
        shared = self.student.trunk_features(images, self.block, training=training)[0][self.block]
        for task in self.tasks:
            target = targets[task]
            coded = self.coders[task][self.block](shared)
            if "taps" in target:  # tap-only: the gate's 1x1 adaptor output vs the tap
                tap_loss = self._feature_distance(target["taps"][self.block], coded)
                terms[f"{task}_tap"] = self.task_weights[task] * tap_loss
                continue
            projected = self.teachers[task].decode_from(
                coded, target["side"], self.block, task=task, training=False
            )
            loss = self.distill_losses[task](target["output"], projected)
            terms[f"{task}_projection"] = self.task_weights[task] * loss
            if self.feature_weight:
                feature = self.feature_loss(target["features"][self.block], coded)
                terms[f"{task}_feature"] = self.feature_weight * self.task_weights[task] * feature
        return terms

    def _tap_term(self, task: str, student_taps, target) -> Any:
        """Mean over the five taps of the feature MSE between the teacher's feature and
        the student's, adapted to its width and resized to its size."""
        teacher_taps = target.get("taps", target.get("features"))
        losses = [
            self._feature_distance(theirs, adaptor(mine))
            for adaptor, mine, theirs in zip(
                self.tap_adaptors[task], student_taps, teacher_taps, strict=True
            )
        ]
        return self.tap_weight * self.task_weights[task] * ops.mean(ops.stack(losses))

    def _feature_distance(self, teacher_feature, student_feature):
        """Feature MSE after resizing the student's (adapted) feature to the teacher's."""
        size = tf.shape(teacher_feature)[1:3]
        resized = tf.image.resize(student_feature, size, method="bilinear")
        return self.feature_loss(teacher_feature, resized)

    def _update_trackers(self, terms, total) -> dict:
        # Keras losses are divided by the replica count for gradient summation; the
        # trackers report the per-replica mean, as Keras' own trainer does.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.trackers["loss"].update_state(total * replicas)
        for name, value in terms.items():
            self.trackers[name].update_state(value * replicas)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @staticmethod
    def _images(data):
        if isinstance(data, (tuple, list)):
            data = keras.utils.unpack_x_y_sample_weight(data)[0]
        images = data[IMAGE] if isinstance(data, Mapping) else data
        return ops.cast(images, "float32")

    def cached_targets(self, data) -> dict[str, dict] | None:
        """The targets a teacher-target cache joined to ``data`` (key
        ``teacher_target/<task>``; :mod:`ka_tf.amalgamation.target_cache`), or None when
        it holds none. Labels (a task's own key) are never read.

        Raises:
            ConfigError: cached targets in a mode whose terms read the teachers'
                features too (the block-wise phase, fine-tuning's tap term).
        """
        keys = {task: f"{TEACHER_TARGET}{task}" for task in self.tasks}
        if not isinstance(data, Mapping) or not any(key in data for key in keys.values()):
            return None
        missing = [key for key in keys.values() if key not in data]
        if missing:
            raise ConfigError(
                f"the input holds cached teacher targets but not {missing}: cache every "
                f"teacher's targets (ka_tf.amalgamation.target_cache) or none."
            )
        if self.mode != "finetune" or self.tap_adaptors:
            raise ConfigError(
                "cached teacher targets hold outputs only, and this amalgamator's terms "
                "also read the teachers' features: cache targets for fine-tuning without "
                "a tap term only (amalgamate.tap_weight = 0)."
            )
        targets = {}
        for task in self.tasks:
            value = data[keys[task]]
            if value.dtype != tf.uint8:  # a map; uint8 is a class-id map, read as is
                value = ops.cast(value, "float32")
            targets[task] = {"output": value}
        return targets

    def train_step(self, data):
        images = self._images(data)
        targets = self.cached_targets(data)
        if targets is None:
            targets = self.teacher_targets(images)
        variables = self.variables_to_train()
        with tf.GradientTape() as tape:
            terms = self.loss_terms(images, targets, training=True)
            total = ops.sum(ops.stack(list(terms.values())))
            scaled = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        return self._update_trackers(terms, total)

    def test_step(self, data):
        images = self._images(data)
        terms = self.loss_terms(images, self.teacher_targets(images), training=False)
        return self._update_trackers(terms, ops.sum(ops.stack(list(terms.values()))))
