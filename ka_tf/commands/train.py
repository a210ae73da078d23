r"""Amalgamates frozen teachers into one multi-task student — the main ka_tf job.

Usage:
    python tools/train.py --gin_file=gin/demo.gin --model_dir=runs/demo
    python tools/train.py --gin_file=gin/cityscapes.gin --model_dir=runs/cs \
        --gin_bindings="DATA_DIR = '/data/cityscapes'" --strategy=mirrored

Phases (each resumable from checkpoints in --model_dir): block-wise training with
the student's features projected through every splittable teacher's decoder (or
matched to a tap-only teacher's taps), branch-out at the chosen blocks, end-to-end
fine-tuning. Teachers: ka_tf .keras paths, or any model declared with teacher_spec
(docs/teachers.md). Writes checkpoints/, logs/
(TensorBoard), config.gin, operative_config.gin, student.keras,
amalgamation_report.json and .md, and panels/*.png (test predictions).
Common gin macros: TRAIN_STEPS, BATCH_SIZE, IMAGE_SIZE, DATA_DIR, TEACHERS.
--images=DIR amalgamates on a folder of your own unlabelled photos instead of the
recipe's dataset: 10% of them (by a hash of each relative path) are held out for the
block-wise validation losses, the rest are the transfer set, all resized and cropped
to IMAGE_SIZE; with no labels there are no test metrics.
--deterministic (with --seed) makes runs, and resumed runs, bit-reproducible.
With --strategy=multi_worker every worker runs this command with its own TF_CONFIG;
only the chief writes --model_dir, and every worker logs a digest of its final
student's weights ("student weights sha256: ...") so replicas can be compared.
"""

from __future__ import annotations

import os

from absl import flags

from ka_tf import cli, config, path_flags
from ka_tf.training.launch import (
    define_training_flags,
    print_replica_digest,
    run_directory,
    set_up_run,
)

define_training_flags()
path_flags.define_path(
    "images",
    None,
    "A folder of your own unlabelled photos (.jpg/.jpeg/.png/.webp, any subfolders) to "
    "amalgamate on instead of the recipe's dataset: a fixed 10% are held out as the "
    "validation images that choose the branch points, the rest train; each is resized "
    "and cropped to IMAGE_SIZE. No test metrics (there are no labels).",
)
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    del argv
    if FLAGS.images:
        FLAGS.gin_bindings = [
            *(FLAGS.gin_bindings or []),
            *config.image_folder_bindings(FLAGS.images),
        ]
    strategy = set_up_run(FLAGS)
    from ka_tf.amalgamation.run import STUDENT_FILE, amalgamate

    with run_directory(FLAGS.model_dir, strategy) as write_dir:
        amalgamate(write_dir, strategy)
        config.write_config(write_dir, operative=True)
        print_replica_digest(os.path.join(write_dir, STUDENT_FILE), strategy, "student")
    return 0


def run() -> None:
    """The `ka-train` console script and `python tools/train.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
