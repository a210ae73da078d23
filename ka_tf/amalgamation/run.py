"""The amalgamation job end to end: block-wise training, branch-out, fine-tuning, report.

:func:`amalgamate` is what ``tools/train.py`` runs; every argument is bound in gin
(see ``gin/demo.gin``). Each phase checkpoints after every epoch and records its
completion in ``amalgamation_state.json``, so a killed run started again with the
same ``--model_dir`` goes on where it stopped.

The phases are functions over one :class:`AmalgamationState` (what is done, measured
and chosen) and one ``_Run`` (what they share: teachers, data, losses, the block-wise
student and its gates), called in order by :func:`amalgamate`: ``_set_up``,
``_blockwise_phase``, ``_block_loss_table``, ``_choose_branches``, ``_finetune_phase``,
then ``_report`` and ``_evaluate``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import gin
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from ka_tf import config, distribute
from ka_tf.amalgamation.amalgamator import (
    Amalgamator,
    build_coders,
    build_tap_adaptors,
    check_blockwise_teachers,
)
from ka_tf.amalgamation.branching import choose_branch_points
from ka_tf.amalgamation.lite_student_builder import (
    check_lite_settings,
    lite_student,
    tap_teacher_channels,
)
from ka_tf.amalgamation.report import (
    block_loss_figure,
    console_summary,
    prediction_panel,
    write_report,
)
from ka_tf.amalgamation.student_builder import (
    assemble_student,
    build_blockwise_student,
    check_teacher,
    num_classes_of,
    student_param_counter,
)
from ka_tf.amalgamation.target_cache import (
    TargetCache,
    prepare_target_cache,
    storage_form,
)
from ka_tf.amalgamation.target_views import check_target_scales
from ka_tf.constants import IMAGE, SEMSEG
from ka_tf.errors import ConfigError
from ka_tf.io_utils import atomic_save_keras, atomic_write_json, path_sha256
from ka_tf.losses import build_loss
from ka_tf.models.arch import BRANCH_CANDIDATES
from ka_tf.optim import build_optimizer
from ka_tf.teachers import TeacherSpec, load_teacher, seeds_student, teacher_tier
from ka_tf.training import summaries
from ka_tf.training.checkpoint import TrainingCheckpoint
from ka_tf.training.phase import evaluation_input, execution_steps, run_phase

# The students an amalgamation can build: the paper's SegNet TargetNet (block-wise
# phase, branch choice, branches from the teachers) and the light EfficientNet-Lite0
# student (ImageNet encoder, one small decoder per task, fine-tuning only).
STUDENT_FAMILIES = ("target_net", "efficientnet_lite")
STATE_FILE = "amalgamation_state.json"
STUDENT_FILE = "student.keras"


@gin.configurable
def distillation_losses(
    tasks: Sequence[str],
    losses: Mapping[str, str] | None = None,
    loss_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, keras.losses.Loss]:
    """The per-task loss to the teacher's output.

    :func:`amalgamate` builds one set per phase, under the gin scopes ``blockwise``
    and ``finetune``, so a phase can differ: e.g.
    ``finetune/distillation_losses.losses = {'semseg': 'hard_ce', 'depth': 'log_l1'}``.

    Args:
        tasks: Tasks to build losses for.
        losses: ``{task: loss name}`` (:meth:`ka_tf.tasks.Task.losses` lists each
            task's); a task not named gets its ``default_loss`` (semseg ``kl``, depth
            ``log_l1``, normals ``cosine``). Tasks named but not amalgamated are unused.
        loss_options: ``{"task.loss": {option: value}}``, the options of one loss of
            one task, e.g. ``{"semseg.kl": {"temperature": 2.0}}``; they apply
            whenever that loss is the task's.

    Raises:
        ConfigError: an unknown task or loss name in ``losses`` or ``loss_options``.
    """
    from ka_tf.tasks import get_task

    losses = dict(losses or {})
    loss_options = dict(loss_options or {})
    for task, name in losses.items():
        offered = get_task(task).losses()
        if name not in offered:
            raise ConfigError(
                f"unknown {task} loss in distillation_losses.losses. Received: {task}={name!r}. "
                f"Expected one of {sorted(offered)}."
            )
    for key in loss_options:
        task, _, name = key.partition(".")
        if name not in get_task(task).losses():
            raise ConfigError(
                f"distillation_losses.loss_options key {key!r} names no loss; expected "
                f"'task.loss', e.g. 'semseg.kl' (the {task} losses are "
                f"{sorted(get_task(task).losses())})."
            )
    built = {}
    for task in tasks:
        name = losses.get(task, get_task(task).default_loss)
        built[task] = build_loss(task, name, **loss_options.get(f"{task}.{name}", {}))
    return built


def load_teachers(
    paths: Mapping[str, str | TeacherSpec] | Sequence[str | TeacherSpec],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Loads the teachers, each file once.

    Args:
        paths: ``{task: source}``, or a list of sources whose tasks are read from the
            models (a finished student is a joint teacher for all its tasks). A source
            is a ka_tf ``.keras`` path (a splittable teacher) or a
            :class:`~ka_tf.teachers.TeacherSpec` (an output-only teacher). Two sources
            predicting the same task in the list form are a conflict.

    Returns:
        ``(task → teacher, task → path)``.
    """
    if not paths:
        raise ConfigError(
            "no teachers given: bind amalgamate.teachers = {'semseg': 'a.keras', ...} or a "
            "list of .keras paths."
        )
    loaded: dict[Any, Any] = {}
    if isinstance(paths, Mapping):
        by_task = dict(paths)
    else:
        by_task = {}
        for source in paths:
            loaded[source] = load_teacher(source)
            for task in getattr(loaded[source], "tasks", ()):
                if task in by_task:
                    raise ConfigError(
                        f"task {task!r} is predicted by two teachers, {_path_of(by_task[task])} "
                        f"and {_path_of(source)}; pass amalgamate.teachers as a dict "
                        f"{{task: path}} to choose one."
                    )
                by_task[task] = source
    teachers = {}
    for task, source in by_task.items():
        if source not in loaded:
            loaded[source] = load_teacher(source)
        check_teacher(task, loaded[source], _path_of(source))
        teachers[task] = loaded[source]
    return teachers, {task: _path_of(source) for task, source in by_task.items()}


