"""The amalgamation job end to end: block-wise training, branch-out, fine-tuning, report.

:func:`amalgamate` is what ``tools/train.py`` runs; every argument is bound in gin
(see ``gin/demo.gin``). Each phase checkpoints after every epoch and records its
completion in ``amalgamation_state.json``, so a killed run started again with the
same ``--model_dir`` goes on where it stopped.
"""

from __future__ import annotations

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
from ka_tf.amalgamation.amalgamator import Amalgamator, build_coders
from ka_tf.amalgamation.branching import choose_branch_points
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
    student_param_counter,
)
from ka_tf.constants import DEPTH, IMAGE, NORMALS, SEMSEG
from ka_tf.errors import ConfigError
from ka_tf.io_utils import atomic_save_keras, atomic_write_json
from ka_tf.losses import build_loss
from ka_tf.models.arch import BRANCH_CANDIDATES
from ka_tf.optim import build_optimizer
from ka_tf.training import summaries
from ka_tf.training.checkpoint import TrainingCheckpoint
from ka_tf.training.phase import evaluation_input, execution_steps, run_phase

STATE_FILE = "amalgamation_state.json"
STUDENT_FILE = "student.keras"


@gin.configurable
def distillation_losses(
    tasks,
    semseg: str = "kl",
    temperature: float = 2.0,
    depth: str = "log_l1",
    normals: str = "cosine",
) -> dict[str, keras.losses.Loss]:
    """The per-task loss to the teacher's output.

    :func:`amalgamate` builds one set per phase, under the gin scopes ``blockwise``
    and ``finetune``, so a phase can differ: e.g.
    ``finetune/distillation_losses.semseg = 'hard_ce'``.

    Args:
        tasks: Tasks to build losses for.
        semseg: ``kl`` (soft targets at ``temperature``) or ``hard_ce`` (teacher argmax).
        temperature: Softmax temperature of ``kl``.
        depth: ``log_l1``, ``l1``, ``silog`` or ``berhu``.
        normals: ``cosine``.
    """
    options = {SEMSEG: (semseg, {"temperature": temperature} if semseg == "kl" else {})}
    options[DEPTH] = (depth, {})
    options[NORMALS] = (normals, {})
    return {task: build_loss(task, options[task][0], **options[task][1]) for task in tasks}


def load_teachers(
    paths: Mapping[str, str] | Sequence[str],
) -> tuple[dict[str, keras.Model], dict[str, str]]:
    """Loads the teachers, each file once.

    Args:
        paths: ``{task: path}``, or a list of paths whose tasks are read from the models
            (a finished student is a joint teacher for all its tasks). Two files
            predicting the same task in the list form are a conflict.

    Returns:
        ``(task → model, task → path)``.
    """
    from ka_tf.evaluation import load_model_file

    if not paths:
        raise ConfigError(
            "no teachers given: bind amalgamate.teachers = {'semseg': 'a.keras', ...} or a "
            "list of .keras paths."
        )
    loaded: dict[str, keras.Model] = {}
    if isinstance(paths, Mapping):
        by_task = dict(paths)
    else:
        by_task = {}
        for path in paths:
            loaded[path] = load_model_file(path)
            for task in getattr(loaded[path], "tasks", ()):
                if task in by_task:
                    raise ConfigError(
                        f"task {task!r} is predicted by two teachers, {by_task[task]} and "
                        f"{path}; pass amalgamate.teachers as a dict {{task: path}} to choose one."
                    )
                by_task[task] = path
    teachers = {}
    for task, path in by_task.items():
        if path not in loaded:
            loaded[path] = load_model_file(path)
        check_teacher(task, loaded[path], path)
        teachers[task] = loaded[path]
    return teachers, by_task


class _State:
    """Progress across phases, in ``amalgamation_state.json`` (written atomically)."""

    def __init__(self, model_dir: str):
        self.path = os.path.join(model_dir, STATE_FILE)
        self.data: dict[str, Any] = {"blocks_done": [], "block_losses": {}, "wall_time_s": {}}
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as handle:
                self.data = json.load(handle)

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


