"""Interleaved A/B of two ka_tf revisions (and PyTorch) on the same SegNet, same machine.

Usage:
    python benchmarks/revision_ab.py --old=a861e58 [--new=.] [--repeats=9] [--output=ab.json]

Each side runs in its own :class:`~benchmarks.harness.TimingWorker` process that
imports ka_tf from that revision (``--old`` is checked out into a temporary git
worktree; ``--new`` is a revision or a directory, ``.`` the working tree), and the
timed runs alternate old, new, PyTorch, old, ... so machine load hits all three
alike — on a shared VM the only way to see a 10% change. Measured on the demo's
semseg SegNet (VGG16-BN at width 0.125, 19 classes, 64x128, fresh weights): eval
forward at batch 1 and 8, and an SGD ``train_on_batch`` step at batch 8 (the same
call for both revisions, so only the model code differs).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from ka_tf import path_flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_string("old", None, "Git revision A (e.g. a commit).", required=True)
flags.DEFINE_string("new", ".", "Revision B, or a directory ('.': this working tree).")
flags.DEFINE_integer("repeats", 9, "Timed runs per figure, alternating.", lower_bound=1)
flags.DEFINE_float("min_time_s", 0.5, "Minimum duration of one timed run.")
path_flags.define_path("output", None, "Optional JSON file for the results.")

IMAGE_SIZE = (64, 128)
NUM_CLASSES = 19
WIDTH = 0.125


def _use_revision() -> None:
    """In a worker: drop the installed ka_tf and import it from ``KA_TF_AB_REPO``."""
    if os.environ.get("KA_TF_AB_LOADED"):
        return
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
    for name in [n for n in sys.modules if n == "ka_tf" or n.startswith("ka_tf.")]:
        del sys.modules[name]
    sys.path.insert(0, os.environ["KA_TF_AB_REPO"])
    os.environ["KA_TF_AB_LOADED"] = "1"


def origin() -> str:
    """Where this worker's ka_tf comes from."""
    _use_revision()
    import ka_tf

    return os.path.dirname(os.path.dirname(ka_tf.__file__))


def inference_call(batch: int):
    """A Keras eval forward of a fresh semseg SegNet at ``batch``."""
    _use_revision()
    import keras
    import numpy as np
    import tensorflow as tf

    from ka_tf.models import SegNet

    keras.utils.set_random_seed(0)
    model = SegNet("semseg", num_classes=NUM_CLASSES, width_multiplier=WIDTH)
    images = np.random.default_rng(0).uniform(0, 255, (batch, *IMAGE_SIZE, 3))
    x = tf.constant(images.astype("float32"))
    forward = tf.function(lambda t: model(t, training=False), autograph=False)
    return lambda: forward(x)["semseg"].numpy()


def train_call(batch: int):
    """One SGD ``train_on_batch`` step of a fresh semseg SegNet at ``batch``."""
    _use_revision()
    import keras
    import numpy as np
    import tensorflow as tf

    from ka_tf.losses import build_loss
    from ka_tf.models import SegNet

    keras.utils.set_random_seed(0)
    model = SegNet("semseg", num_classes=NUM_CLASSES, width_multiplier=WIDTH)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss={"semseg": build_loss("semseg", "ce")})
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 255, (batch, *IMAGE_SIZE, 3)).astype("float32"))
    y = {"semseg": tf.constant(rng.integers(0, NUM_CLASSES, (batch, *IMAGE_SIZE)), tf.int32)}
    return lambda: model.train_on_batch(x, y)


def main(argv: list[str]) -> int:
    del argv
    if REPO_ROOT not in sys.path:  # run as `python benchmarks/revision_ab.py`
        sys.path.insert(0, REPO_ROOT)
    from benchmarks.harness import (
        TimingWorker,
        git_checkout,
        median_of,
        ratio,
        time_interleaved,
    )

    here = os.path.dirname(os.path.abspath(__file__))
    results: dict = {}
    with (
        git_checkout(FLAGS.old) as old_dir,
        git_checkout(FLAGS.new) as new_dir,
        TimingWorker({"KA_TF_AB_REPO": old_dir}, [here, REPO_ROOT]) as old,
        TimingWorker({"KA_TF_AB_REPO": new_dir}, [here, REPO_ROOT]) as new,
        TimingWorker({}, [REPO_ROOT]) as torch_worker,
    ):
        results["ka_tf"] = {
            "old": old.call("revision_ab:origin"),
            "new": new.call("revision_ab:origin"),
        }
        results["revisions"] = {"old": FLAGS.old, "new": FLAGS.new}
        torch_worker.call("benchmarks.pytorch_reference:set_threads", os.cpu_count() or 1)
        reference = "benchmarks.pytorch_reference"
        options = {"num_classes": NUM_CLASSES, "width_multiplier": WIDTH}
        figures = [
            ("inference_batch_1", "inference_call", f"{reference}:inference_call", 1),
            ("inference_batch_8", "inference_call", f"{reference}:inference_call", 8),
            ("training_step_batch_8", "train_call", f"{reference}:train_step_call", 8),
        ]
        for name, target, torch_target, batch in figures:
            calls = {
                "old": old.build(f"revision_ab:{target}", batch),
                "new": new.build(f"revision_ab:{target}", batch),
                "pytorch": torch_worker.build(
                    torch_target, batch=batch, image_size=list(IMAGE_SIZE), **options
                ),
            }
            timed = time_interleaved(calls, batch, FLAGS.repeats, FLAGS.min_time_s)
            medians = {side: median_of(entry, "latency_ms") for side, entry in timed.items()}
            results[name] = {
                "latency_ms": {side: timed[side]["latency_ms"] for side in timed},
                "new_vs_old_speedup": ratio(medians["old"], medians["new"]),
                "new_vs_pytorch_speedup": ratio(medians["pytorch"], medians["new"]),
            }
            line = ", ".join(
                f"{side} {timed[side]['latency_ms']['median']:.1f} ms "
                f"(min {timed[side]['latency_ms']['min']:.1f})"
                for side in timed
            )
            print(f"{name}: {line}", flush=True)
    if FLAGS.output:
        with open(FLAGS.output, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    app.run(main)
