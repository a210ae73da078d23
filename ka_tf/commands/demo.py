"""The ka_tf demo, end to end on the embedded synthetic benchmark (`make demo`).

Stages, each a real run of a ka_tf tool (nothing is simulated):
  1. environment check (tools/env_info.py);
  2. the teachers: the street recipe takes the zoo's (zoo/street_semseg,
     zoo/street_depth, checked against their cards; `python tools/zoo.py`); with
     --train_teachers, and for the indoor recipes, one teacher per task is trained
     on the labelled `teacher` split (tools/train_teacher.py; the synthetic data is
     rendered on first use and cached; a teacher already trained in --run_dir is
     reused);
  3. amalgamation of the teachers into one student on unlabelled images
     (tools/train.py), then evaluation of teachers and student on the `test`
     split, the report table and PNG panels.

Recipes (--recipe):
  street        scene parsing + depth on synthetic street scenes: the zoo's
                teachers at 128x256 (gin/street_zoo.gin; `make demo`), or with
                --train_teachers two CPU-minute teachers at 64x128 (gin/demo.gin).
  indoor_3task  scene parsing + depth + surface normals on synthetic indoor scenes,
                one student amalgamated from the three teachers at once (online;
                gin/synth_indoor_3task.gin); `make demo-3task`.
  indoor_offline  the same three teachers, amalgamated incrementally (offline): a
                two-task student (gin/synth_indoor.gin), then that student as the
                joint teacher of its tasks plus the normals teacher
                (gin/synth_indoor_offline.gin). Shares teachers with indoor_3task
                when given the same --run_dir.

Outputs: <run_dir>/teachers/<task>/ and <run_dir>/<student>/ with
amalgamation_report.md, student.keras and panels/*.png. Rerunning resumes or
reuses what is finished.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

from absl import flags

from ka_tf import cli, path_flags

flags.DEFINE_enum(
    "recipe",
    "street",
    ["street", "indoor_3task", "indoor_offline"],
    "Which demo to run (see --help's module text): street (2 tasks, `make demo`), "
    "indoor_3task (3 tasks online, `make demo-3task`) or indoor_offline (3 tasks, "
    "incrementally).",
)
path_flags.define_path(
    "run_dir",
    None,
    "Where the teachers and the students are written (default: runs/demo for street, "
    "runs/demo_indoor for the indoor recipes).",
)
flags.DEFINE_multi_string(
    "gin_bindings",
    [],
    "Extra gin bindings passed to every stage (e.g. to shorten it: "
    "--gin_bindings='TRAIN_STEPS = 100').",
)
flags.DEFINE_boolean(
    "train_teachers",
    False,
    "Train the street teachers from nothing (gin/demo.gin's CPU-minute teachers) instead "
    "of taking the zoo's. The indoor demo recipes always train CPU-minute teachers of "
    "their own (the zoo's indoor teachers serve tools/study.py --recipe=indoor_3task).",
)
FLAGS = flags.FLAGS
STREET_TEACHERS = {
    "semseg": "gin/teachers/synth_street_semseg.gin",
    "depth": "gin/teachers/synth_street_depth.gin",
}
INDOOR_TEACHERS = {
    "semseg": "gin/teachers/synth_indoor_semseg.gin",
    "depth": "gin/teachers/synth_indoor_depth.gin",
    "normals": "gin/teachers/synth_indoor_normals.gin",
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A demo: the teachers to train, then the amalgamation stages in order.

    Each stage is ``(student directory name, gin file, sources, as_list)``: sources
    are task names (their teachers) or names of earlier stages (their students). With
    ``as_list`` False the stage gets ``TEACHERS = {task: path}``; with True, a list of
    paths (an earlier student is then a joint teacher for all its tasks).
    """

    default_run_dir: str
    teacher_gin: dict[str, str]
    stages: tuple[tuple[str, str, tuple[str, ...], bool], ...]
    # Without --train_teachers: task → zoo entry, and the gin file that amalgamates them.
    zoo_teachers: dict[str, str] | None = None
    zoo_gin: str | None = None


