"""The ka_tf demo, end to end on the embedded synthetic street benchmark (`make demo`).

Stages, each a real run of a ka_tf tool (nothing is simulated):
  1. environment check (tools/env_info.py);
  2. the scene-parsing and the depth teacher, trained on the labelled `teacher`
     split (tools/train_teacher.py; the synthetic data is rendered on first use and
     cached; a teacher already trained in --run_dir is reused);
  3. amalgamation of both into one student on the unlabelled `transfer` split
     (tools/train.py --gin_file=gin/demo.gin), then evaluation of teachers and
     student on the `test` split, the report table and PNG panels.

Outputs: <run_dir>/teachers/{semseg,depth}/ and <run_dir>/student/ with
amalgamation_report.md, student.keras and panels/*.png. Rerunning resumes or
reuses what is finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from absl import flags

from ka_tf import cli

flags.DEFINE_string("run_dir", "runs/demo", "Where the teachers and the student are written.")
flags.DEFINE_multi_string(
    "gin_bindings",
    [],
    "Extra gin bindings passed to every stage (e.g. to shorten it: "
    "--gin_bindings='TRAIN_STEPS = 100').",
)
FLAGS = flags.FLAGS
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEACHER_GIN = {
    "semseg": "gin/teachers/synth_street_semseg.gin",
    "depth": "gin/teachers/synth_street_depth.gin",
}


def _run_stage(title: str, *args: str) -> None:
    print(f"\n=== {title} ===", flush=True)
    started = time.time()
    bindings = [f"--gin_bindings={b}" for b in FLAGS.gin_bindings]
    result = subprocess.run([sys.executable, *args, *bindings], cwd=REPO_ROOT, check=False)
    if result.returncode != 0:
        cli.fail(f"demo stage '{title}' failed (exit {result.returncode}); see the output above.")
    print(f"=== {title}: {time.time() - started:.0f} s ===", flush=True)


def main(argv: list[str]) -> int:
    del argv
    started = time.time()
    run_dir = os.path.abspath(FLAGS.run_dir)
    subprocess.run([sys.executable, "tools/env_info.py"], cwd=REPO_ROOT, check=True)
    teachers = {}
    for task, gin_file in TEACHER_GIN.items():
        model_dir = os.path.join(run_dir, "teachers", task)
        teachers[task] = os.path.join(model_dir, "teacher.keras")
        if os.path.exists(teachers[task]):
            print(f"\n=== {task} teacher: reusing {teachers[task]} ===", flush=True)
            continue
        _run_stage(
            f"{task} teacher",
            "tools/train_teacher.py",
            f"--gin_file={gin_file}",
            f"--model_dir={model_dir}",
        )
    teacher_map = ", ".join(f"'{task}': '{path}'" for task, path in teachers.items())
    student_dir = os.path.join(run_dir, "student")
    _run_stage(
        "amalgamation",
        "tools/train.py",
        "--gin_file=gin/demo.gin",
        f"--model_dir={student_dir}",
        f"--gin_bindings=TEACHERS = {{{teacher_map}}}",
    )
    print(
        f"\nDemo finished in {time.time() - started:.0f} s.\n"
        f"  report: {os.path.join(student_dir, 'amalgamation_report.md')}\n"
        f"  student: {os.path.join(student_dir, 'student.keras')}\n"
        f"  panels: {os.path.join(student_dir, 'panels')}/",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    cli.run(main)
