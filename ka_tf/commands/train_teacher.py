r"""Trains a single-task SegNet teacher on labelled data.

Usage:
    python tools/train_teacher.py --gin_file=gin/teachers/synth_street_semseg.gin \
        --model_dir=runs/teacher_semseg

Writes to --model_dir: checkpoints/ (resumable), logs/ (TensorBoard), config.gin,
best.weights.h5 (lowest validation loss), teacher.keras (the best teacher) and
teacher_report.json (test metrics). Everything else is bound in the gin file:
`train_teacher.task`, `.loss`, `.steps`, the datasets and `build_teacher.*`.
--deterministic (with --seed) makes runs bit-reproducible; with
--strategy=multi_worker only the chief writes --model_dir.
"""

from __future__ import annotations

import json
import os

from absl import flags

from ka_tf import cli, config
from ka_tf.training.launch import (
    define_training_flags,
    print_replica_digest,
    run_directory,
    set_up_run,
)

define_training_flags()
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    del argv
    strategy = set_up_run(FLAGS)
    from ka_tf.training.teacher import TEACHER_FILE, train_teacher

    with run_directory(FLAGS.model_dir, strategy) as write_dir:
        report = train_teacher(write_dir, strategy)
        config.write_config(write_dir, operative=True)
        print_replica_digest(os.path.join(write_dir, TEACHER_FILE), strategy, "teacher")
    print(json.dumps(report, indent=2))
    return 0


def run() -> None:
    """The `ka-train-teacher` console script and `python tools/train_teacher.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