RECIPES = {
    "street": Recipe(
        "runs/demo",
        STREET_TEACHERS,
        (("student", "gin/demo.gin", ("semseg", "depth"), False),),
        zoo_teachers={"semseg": "street_semseg", "depth": "street_depth"},
        zoo_gin="gin/street_zoo.gin",
    ),
    "indoor_3task": Recipe(
        "runs/demo_indoor",
        INDOOR_TEACHERS,
        (("student3", "gin/synth_indoor_3task.gin", ("semseg", "depth", "normals"), False),),
    ),
    "indoor_offline": Recipe(
        "runs/demo_indoor",
        INDOOR_TEACHERS,
        (
            ("student2", "gin/synth_indoor.gin", ("semseg", "depth"), False),
            ("student3_offline", "gin/synth_indoor_offline.gin", ("student2", "normals"), True),
        ),
    ),
}


def _run_stage(title: str, *args: str) -> None:
    print(f"\n=== {title} ===", flush=True)
    started = time.time()
    bindings = [f"--gin_bindings={b}" for b in FLAGS.gin_bindings]
    result = subprocess.run([sys.executable, "-m", *args, *bindings], check=False)
    if result.returncode != 0:
        cli.fail(f"demo stage '{title}' failed (exit {result.returncode}); see the output above.")
    print(f"=== {title}: {time.time() - started:.0f} s ===", flush=True)


def _teachers_binding(teachers: dict[str, str], students: dict[str, str], stage) -> str:
    """The TEACHERS binding of one amalgamation stage."""
    _, _, sources, as_list = stage
    if as_list:
        paths = [students[name] if name in students else teachers[name] for name in sources]
        return "TEACHERS = [" + ", ".join(f"'{path}'" for path in paths) + "]"
    return "TEACHERS = {" + ", ".join(f"'{task}': '{teachers[task]}'" for task in sources) + "}"


def _zoo_teachers(entries: dict[str, str]) -> dict[str, str]:
    """Task → zoo teacher path, each checked against its card (one-line error if not)."""
    from ka_tf import zoo

    teachers = {}
    for task, name in entries.items():
        teachers[task] = zoo.verify_entry(zoo.load_entry(name))
        print(f"\n=== {task} teacher: zoo/{name} ({teachers[task]}) ===", flush=True)
    return teachers


def _train_teachers(recipe: Recipe, run_dir: str) -> dict[str, str]:
    """Task → teacher path, training each teacher not yet trained in ``run_dir``."""
    teachers = {}
    for task, gin_file in recipe.teacher_gin.items():
        model_dir = os.path.join(run_dir, "teachers", task)
        teachers[task] = os.path.join(model_dir, "teacher.keras")
        if os.path.exists(teachers[task]):
            print(f"\n=== {task} teacher: reusing {teachers[task]} ===", flush=True)
            continue
        _run_stage(
            f"{task} teacher",
            "ka_tf.commands.train_teacher",
            f"--gin_file={gin_file}",
            f"--model_dir={model_dir}",
        )
    return teachers


def main(argv: list[str]) -> int:
    del argv
    started = time.time()
    recipe = RECIPES[FLAGS.recipe]
    run_dir = os.path.abspath(FLAGS.run_dir or recipe.default_run_dir)
    subprocess.run([sys.executable, "-m", "ka_tf.commands.env_info"], check=True)
    if recipe.zoo_teachers and not FLAGS.train_teachers:
        teachers = _zoo_teachers(recipe.zoo_teachers)
        recipe = dataclasses.replace(
            recipe, stages=tuple((s[0], recipe.zoo_gin, *s[2:]) for s in recipe.stages)
        )
    else:
        teachers = _train_teachers(recipe, run_dir)
    students: dict[str, str] = {}
    for stage in recipe.stages:
        name, gin_file = stage[0], stage[1]
        student_dir = os.path.join(run_dir, name)
        _run_stage(
            f"amalgamation ({name})",
            "ka_tf.commands.train",
            f"--gin_file={gin_file}",
            f"--model_dir={student_dir}",
            f"--gin_bindings={_teachers_binding(teachers, students, stage)}",
        )
        students[name] = os.path.join(student_dir, "student.keras")
    last = os.path.join(run_dir, recipe.stages[-1][0])
    print(
        f"\nDemo ({FLAGS.recipe}) finished in {time.time() - started:.0f} s.\n"
        f"  report: {os.path.join(last, 'amalgamation_report.md')}\n"
        f"  student: {os.path.join(last, 'student.keras')}\n"
        f"  panels: {os.path.join(last, 'panels')}/",
        flush=True,
    )
    return 0


def run() -> None:
    """The `ka-demo` console script and `python tools/demo.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