def _path_of(source: str | TeacherSpec) -> str:
    return source.path if isinstance(source, TeacherSpec) else str(source)


@dataclasses.dataclass
class AmalgamationState:
    """Progress across phases, kept in ``amalgamation_state.json`` (written atomically).

    Attributes:
        path: The JSON file.
        blocks_done: Candidate blocks whose block-wise stage finished.
        block_losses: Task → validation projection loss per candidate, each measured
            at the end of its own stage (None where not measured).
        block_losses_final: The like-for-like table the branch choice reads (every
            block re-measured with the final encoder and trunk), once measured.
        branch_points: Task → chosen candidate, once chosen.
        wall_time_s: Phase → seconds.
        target_cache: The fine-tuning targets' cache (folder per task, images, storage
            forms, the tasks computed rather than read),
            when ``cache_targets`` is on.
        class_weights: Task → the class weights of its fine-tuning loss, measured from
            the teacher's cached targets (``class_balance``; none when unbalanced).
    """

    path: str
    blocks_done: list[int] = dataclasses.field(default_factory=list)
    block_losses: dict[str, list[float | None]] = dataclasses.field(default_factory=dict)
    block_losses_final: dict[str, list[float]] | None = None
    branch_points: dict[str, int] | None = None
    wall_time_s: dict[str, float] = dataclasses.field(default_factory=dict)
    target_cache: dict[str, Any] | None = None
    class_weights: dict[str, list[float]] | None = None

    @classmethod
    def load(cls, model_dir: str) -> AmalgamationState:
        """The state of the run in ``model_dir`` (empty for a new run)."""
        path = os.path.join(model_dir, STATE_FILE)
        if not os.path.exists(path):
            return cls(path)
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        fields = {f.name for f in dataclasses.fields(cls)} - {"path"}
        return cls(path, **{key: value for key, value in data.items() if key in fields})

    def save(self) -> None:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del data["path"]
        atomic_write_json(self.path, {k: v for k, v in data.items() if v is not None})


class _LayerGroup:
    """Task → list of layers (the block-wise gates, the tap adaptors) as one checkpoint
    group.

    ``weights`` is read at save/restore time: the gates are built lazily, block by block.
    """

    def __init__(self, layers: Mapping[str, Sequence[keras.layers.Layer]]):
        self.layers = layers

    @property
    def weights(self) -> list:
        return [
            w for task_layers in self.layers.values() for lay in task_layers for w in lay.weights
        ]


@dataclasses.dataclass
class _Run:
    """What every phase of one amalgamation shares: settings, models, data, losses."""

    model_dir: str
    strategy: tf.distribute.Strategy
    teachers: dict[str, keras.Model]
    teacher_paths: dict[str, str]
    train_data: Any  # factory of the training pipeline (a fresh one per phase)
    train_dataset: tf.data.Dataset  # the first one built, for its options
    val_data: Any
    val_batches: int
    stage_end_losses: bool
    steps_per_epoch: int
    steps_per_execution: int
    feature_weight: float
    flip_average_targets: bool
    target_scales: tuple[float, ...]
    blockwise_losses: dict[str, keras.losses.Loss]
    finetune_losses: dict[str, keras.losses.Loss]
    blockwise: Any  # the block-wise student (None for the efficientnet_lite family)
    coders: dict[str, list]
    sample: Any  # two training images, to build each compiled amalgamator
    student_family: str = "target_net"
    tap_weight: float = 0.0
    cache_targets: bool = False
    finetune_task_weights: dict[str, float] | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.teachers)

    @property
    def log_dir(self) -> str:
        return os.path.join(self.model_dir, "logs")

    def compiled(self, amalgamator: Amalgamator, steps: int, scope: str) -> Amalgamator:
        """``amalgamator`` compiled with the ``scope`` optimizer for ``steps`` steps."""
        with gin.config_scope(scope):
            # A phase of 0 steps (finetune_steps = 0: the student as assembled) still
            # builds its optimizer, whose schedule needs a length.
            optimizer = build_optimizer(total_steps=max(steps, 1))
        amalgamator.compile(
            optimizer=optimizer,
            steps_per_execution=execution_steps(
                self.steps_per_execution, min(self.steps_per_epoch, max(steps, 1))
            ),
        )
        amalgamator.prepare(self.sample)
        return amalgamator

    def blockwise_stage(self, block: int, steps: int) -> Amalgamator:
        """The compiled block-wise amalgamator projecting at candidate ``block``."""
        with self.strategy.scope():
            return self.compiled(
                Amalgamator(
                    self.blockwise,
                    self.teachers,
                    self.blockwise_losses,
                    mode="blockwise",
                    block=block,
                    coders=self.coders,
                    feature_weight=self.feature_weight,
                    flip_average_targets=self.flip_average_targets,
                ),
                steps,
                "blockwise",
            )

    def projection_losses(self, amalgamator: Amalgamator) -> dict[str, float]:
        """Task → validation projection loss of ``amalgamator`` over ``val_batches``."""
        scores = amalgamator.evaluate(
            evaluation_input(amalgamator, self.val_data, self.val_batches),
            return_dict=True,
            verbose=0,
        )
        # A tap-only teacher's block loss is its tap term (a feature distance).
        return {
            task: float(scores.get(f"{task}_projection", scores.get(f"{task}_tap")))
            for task in self.tasks
        }