class _CoderGroup:
    """The gates of every task and block as one checkpoint group.

    ``weights`` is read at save/restore time: the gates are built lazily, block by block.
    """

    def __init__(self, coders):
        self.coders = coders

    @property
    def weights(self) -> list:
        return [w for task_coders in self.coders.values() for c in task_coders for w in c.weights]


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
    init_from: str = SEMSEG,
    student_width_multiplier: float | None = None,
    branch_points: Mapping[str, int] | None = None,
    feature_weight: float = 0.0,
    flip_average_targets: bool = True,
    gate_scale: float = 2.0,
    synchronized_bn: bool = False,
    eval_max_batches: int | None = None,
    eval_split: str = "test",
    num_panels: int = 4,
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
        init_from: ``scratch`` or the task whose teacher initialises the student.
        student_width_multiplier: The student's own width (None: the teachers'). A
            narrower student projects into the teachers' decoders through 1×1
            adaptors and is channel-sliced from them; see
            :func:`~ka_tf.amalgamation.student_builder.build_blockwise_student`.
        branch_points: Fixed task → candidate; skips the choice (and needs no
            block-wise phase when ``blockwise_steps`` is 0).
        feature_weight: Weight of the feature-level term in the block-wise phase.
        flip_average_targets: Teacher targets averaged over image and mirror.
        gate_scale: Channel-coding gate scale (2: identity at init; 1: plain sigmoid).
        synchronized_bn: Synchronise the student's BatchNorm across replicas.
        eval_max_batches: Cap on test batches (None: the whole split).
        eval_split: The name ``test_data``'s metrics are filed under in the report
            (bind ``'val'`` with a val ``test_data`` to compare settings without
            touching the test split).
        num_panels: Test images drawn as PNG panels.

    Returns:
        The report dict (also written as ``amalgamation_report.json``/``.md``).
    """
    if blockwise_steps < 0 or finetune_steps < 0:
        raise ConfigError(
            f"amalgamate.blockwise_steps and finetune_steps must be >= 0. Received: "
            f"blockwise_steps={blockwise_steps}, finetune_steps={finetune_steps}."
        )
    state = _State(model_dir)
    log_dir = os.path.join(model_dir, "logs")
    with strategy.scope():
        teacher_models, teacher_paths = load_teachers(teachers)
    tasks = tuple(teacher_models)
    train_ds = train_data()
    sample = next(iter(train_ds.take(1)))[IMAGE][:2]

    def compiled(amalgamator: Amalgamator, steps: int, scope: str) -> Amalgamator:
        with gin.config_scope(scope):
            optimizer = build_optimizer(total_steps=steps)
        amalgamator.compile(
            optimizer=optimizer,
            steps_per_execution=execution_steps(
                steps_per_execution, min(steps_per_epoch, max(steps, 1))
            ),
        )
        amalgamator.prepare(sample)
        return amalgamator

    with strategy.scope():
        with gin.config_scope("blockwise"):
            blockwise_losses = distillation_losses(tasks)
        with gin.config_scope("finetune"):
            finetune_losses = distillation_losses(tasks)
        blockwise = build_blockwise_student(
            teacher_models, init_from, gate_scale, synchronized_bn, student_width_multiplier
        )
        coders = build_coders(
            blockwise.candidate_channels(),
            tasks,
            gate_scale,
            teacher_channels={t: teacher_models[t].candidate_channels(t) for t in tasks},
        )
    groups = {"student": blockwise, "coders": _CoderGroup(coders)}
    # The teachers, the data and the losses are loaded and valid: only now may this run
    # replace a previous run's config.gin.
    config.write_config(model_dir)
    blocks = range(len(BRANCH_CANDIDATES)) if blockwise_steps > 0 else []
    previous_checkpoint = None

    def blockwise_stage(block: int, steps: int) -> Amalgamator:
        """The compiled block-wise amalgamator projecting at candidate ``block``."""
        with strategy.scope():
            return compiled(
                Amalgamator(
                    blockwise,
                    teacher_models,
                    blockwise_losses,
                    mode="blockwise",
                    block=block,
                    coders=coders,
                    feature_weight=feature_weight,
                    flip_average_targets=flip_average_targets,
                ),
                steps,
                "blockwise",
            )

    def projection_losses(amalgamator: Amalgamator) -> dict[str, float]:
        """Task → validation projection loss of ``amalgamator`` over ``val_batches``."""
        scores = amalgamator.evaluate(
            evaluation_input(amalgamator, val_data, val_batches), return_dict=True, verbose=0
        )
        return {task: float(scores[f"{task}_projection"]) for task in tasks}

    for block in blocks:
        directory = os.path.join(model_dir, "checkpoints", f"blockwise_b{block}")
        amalgamator = blockwise_stage(block, blockwise_steps)
        checkpoint = TrainingCheckpoint(directory, groups, amalgamator.optimizer)
        if checkpoint.latest() is None and previous_checkpoint is not None:
            TrainingCheckpoint(directory, groups).restore(previous_checkpoint)
        if block not in state.data["blocks_done"]:
            print(
                f"\n== Block-wise training at block {block} ({BRANCH_CANDIDATES[block]}) ==",
                flush=True,
            )
            started = time.time()
            run_phase(
                amalgamator,
                train_data,  # a fresh pipeline per phase: same data when resumed
                name=f"blockwise_b{block}",
                total_steps=blockwise_steps,
                steps_per_epoch=min(steps_per_epoch, blockwise_steps),
                checkpoint=checkpoint,
                log_dir=log_dir,
            )
            if val_data is not None:
                with distribute.running(f"blockwise_b{block} validation"):
                    losses = projection_losses(amalgamator)
                for task in tasks:
                    state.data["block_losses"].setdefault(task, [None] * len(BRANCH_CANDIDATES))
                    state.data["block_losses"][task][block] = losses[task]
                summaries.write_scalars(
                    log_dir,
                    "validation",
                    {f"blockwise_at_stage_end/{task}_projection": v for task, v in losses.items()},
                    step=block,
                )
            state.data["blocks_done"].append(block)
            state.data["wall_time_s"][f"blockwise_b{block}"] = time.time() - started
            state.save()
        else:
            checkpoint.restore_latest()
        previous_checkpoint = checkpoint.latest()

    # Like for like: stage b's loss above was measured after b + 1 stages of encoder
    # training, and later stages move the trunk under gate b. So every block is measured
    # again here, all with the final encoder and trunk and each block's own gate: the
    # exact start of the student that branching there assembles. The choice uses this
    # table; the stage-end one stays in the report.
    if blocks and val_data is not None and "block_losses_final" not in state.data:
        with distribute.running("block-loss table"):
            rows = [projection_losses(blockwise_stage(block, 1)) for block in blocks]
        state.data["block_losses_final"] = {task: [row[task] for row in rows] for task in tasks}
        state.save()
        for block, row in zip(blocks, rows, strict=True):
            summaries.write_scalars(
                log_dir,
                "validation",
                {f"block_loss_table/{task}_projection": v for task, v in row.items()},
                step=block,
            )
    block_losses = state.data.get("block_losses_final") or state.data["block_losses"]

    if branch_points is None:
        if not block_losses:
            raise ConfigError(
                "no branch points: bind amalgamate.branch_points, or run the block-wise phase "
                "(blockwise_steps > 0) with val_data to measure where to branch."
            )
        count = student_param_counter(blockwise)
        teachers_total = sum(teacher_models[task].count_params() for task in dict.fromkeys(tasks))
        branch_points = choose_branch_points(
            block_losses, params_ratio=lambda points: count(points) / teachers_total
        )
    branch_points = {task: int(branch_points[task]) for task in tasks}
    state.data["branch_points"] = branch_points
    state.save()
    if block_losses:
        summaries.write_images(
            log_dir,
            "evaluation",
            "block_losses",
            [block_loss_figure(block_losses, branch_points)],
            step=0,
        )
    logging.info("Branch points: %s", branch_points)

    with strategy.scope():
        student = assemble_student(blockwise, coders, teacher_models, branch_points)
        finetuner = compiled(
            Amalgamator(
                student,
                teacher_models,
                finetune_losses,
                flip_average_targets=flip_average_targets,
            ),
            finetune_steps,
            "finetune",
        )
    if finetune_steps > 0:
        print(f"\n== Fine-tuning the student (branch points {branch_points}) ==", flush=True)
        started = time.time()
        checkpoint = TrainingCheckpoint(
            os.path.join(model_dir, "checkpoints", "finetune"),
            {"student": student},
            finetuner.optimizer,
        )
        run_phase(
            finetuner,
            train_data,
            name="finetune",
            total_steps=finetune_steps,
            steps_per_epoch=min(steps_per_epoch, finetune_steps),
            checkpoint=checkpoint,
            log_dir=log_dir,
        )
        state.data["wall_time_s"].setdefault("finetune", time.time() - started)
        state.save()
    atomic_save_keras(student, os.path.join(model_dir, STUDENT_FILE))

    report: dict[str, Any] = {
        "tasks": list(tasks),
        "teachers": teacher_paths,
        "branch_points": branch_points,
        # The table the branch choice read (every block with the final trunk), and each
        # stage's loss at the end of its own stage.
        "block_losses": block_losses,
        "block_losses_at_stage_end": state.data["block_losses"],
        # Optimizer steps per phase (block-wise: at each candidate block), so a control
        # run can be given the same number of steps.
        "steps": {
            "blockwise": int(blockwise_steps) * len(blocks),
            "finetune": int(finetune_steps),
        },
        "student": {
            "width_multiplier": float(student.width_multiplier),
            "teachers_width_multiplier": {
                task: float(teacher_models[task].width_multiplier) for task in tasks
            },
            # Branches copied whole from the teachers, or channel-sliced (a student of
            # its own width; its block-wise gates reached the teachers through adaptors).
            "branches": "copied"
            if all(
                student.candidate_channels() == teacher_models[t].candidate_channels(t)
                for t in tasks
            )
            else "channel-sliced",
        },
        "params": {
            "student": int(student.count_params()),
            "teachers": {task: int(teacher_models[task].count_params()) for task in tasks},
        },
        "wall_time_s": state.data["wall_time_s"],
        "distribution": distribution_record(strategy, train_ds),
        "metrics": {},
    }
    if test_data is not None:
        with distribute.running(f"{eval_split} evaluation"):
            report.update(
                _evaluate(
                    student,
                    teacher_models,
                    test_data,
                    eval_max_batches,
                    model_dir,
                    num_panels,
                    eval_split,
                    step=int(blockwise_steps) * len(blocks) + int(finetune_steps),
                )
            )
    write_report(model_dir, report)
    print("\n" + console_summary(report), flush=True)
    return report


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
    student, teachers, test_data, max_batches, model_dir, num_panels, split, step=0
) -> dict[str, Any]:
    """Metrics of the student and each teacher on ``split``, Δm, and PNG panels.

    The same go to TensorBoard (``logs/evaluation``, at ``step``): a scalar per source
    and metric (``<split>/<source>/<metric>``), Δm, and the panels as images.
    """
    from ka_tf.evaluation import evaluate_model, predict_dense
    from ka_tf.metrics import relative_change

    dataset = test_data()
    element = dataset.element_spec
    labelled = [task for task in student.tasks if task in element]
    if not labelled:
        logging.info("Test split has no labels for %s: metrics skipped.", student.tasks)
        return {}
    rows = {"student": evaluate_model(student, dataset, tasks=labelled, max_batches=max_batches)}
    teacher_scores = {}
    for task in labelled:
        scores = evaluate_model(teachers[task], dataset, tasks=[task], max_batches=max_batches)
        rows[f"teacher/{task}"] = scores
        teacher_scores.update(scores)
    result: dict[str, Any] = {"metrics": {split: rows}}
    # A relative change is undefined where the teacher scores exactly 0 (e.g. δ1 of an
    # untrained teacher): such metrics are listed, not silently dropped.
    comparable = {k: v for k, v in teacher_scores.items() if v != 0 and np.isfinite(v)}
    result["relative_change"] = relative_change(rows["student"], comparable)
    result["relative_change_excluded"] = sorted(set(teacher_scores) - set(comparable))
    log_dir = os.path.join(model_dir, "logs")
    scalars = {
        f"{split}/{source}/{metric}": value
        for source, scores in rows.items()
        for metric, value in scores.items()
    }
    scalars[f"{split}/delta_m"] = result["relative_change"].get("delta_m")
    summaries.write_scalars(log_dir, "evaluation", scalars, step)
    batch = next(iter(dataset.take(1)))
    images = batch[IMAGE][:num_panels]
    student_out = predict_dense(student, images)
    teacher_out = {task: predict_dense(teachers[task], images)[task] for task in labelled}
    palette, names = _palette_for(student)
    os.makedirs(os.path.join(model_dir, "panels"), exist_ok=True)
    panels = []
    for i in range(int(images.shape[0])):
        panel = prediction_panel(
            np.asarray(images[i]),
            {
                "teacher": {task: teacher_out[task][i] for task in labelled},
                "student": {task: student_out[task][i] for task in labelled},
                "truth": {task: np.asarray(batch[task][i]) for task in labelled},
            },
            palette,
            names,
        )
        from ka_tf.visualize import save_png

        save_png(os.path.join(model_dir, "panels", f"{split}_{i:02d}.png"), panel)
        panels.append(panel)
    summaries.write_images(log_dir, "evaluation", f"{split}/panels", panels, step)
    return result


def _palette_for(model) -> tuple[Any, Any]:
    from ka_tf import constants, visualize

    classes = getattr(model, "num_classes", None) or 0
    if classes == len(constants.CITYSCAPES_CLASSES):
        return constants.CITYSCAPES_PALETTE, constants.CITYSCAPES_CLASSES
    if classes == len(constants.NYU13_CLASSES):
        return constants.NYU13_PALETTE, constants.NYU13_CLASSES
    return visualize.default_palette(max(classes, 1)), None
