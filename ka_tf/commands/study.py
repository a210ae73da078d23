r"""The study over seeds: one recipe's amalgamation K times, a control, Δm with its CI.

Usage:
    python tools/study.py --recipe=street_full --seeds=3 --out_dir=runs/study_street_full
    python tools/study.py --recipe=street --seeds=5 --out_dir=runs/study_street
    python tools/study.py --recipe=indoor_3task --seeds=5 --out_dir=runs/study_indoor

For seed s in 1..K: `tools/train.py --gin_file=<recipe> --deterministic --seed=s`
(the transfer pipeline's shuffling and windows seeded by s too) into
DIR/student_s<s>/. The control, per task and seed: the task's teacher alone,
initialised as the student's branch of that task would be (the teacher itself) and
trained as many steps as the student (block-wise + fine-tuning) on its own
outputs averaged over the same views as the student's targets (mirror, and
amalgamate.target_scales) (DIR/control_<task>_s<s>/): self-distillation at equal
compute and with equal targets. Then every teacher and student is scored per image
on the test split, and DIR/study.json + DIR/study.md are written:

    {"recipe", "command", "seeds", "params_ratio",
     "teachers": {task: {metric: v}}, "targets": {task: {metric: v}},
     "students": [{metric: v}, ...],
     "control": {task: [{metric: v}, ...]},
     "delta_m": {"mean", "ci95": [lo, hi]}, "delta_m_per_task": {task: {"mean", "ci95"}},
     "control_delta_m_per_task": {task: {"mean", "ci95"}},
     "per_metric": {metric: {"teacher", "student_mean", "student_std",
                             "student_median", "student_range": [min, max], "wins",
                             "control_mean"}},
     "verdict": {task: {"student_at_or_above_teacher", "student_above_control"}}}

"targets" (with "targets" in per_metric): each teacher scored on the views its
fine-tuning targets average over (mirror, amalgamate.target_scales) — what the
student learns from; wins and the verdict compare with the teacher's single pass.
"control_delta_m_per_task" (with controls): each control's Δm against its teacher,
bootstrapped in the same way; beside the student's, it shows how much of the
student's gain more training of the teacher alone also gets.
The 95% CI is a bootstrap over test images and seeds (--bootstrap_samples). A run
already finished in DIR (its amalgamation_report.json exists) is reused, so an
interrupted study resumes.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time

from absl import flags

from ka_tf import cli, path_flags

RECIPES = {
    "street": "gin/street_zoo.gin",
    "street_full": "gin/street_zoo_full.gin",
    "street_lite": "gin/street_zoo_lite.gin",
    "indoor_3task": "gin/indoor_zoo_3task.gin",
    "indoor_full": "gin/indoor_zoo_full.gin",
}

flags.DEFINE_enum(
    "recipe",
    "street",
    sorted(RECIPES),
    "street: the zoo's street teachers → one student (gin/street_zoo.gin, make demo's "
    "recipe, class-balanced scene-parsing targets); street_full: the same with "
    "multi-view targets and 4,000 fine-tuning steps (gin/street_zoo_full.gin); "
    "street_lite: the same teachers → the EfficientNet-Lite0 student "
    "(gin/street_zoo_lite.gin); indoor_3task: the zoo's indoor scene-parsing, depth and "
    "normals teachers → one student (gin/indoor_zoo_3task.gin); indoor_full: the same "
    "with street_full's cached multi-view, class-balanced targets and 4,000 steps, "
    "normals given a decoder of its own within the size budget and fine-tuned on the "
    "mean angle (gin/indoor_zoo_full.gin).",
)
flags.DEFINE_integer("seeds", 5, "Amalgamation runs (seeds first_seed…first_seed+K-1).")
flags.DEFINE_integer("first_seed", 1, "The first seed.")
flags.DEFINE_integer(
    "control_seeds", None, "Control runs per task (default: --seeds; 0 skips the control)."
)
path_flags.define_path("out_dir", None, "The study directory (required).")
flags.DEFINE_integer("bootstrap_samples", 1000, "Bootstrap samples for the 95% CIs.")
flags.DEFINE_multi_string(
    "gin_bindings",
    [],
    "Gin bindings passed to every run and to the test-split pipeline (e.g. "
    "--gin_bindings='TRAIN_STEPS = 100').",
)
FLAGS = flags.FLAGS
REPORT = "amalgamation_report.json"


def _validate() -> None:
    from ka_tf.errors import ConfigError

    cli.require_flag("out_dir")
    if FLAGS.seeds < 1:
        raise ConfigError(
            f"--seeds must be >= 1 (a study needs at least one amalgamation run). "
            f"Received: --seeds={FLAGS.seeds}. Pass e.g. --seeds=5."
        )
    if FLAGS.control_seeds is not None and FLAGS.control_seeds < 0:
        raise ConfigError(
            f"--control_seeds must be >= 0. Received: --control_seeds={FLAGS.control_seeds}."
        )
    if FLAGS.bootstrap_samples < 1:
        raise ConfigError(f"--bootstrap_samples must be >= 1. Received: {FLAGS.bootstrap_samples}.")


def _train(model_dir: str, seed: int, bindings: list[str]) -> dict:
    """Runs (or reuses) one amalgamation; returns its report."""
    report_path = os.path.join(model_dir, REPORT)
    if os.path.exists(report_path):
        print(f"=== reusing {model_dir} ===", flush=True)
    else:
        print(f"\n=== {os.path.basename(model_dir)} (seed {seed}) ===", flush=True)
        started = time.time()
        command = [
            sys.executable,
            "-m",
            "ka_tf.commands.train",
            f"--gin_file={RECIPES[FLAGS.recipe]}",
            f"--model_dir={model_dir}",
            "--deterministic",
            f"--seed={seed}",
            f"--gin_bindings=transfer/make_dataset.seed = {seed}",
            *[f"--gin_bindings={b}" for b in [*FLAGS.gin_bindings, *bindings]],
        ]
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            cli.fail(
                f"study run {model_dir} failed (exit {result.returncode}); see the output "
                f"above. Finished runs are kept: rerun the same command to resume."
            )
        print(f"=== {os.path.basename(model_dir)}: {time.time() - started:.0f} s ===", flush=True)
    with open(report_path) as handle:
        return json.load(handle)


def _test_split():
    """The recipe's labelled test pipeline, depth clamp and teacher-target views
    (``amalgamate``'s ``target_scales`` and ``flip_average_targets``), from its gin file."""
    import gin

    from ka_tf import config
    from ka_tf.data.pipeline import make_dataset

    config.parse_gin_config([RECIPES[FLAGS.recipe]], FLAGS.gin_bindings)
    with gin.config_scope("test"):
        dataset = make_dataset()
    max_depth = gin.get_bindings("evaluate_model").get("max_depth")
    from ka_tf.amalgamation.run import amalgamate

    # What amalgamate will use: the recipe's binding, else the function's own default.
    defaults = inspect.signature(inspect.unwrap(amalgamate)).parameters
    bound = gin.get_bindings("amalgamate")

    def setting(name):
        return bound.get(name, defaults[name].default)

    views = (tuple(setting("target_scales")), bool(setting("flip_average_targets")))
    return dataset, max_depth, views


def main(argv: list[str]) -> int:
    del argv
    _validate()
    from ka_tf import study
    from ka_tf.amalgamation.target_views import MultiViewModel
    from ka_tf.evaluation import load_model_file
    from ka_tf.io_utils import atomic_write_json, atomic_write_text

    out_dir = os.path.abspath(FLAGS.out_dir)
    seeds = list(range(FLAGS.first_seed, FLAGS.first_seed + FLAGS.seeds))
    control_count = FLAGS.seeds if FLAGS.control_seeds is None else FLAGS.control_seeds
    reports = [_train(os.path.join(out_dir, f"student_s{s}"), s, []) for s in seeds]
    first = reports[0]
    tasks, teacher_paths = first["tasks"], first["teachers"]
    steps = first["steps"]["blockwise"] + first["steps"]["finetune"]
    control_dirs: dict[str, list[str]] = {}
    for task in tasks:
        for seed in seeds[:control_count]:
            control_dirs.setdefault(task, []).append(
                os.path.join(out_dir, f"control_{task}_s{seed}")
            )
            _train(
                control_dirs[task][-1],
                seed,
                [
                    f"TEACHERS = {{'{task}': '{teacher_paths[task]}'}}",
                    f"amalgamate.init_from = '{task}'",
                    # The teacher itself, at its own width, whatever the student's.
                    "amalgamate.student_width_multiplier = None",
                    "BLOCKWISE_STEPS = 0",
                    f"TRAIN_STEPS = {steps}",
                    f"amalgamate.branch_points = {{'{task}': {first['branch_points'][task]}}}",
                ],
            )

    dataset, max_depth, (scales, mirror) = _test_split()
    teacher_stats: dict = {}
    target_scores: dict = {}  # what the multi-view targets the student learns from score
    for task in tasks:
        teacher = load_model_file(teacher_paths[task])
        teacher_stats.update(study.collect_statistics(teacher, dataset, [task], max_depth))
        if len(scales) > 1 or mirror:
            views = MultiViewModel(teacher, scales, mirror)
            target_scores[task] = study.metrics_of(
                study.collect_statistics(views, dataset, [task], max_depth)
            )
    student_stats = [
        study.collect_statistics(
            load_model_file(os.path.join(out_dir, f"student_s{s}", "student.keras")),
            dataset,
            tasks,
            max_depth,
        )
        for s in seeds
    ]
    # The controls are scored here too, like everything else in the table (in float32;
    # a run's own report scored them under its precision policy).
    control_stats = {
        task: [
            study.collect_statistics(
                load_model_file(os.path.join(directory, "student.keras")),
                dataset,
                [task],
                max_depth,
            )
            for directory in directories
        ]
        for task, directories in control_dirs.items()
    }
    control = {task: [study.metrics_of(s) for s in runs] for task, runs in control_stats.items()}
    # Each control's own Δm against its teacher, bootstrapped like the student's: the
    # part of a student's gain that more training of the teacher alone also gets.
    control_delta = {
        task: study.bootstrap_delta_m({task: teacher_stats[task]}, runs, FLAGS.bootstrap_samples)[
            "delta_m_per_task"
        ][task]
        for task, runs in control_stats.items()
    }
    delta = study.bootstrap_delta_m(teacher_stats, student_stats, FLAGS.bootstrap_samples)
    params = first["params"]
    teachers_total = sum(params["teachers"][task] for task in tasks)
    command = "python tools/study.py " + " ".join(
        f"--{name}={FLAGS[name].value}"
        for name in ("recipe", "seeds", "first_seed", "control_seeds", "out_dir")
        if FLAGS[name].present
    )
    command += "".join(f" --gin_bindings='{b}'" for b in FLAGS.gin_bindings)
    summary = study.summarize(
        FLAGS.recipe,
        seeds,
        params["student"] / teachers_total,
        {task: study.metrics_of({task: teacher_stats[task]}) for task in tasks},
        [study.metrics_of(stats) for stats in student_stats],
        control,
        delta,
        command,
        targets=target_scores or None,
        control_delta_m=control_delta or None,
    )
    atomic_write_json(os.path.join(out_dir, "study.json"), summary)
    text = study.markdown(summary)
    atomic_write_text(os.path.join(out_dir, "study.md"), text)
    print("\n" + text, flush=True)
    return 0


def run() -> None:
    """The `ka-study` console script and `python tools/study.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