@gin.configurable(denylist=["model_dir", "strategy"])
def amalgamate(
    model_dir: str,
    strategy: tf.distribute.Strategy,
    teachers: Mapping[str, str] = gin.REQUIRED,
    train_data=gin.REQUIRED,
    val_data=None,
    test_data=None,
    blockwise_steps: int = 100,
    finetune_steps: int = 1000,
    steps_per_epoch: int = 50,
    steps_per_execution: int = 10,
    val_batches: int = 8,
    stage_end_losses: bool = True,
    init_from: str = SEMSEG,
    student_width_multiplier: float | None = None,
    branch_points: Mapping[str, int] | None = None,
    feature_weight: float = 0.0,
    flip_average_targets: bool = True,
    target_scales: Sequence[float] = (1.0,),
    gate_scale: float = 2.0,
    synchronized_bn: bool = False,
    eval_max_batches: int | None = None,
    eval_split: str = "test",
    num_panels: int = 4,
    data_record: Mapping[str, Any] | None = None,
    student_family: str = "target_net",
    tap_weight: float = 0.0,
    cache_targets: bool = False,
    finetune_task_weights: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Amalgamates the teachers into one student and writes it and its report.

    Args:
        model_dir: Run directory (checkpoints, logs, ``student.keras``, reports).
        strategy: The distribution strategy to build and train under.
        teachers: Task → teacher ``.keras`` path, or a list of paths (tasks read from the
            models; a finished student serves as a joint teacher for all its tasks —
            the paper's offline/incremental option).
        train_data: Zero-argument factory of the infinite, batched, images-only
            training dataset (a gin-bound ``make_dataset``).
        val_data: Factory of a batched images-only dataset for the per-block losses.
        test_data: Factory of a batched *labelled* dataset for the final metrics.
        blockwise_steps: Steps of block-wise training at each candidate block.
        finetune_steps: Steps of end-to-end fine-tuning.
        steps_per_epoch: Steps between checkpoints (and progress-bar epochs).
        steps_per_execution: Steps per call of the compiled train function, at most
            (see :func:`ka_tf.training.phase.execution_steps`).
        val_batches: Batches of ``val_data`` for each block loss.
        stage_end_losses: Also measure each block's loss at the end of its own stage
            (the report's second table, which shows how far it is from the
            like-for-like table the branch choice reads; one more validation pass per
            block, about 17 s each on the street demo).
        init_from: ``scratch`` or the task whose teacher initialises the student.
        student_width_multiplier: The student's own width (None: the teachers'). A
            narrower student projects into the teachers' decoders through 1×1
            adaptors and is channel-sliced from them; see
            :func:`~ka_tf.amalgamation.student_builder.build_blockwise_student`.
        branch_points: Fixed task → candidate; skips the choice (and needs no
            block-wise phase when ``blockwise_steps`` is 0).
        feature_weight: Weight of the feature-level term in the block-wise phase.
        flip_average_targets: Teacher targets averaged over image and mirror.
        target_scales: Fine-tuning only: the teacher targets are also averaged over
            the image resized by each of these scales (1.0 first; each side rounded
            to a multiple of 32, outputs resized back), data distillation's
            multi-view inference. The block-wise phase keeps single-scale targets.
            Costs one teacher pass per view per step, or once per image with
            ``cache_targets``.
        gate_scale: Channel-coding gate scale (2: identity at init; 1: plain sigmoid).
        synchronized_bn: Synchronise the student's BatchNorm across replicas.
        eval_max_batches: Cap on test batches (None: the whole split).
        eval_split: The name ``test_data``'s metrics are filed under in the report
            (bind ``'val'`` with a val ``test_data`` to compare settings without
            touching the test split).
        num_panels: Test images drawn as PNG panels.
        data_record: What the data is, for the report's ``data`` (``--images`` binds
            the photo folder and its validation hold-out).
        student_family: ``target_net`` (the SegNet student of the paper's schedule) or
            ``efficientnet_lite`` (:func:`~ka_tf.amalgamation.lite_student_builder.
            lite_student`: fine-tuning only, so ``blockwise_steps = 0`` and no
            ``branch_points``).
        tap_weight: ``efficientnet_lite`` only: weight of the term matching the
            student's decoder features to each splittable or tap-only teacher's
            features at the five branch candidates (0: outputs only).
        cache_targets: Fine-tune on teacher targets computed once per image of the
            training split (whole unaugmented frames, flip-averaged), kept on disk
            and moved with the image by the augmentation, instead of running the
            teachers every step (:mod:`ka_tf.amalgamation.target_cache`). Needs
            ``train_data`` to be ``make_dataset`` and ``tap_weight = 0``. A
            class-predicting task stores its classes for ``hard_ce`` (1 byte a
            pixel), its float16 logits for ``kl`` (2 bytes × classes a pixel).
        finetune_task_weights: Task → weight of its loss in fine-tuning (default 1).
            The branches train on their own task's loss alone, and Adam's steps do
            not depend on a loss's scale, so a weight changes how much each task
            pulls on the layers the tasks share.

    Returns:
        The report dict (also written as ``amalgamation_report.json``/``.md``).
    """
    if blockwise_steps < 0 or finetune_steps < 0:
        raise ConfigError(
            f"amalgamate.blockwise_steps and finetune_steps must be >= 0. Received: "
            f"blockwise_steps={blockwise_steps}, finetune_steps={finetune_steps}."
        )
    if student_family not in STUDENT_FAMILIES:
        raise ConfigError(
            f"unknown amalgamate.student_family. Received: {student_family!r}. Expected one "
            f"of {STUDENT_FAMILIES}."
        )
    if student_family == "efficientnet_lite":
        check_lite_settings(blockwise_steps, branch_points, student_width_multiplier)
    state = AmalgamationState.load(model_dir)
    run = _set_up(
        model_dir,
        strategy,
        teachers,
        train_data,
        val_data,
        blockwise_steps=blockwise_steps,
        val_batches=val_batches,
        stage_end_losses=stage_end_losses,
        steps_per_epoch=steps_per_epoch,
        steps_per_execution=steps_per_execution,
        init_from=init_from,
        student_width_multiplier=student_width_multiplier,
        feature_weight=feature_weight,
        flip_average_targets=flip_average_targets,
        target_scales=target_scales,
        gate_scale=gate_scale,
        synchronized_bn=synchronized_bn,
        student_family=student_family,
        tap_weight=tap_weight,
        cache_targets=cache_targets,
        finetune_task_weights=finetune_task_weights,
    )
    blocks = list(range(len(BRANCH_CANDIDATES))) if blockwise_steps > 0 else []
    _blockwise_phase(run, state, blocks, blockwise_steps)
    block_losses = _block_loss_table(run, state, blocks)
    branch_points = _choose_branches(run, state, block_losses, branch_points)
    student = _finetune_phase(run, state, branch_points, finetune_steps)
    atomic_save_keras(student, os.path.join(model_dir, STUDENT_FILE))
    report = _report(
        run,
        state,
        student,
        block_losses,
        branch_points,
        len(blocks) * int(blockwise_steps),
        int(finetune_steps),
    )
    if data_record is not None:
        report["data"] = dict(data_record)
    if test_data is not None:
        with distribute.running(f"{eval_split} evaluation"):
            report.update(
                _evaluate(
                    student,
                    run.teachers,
                    run.teacher_paths,
                    test_data,
                    eval_max_batches,
                    model_dir,
                    num_panels,
                    eval_split,
                    step=len(blocks) * int(blockwise_steps) + int(finetune_steps),
                )
            )
    write_report(model_dir, report)
    print("\n" + console_summary(report), flush=True)
    return report


def _set_up(
    model_dir: str,
    strategy: tf.distribute.Strategy,
    teachers: Mapping[str, str] | Sequence[str],
    train_data,
    val_data,
    *,
    blockwise_steps: int,
    val_batches: int,
    stage_end_losses: bool,
    steps_per_epoch: int,
    steps_per_execution: int,
    init_from: str,
    student_width_multiplier: float | None,
    feature_weight: float,
    flip_average_targets: bool,
    target_scales: Sequence[float],
    gate_scale: float,
    synchronized_bn: bool,
    student_family: str = "target_net",
    tap_weight: float = 0.0,
    cache_targets: bool = False,
    finetune_task_weights: Mapping[str, float] | None = None,
) -> _Run:
    """Loads the teachers, builds the block-wise student and its gates, and the losses.

    Writes ``config.gin`` only once all of that is valid, so a run refused here leaves
    a previous run's config in place.
    """
    with strategy.scope():
        teacher_models, teacher_paths = load_teachers(teachers)
    tasks = tuple(teacher_models)
    target_scales = check_target_scales(target_scales)
    finetune_task_weights = _check_task_weights(finetune_task_weights, tasks)
    if blockwise_steps > 0:
        check_blockwise_teachers(teacher_models, teacher_paths)
    if cache_targets and tap_weight:
        raise ConfigError(
            f"amalgamate.cache_targets stores the teachers' outputs, and amalgamate."
            f"tap_weight = {tap_weight} also matches their features every step: bind "
            f"one of them off (cache_targets = False or tap_weight = 0)."
        )
    train_dataset = train_data()
    sample = next(iter(train_dataset.take(1)))[IMAGE][:2]
    with strategy.scope():
        with gin.config_scope("blockwise"):
            blockwise_losses = distillation_losses(tasks)
        with gin.config_scope("finetune"):
            finetune_losses = distillation_losses(tasks)
    _check_class_balance(blockwise_losses, finetune_losses, cache_targets)
    with strategy.scope():
        blockwise, coders = None, {}
        if student_family == "target_net":
            blockwise = build_blockwise_student(
                teacher_models, init_from, gate_scale, synchronized_bn, student_width_multiplier
            )
            coders = build_coders(
                blockwise.candidate_channels(),
                tasks,
                gate_scale,
                teacher_channels=tap_teacher_channels(teacher_models),
            )
    config.write_config(model_dir)
    return _Run(
        model_dir=model_dir,
        strategy=strategy,
        teachers=teacher_models,
        teacher_paths=teacher_paths,
        train_data=train_data,
        train_dataset=train_dataset,
        val_data=val_data,
        val_batches=val_batches,
        stage_end_losses=stage_end_losses,
        steps_per_epoch=steps_per_epoch,
        steps_per_execution=steps_per_execution,
        feature_weight=feature_weight,
        flip_average_targets=flip_average_targets,
        target_scales=target_scales,
        blockwise_losses=blockwise_losses,
        finetune_losses=finetune_losses,
        blockwise=blockwise,
        coders=coders,
        sample=sample,
        student_family=student_family,
        tap_weight=tap_weight,
        cache_targets=cache_targets,
        finetune_task_weights=finetune_task_weights,
    )


def _check_task_weights(
    weights: Mapping[str, float] | None, tasks: Sequence[str]
) -> dict[str, float]:
    """``weights`` for the run's tasks (1 by default). A known task this run has no
    teacher for is ignored, as in :func:`distillation_losses`, so a recipe's weights
    also serve its single-teacher controls."""
    from ka_tf.tasks import task_names

    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(task_names()))
    if unknown:
        raise ConfigError(
            f"amalgamate.finetune_task_weights names unknown tasks {unknown}. Expected some "
            f"of {list(task_names())}."
        )
    for task, weight in weights.items():
        if not float(weight) > 0:
            raise ConfigError(
                f"amalgamate.finetune_task_weights[{task!r}] must be > 0. Received: {weight}. "
                f"Leave a task out for weight 1."
            )
    return {task: float(weights.get(task, 1.0)) for task in tasks}


def _blockwise_phase(
    run: _Run, state: AmalgamationState, blocks: Sequence[int], steps: int
) -> None:
    """Block-wise training at each candidate in turn, each stage resumable.

    Stage b starts from stage b-1's weights; its validation projection loss at the
    stage's end (``stage_end_losses``) goes to ``state.block_losses`` and TensorBoard.
    """
    groups = {"student": run.blockwise, "coders": _LayerGroup(run.coders)}
    previous_checkpoint = None
    for block in blocks:
        directory = os.path.join(run.model_dir, "checkpoints", f"blockwise_b{block}")
        amalgamator = run.blockwise_stage(block, steps)
        checkpoint = TrainingCheckpoint(directory, groups, amalgamator.optimizer)
        if checkpoint.latest() is None and previous_checkpoint is not None:
            TrainingCheckpoint(directory, groups).restore(previous_checkpoint)
        if block not in state.blocks_done:
            print(
                f"\n== Block-wise training at block {block} ({BRANCH_CANDIDATES[block]}) ==",
                flush=True,
            )
            started = time.time()
            run_phase(
                amalgamator,
                run.train_data,  # a fresh pipeline per phase: same data when resumed
                name=f"blockwise_b{block}",
                total_steps=steps,
                steps_per_epoch=min(run.steps_per_epoch, steps),
                checkpoint=checkpoint,
                log_dir=run.log_dir,
            )
            if run.val_data is not None and run.stage_end_losses:
                with distribute.running(f"blockwise_b{block} validation"):
                    losses = run.projection_losses(amalgamator)
                for task in run.tasks:
                    state.block_losses.setdefault(task, [None] * len(BRANCH_CANDIDATES))
                    state.block_losses[task][block] = losses[task]
                summaries.write_scalars(
                    run.log_dir,
                    "validation",
                    {f"blockwise_at_stage_end/{task}_projection": v for task, v in losses.items()},
                    step=block,
                )
            state.blocks_done.append(block)
            state.wall_time_s[f"blockwise_b{block}"] = time.time() - started
            state.save()
        else:
            checkpoint.restore_latest()
        previous_checkpoint = checkpoint.latest()


def _block_loss_table(
    run: _Run, state: AmalgamationState, blocks: Sequence[int]
) -> dict[str, list[float | None]]:
    """The table the branch choice reads.

    Like for like: stage b's loss was measured after b + 1 stages of encoder training,
    and later stages move the trunk under gate b. So every block is measured again,
    all with the final encoder and trunk and each block's own gate: the exact start of
    the student that branching there assembles. The stage-end table stays in the report.
    """
    if blocks and run.val_data is not None and state.block_losses_final is None:
        with distribute.running("block-loss table"):
            rows = [run.projection_losses(run.blockwise_stage(block, 1)) for block in blocks]
        state.block_losses_final = {task: [row[task] for row in rows] for task in run.tasks}
        state.save()
        for block, row in zip(blocks, rows, strict=True):
            summaries.write_scalars(
                run.log_dir,
                "validation",
                {f"block_loss_table/{task}_projection": v for task, v in row.items()},
                step=block,
            )
    return state.block_losses_final or state.block_losses


def _choose_branches(
    run: _Run,
    state: AmalgamationState,
    block_losses: Mapping[str, Sequence[float | None]],
    branch_points: Mapping[str, int] | None,
) -> dict[str, int]:
    """The fixed ``branch_points``, or the choice of :func:`choose_branch_points` under
    its size budget; recorded in the state and drawn to TensorBoard."""
    if run.student_family == "efficientnet_lite":
        return {}  # one decoder per task: nothing to choose
    if branch_points is None:
        if not block_losses:
            raise ConfigError(
                "no branch points: bind amalgamate.branch_points, or run the block-wise phase "
                "(blockwise_steps > 0) with val_data to measure where to branch."
            )
        count = student_param_counter(run.blockwise)
        teachers_total = sum(run.teachers[task].count_params() for task in dict.fromkeys(run.tasks))
        branch_points = choose_branch_points(
            block_losses, params_ratio=lambda points: count(points) / teachers_total
        )
    chosen = {task: int(branch_points[task]) for task in run.tasks}
    state.branch_points = chosen
    state.save()
    logging.info("Branch points: %s", chosen)
    if block_losses:
        summaries.write_images(
            run.log_dir, "evaluation", "block_losses", [block_loss_figure(block_losses, chosen)], 0
        )
    return chosen


def _finetune_phase(
    run: _Run, state: AmalgamationState, branch_points: Mapping[str, int], steps: int
) -> keras.Model:
    """Assembles the student at ``branch_points`` (or builds the light student) and
    fine-tunes it end to end."""
    adaptors: dict[str, list] = {}
    with run.strategy.scope():
        if run.student_family == "efficientnet_lite":
            student = lite_student(run.teachers)
            if run.tap_weight:
                adaptors = build_tap_adaptors(
                    {task: student.tap_channels(task) for task in run.tasks},
                    tap_teacher_channels(run.teachers),
                )
        else:
            student = assemble_student(run.blockwise, run.coders, run.teachers, branch_points)
        finetuner = Amalgamator(
            student,
            run.teachers,
            run.finetune_losses,
            task_weights=run.finetune_task_weights,
            flip_average_targets=run.flip_average_targets,
            target_scales=run.target_scales,
            tap_adaptors=adaptors,
            tap_weight=run.tap_weight,
        )
    train_data = run.train_data
    # A class-balanced loss needs its weights even untrained: compiling runs it once.
    if run.cache_targets and (steps > 0 or balanced_tasks(run.finetune_losses)):
        started = time.time()
        cache = _target_cache(run, finetuner)
        state.wall_time_s.setdefault("target_cache", time.time() - started)
        if state.target_cache is None:  # the first attempt's record survives resumes
            state.target_cache = cache.record()
        train_data = functools.partial(run.train_data, teacher_targets=cache)
        # Before the losses first run (compiling prepares the finetuner on a batch).
        state.class_weights = _balance_classes(run, cache) or None
        state.save()
    with run.strategy.scope():
        finetuner = run.compiled(finetuner, steps, "finetune")
    if steps > 0:
        print(f"\n== Fine-tuning the student (branch points {dict(branch_points)}) ==", flush=True)
        started = time.time()
        checkpoint = TrainingCheckpoint(
            os.path.join(run.model_dir, "checkpoints", "finetune"),
            {"student": student, **({"tap_adaptors": _LayerGroup(adaptors)} if adaptors else {})},
            finetuner.optimizer,
        )
        run_phase(
            finetuner,
            train_data,
            name="finetune",
            total_steps=steps,
            steps_per_epoch=min(run.steps_per_epoch, steps),
            checkpoint=checkpoint,
            log_dir=run.log_dir,
        )
        state.wall_time_s.setdefault("finetune", time.time() - started)
        state.save()
    return student


def balanced_tasks(losses: Mapping[str, keras.losses.Loss]) -> list[str]:
    """The tasks whose loss weights its classes by the targets' frequencies."""
    return [task for task, loss in losses.items() if getattr(loss, "class_balance", 0.0) > 0]


def _check_class_balance(
    blockwise_losses: Mapping[str, keras.losses.Loss],
    finetune_losses: Mapping[str, keras.losses.Loss],
    cache_targets: bool,
) -> None:
    """Refuses class balancing where no cached targets can measure the frequencies,
    before anything is trained."""
    blockwise, finetune = balanced_tasks(blockwise_losses), balanced_tasks(finetune_losses)
    if blockwise:
        raise ConfigError(
            f"class_balance in the block-wise phase's {blockwise} loss: "
            f"the class frequencies come from the fine-tuning phase's teacher-target "
            f"cache. Bind it under finetune/distillation_losses.loss_options only."
        )
    if finetune and not cache_targets:
        raise ConfigError(
            f"class_balance in the fine-tuning {finetune} loss measures "
            f"the teachers' class frequencies from the teacher-target cache: set "
            f"amalgamate.cache_targets = True, or class_balance = 0."
        )


def _balance_classes(run: _Run, cache: TargetCache) -> dict[str, list[float]]:
    """Sets each class-balanced fine-tuning loss's weights from its teacher's class
    frequencies over the cached transfer split; returns ``task → weights``."""
    weights = {}
    for task in balanced_tasks(run.finetune_losses):
        loss = run.finetune_losses[task]
        counts = cache.class_frequencies(task, num_classes_of(run.teachers))
        weights[task] = loss.set_class_frequencies(counts)
        print(
            f"{task}: class weights (balance {loss.class_balance:g}) from the teacher's "
            f"{int(counts.sum())} target pixels: " + " ".join(f"{w:.2f}" for w in weights[task]),
            flush=True,
        )
    return weights


def _target_cache(run: _Run, finetuner: Amalgamator) -> TargetCache:
    """The fine-tuning targets of the training split, read from disk or computed once
    (:func:`~ka_tf.amalgamation.target_cache.prepare_target_cache`)."""
    try:
        images = run.train_data(training=False, teacher_targets=None)
    except TypeError as error:
        raise ConfigError(
            f"amalgamate.cache_targets re-reads the training split unaugmented through "
            f"make_dataset, and amalgamate.train_data does not take its arguments ({error}). "
            f"Bind amalgamate.train_data = @transfer/make_dataset, or amalgamate."
            f"cache_targets = False."
        ) from error

    @tf.function(reduce_retracing=True)
    def compute(batch, tasks):
        targets = finetuner.teacher_targets(tf.cast(batch, tf.float32), tasks)
        return {task: target["output"] for task, target in targets.items()}

    return prepare_target_cache(
        (element[IMAGE] for element in images),
        compute,
        {task: path_sha256(run.teacher_paths[task]) for task in run.tasks},
        {task: storage_form(task, run.finetune_losses[task]) for task in run.tasks},
        run.flip_average_targets,
        target_scales=run.target_scales,
    )


def _report(
    run: _Run,
    state: AmalgamationState,
    student: keras.Model,
    block_losses: Mapping[str, Sequence[float | None]],
    branch_points: Mapping[str, int],
    blockwise_steps_total: int,
    finetune_steps: int,
) -> dict[str, Any]:
    """The report without metrics (see :func:`_evaluate`)."""
    tasks = run.tasks
    return {
        "tasks": list(tasks),
        "teachers": run.teacher_paths,
        "branch_points": dict(branch_points),
        # The table the branch choice read (every block with the final trunk), and each
        # stage's loss at the end of its own stage.
        "block_losses": block_losses,
        "block_losses_at_stage_end": state.block_losses,
        # Optimizer steps per phase (block-wise: at each candidate block), so a control
        # run can be given the same number of steps.
        "steps": {"blockwise": blockwise_steps_total, "finetune": finetune_steps},
        "teacher_tiers": {task: teacher_tier(run.teachers[task]) for task in tasks},
        "student": _student_record(run, student),
        "params": {
            "student": int(student.count_params()),
            "teachers": {task: int(run.teachers[task].count_params()) for task in tasks},
        },
        "wall_time_s": state.wall_time_s,
        **({"target_cache": state.target_cache} if state.target_cache else {}),
        **({"class_weights": state.class_weights} if state.class_weights else {}),
        "distribution": distribution_record(run.strategy, run.train_dataset),
        "metrics": {},
    }


def _student_record(run: _Run, student: keras.Model) -> dict[str, Any]:
    """What the student is: its family, and how it was built from the teachers."""
    tasks = run.tasks
    if run.student_family == "efficientnet_lite":
        return {
            "family": run.student_family,
            "decoder_channels": int(student.decoder_channels),
            # Where the encoder started: 'imagenet', a weights file, or None (random).
            "encoder_weights": getattr(student, "encoder_weights_source", None),
            "tap_weight": run.tap_weight,
            "tap_tasks": sorted(tap_teacher_channels(run.teachers)) if run.tap_weight else [],
        }
    return {
        "family": run.student_family,
        "width_multiplier": float(student.width_multiplier),
        "teachers_width_multiplier": {
            task: float(run.teachers[task].width_multiplier)
            for task in tasks
            if hasattr(run.teachers[task], "width_multiplier")
        },
        # Branches copied whole from the teachers, or channel-sliced (a student of
        # its own width; its block-wise gates reached the teachers through adaptors),
        # or the block-wise student's own (output-only teachers have no decoder).
        "branches": {task: _branch_origin(student, run.teachers[task], task) for task in tasks},
    }


def _branch_origin(student: keras.Model, teacher: Any, task: str) -> str:
    if not seeds_student(teacher):
        return "student's own"
    if student.candidate_channels() == teacher.candidate_channels(task):
        return "copied"
    return "channel-sliced"


def distribution_record(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset) -> dict:
    """How the run was distributed: strategy, replicas, workers and input sharding.

    The sharding is the training dataset's own auto-shard option (set per dataset by
    :func:`ka_tf.data.registry.with_sharding`), ``AUTO`` where the dataset did not
    choose one.
    """
    policy = dataset.options().experimental_distribute.auto_shard_policy
    workers = distribute.num_workers(strategy)
    return {
        "strategy": distribute.strategy_kind(strategy),
        "replicas": int(strategy.num_replicas_in_sync),
        "workers": int(workers),
        "input_sharding": tf.data.experimental.AutoShardPolicy(policy).name,
    }


def _evaluate(
    student, teachers, teacher_paths, test_data, max_batches, model_dir, num_panels, split, step=0
) -> dict[str, Any]:
    """Metrics of the student and each teacher on ``split``, Δm, and PNG panels.

    A teacher's metrics are read from :mod:`ka_tf.score_cache` when the same teacher
    file was scored on the same batches before (a study's seeds, a second demo);
    ``teacher_scores_cached`` lists the tasks whose teacher was.

    On a split without labels for the student's tasks (held-out photos), the student's
    *agreement* with its teachers instead (:func:`ka_tf.evaluation.teacher_labelled`),
    filed under ``agreement``. The same go to TensorBoard (``logs/evaluation``, at
    ``step``): a scalar per source and metric (``<split>/<source>/<metric>``), Δm, and
    the panels as images.
    """
    from ka_tf import score_cache
    from ka_tf.evaluation import evaluate_model, teacher_labelled
    from ka_tf.metrics import relative_change

    dataset = test_data()
    element = dataset.element_spec
    labelled = [task for task in student.tasks if task in element]
    if not labelled:
        tasks = list(student.tasks)
        logging.info("%s split has no labels for %s: scoring agreement.", split, tasks)
        by_teacher = teacher_labelled(dataset, {t: teachers[t] for t in tasks}, max_batches)
        scores = evaluate_model(student, by_teacher, tasks=tasks)
        result: dict[str, Any] = {"agreement": {split: {"student": scores}}}
        scalars = {f"{split}_agreement/student/{k}": v for k, v in scores.items()}
        summaries.write_scalars(os.path.join(model_dir, "logs"), "evaluation", scalars, step)
        _write_panels(student, teachers, dataset, tasks, model_dir, num_panels, split, step)
        return result
    rows = {"student": evaluate_model(student, dataset, tasks=labelled, max_batches=max_batches)}
    teacher_scores, cached = {}, []
    settings = {"evaluate_model": gin.get_bindings("evaluate_model")}
    batches = score_cache.dataset_fingerprint(dataset, max_batches)  # once for all teachers
    for task in labelled:
        scores, read = score_cache.scores(
            teacher_paths[task],
            batches,
            {**settings, "tasks": [task]},
            lambda task=task: evaluate_model(
                teachers[task], dataset, tasks=[task], max_batches=max_batches
            ),
        )
        if read:
            cached.append(task)
            print(f"teacher/{task}: scores read from the score cache (same file, same frames)")
        rows[f"teacher/{task}"] = scores
        teacher_scores.update(scores)
    result = {"metrics": {split: rows}, "teacher_scores_cached": cached}
    # A relative change is undefined where the teacher scores exactly 0 (e.g. δ1 of an
    # untrained teacher): such metrics are listed, not silently dropped.
    comparable = {k: v for k, v in teacher_scores.items() if v != 0 and np.isfinite(v)}
    result["relative_change"] = relative_change(rows["student"], comparable)
    result["relative_change_excluded"] = sorted(set(teacher_scores) - set(comparable))
    scalars = {
        f"{split}/{source}/{metric}": value
        for source, scores in rows.items()
        for metric, value in scores.items()
    }
    scalars[f"{split}/delta_m"] = result["relative_change"].get("delta_m")
    summaries.write_scalars(os.path.join(model_dir, "logs"), "evaluation", scalars, step)
    _write_panels(student, teachers, dataset, labelled, model_dir, num_panels, split, step)
    return result


def _write_panels(student, teachers, dataset, tasks, model_dir, num_panels, split, step) -> None:
    """PNG panels of the first batch's images (``panels/<split>_NN.png``, and
    TensorBoard): teacher | student (| truth, where the split has labels) per task."""
    from ka_tf.evaluation import predict_dense
    from ka_tf.visualize import save_png

    batch = next(iter(dataset.take(1)))
    images = batch[IMAGE][:num_panels]
    student_out = predict_dense(student, images)
    teacher_out = {task: predict_dense(teachers[task], images)[task] for task in tasks}
    truth = [task for task in tasks if task in batch]
    palette, names = _palette_for(student)
    os.makedirs(os.path.join(model_dir, "panels"), exist_ok=True)
    panels = []
    for i in range(int(images.shape[0])):
        rows = {
            "teacher": {task: teacher_out[task][i] for task in tasks},
            "student": {task: student_out[task][i] for task in tasks},
        }
        if truth:
            rows["truth"] = {task: np.asarray(batch[task][i]) for task in truth}
        panel = prediction_panel(np.asarray(images[i]), rows, palette, names)
        save_png(os.path.join(model_dir, "panels", f"{split}_{i:02d}.png"), panel)
        panels.append(panel)
    summaries.write_images(
        os.path.join(model_dir, "logs"), "evaluation", f"{split}/panels", panels, step
    )


def _palette_for(model) -> tuple[Any, Any]:
    from ka_tf import constants, visualize

    classes = getattr(model, "num_classes", None) or 0
    if classes == len(constants.CITYSCAPES_CLASSES):
        return constants.CITYSCAPES_PALETTE, constants.CITYSCAPES_CLASSES
    if classes == len(constants.NYU13_CLASSES):
        return constants.NYU13_PALETTE, constants.NYU13_CLASSES
    return visualize.default_palette(max(classes, 1)), None
