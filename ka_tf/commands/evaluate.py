"""Evaluates a dense-prediction model (.keras) on a labelled dataset split.

Usage:
    python tools/evaluate.py --model=teacher.keras --dataset=synth_street \\
        --data_dir=/tmp/synth_street --split=test --output=report.json

Prints a table of the metrics of every task the model outputs and the dataset
has labels for (semseg/miou, depth/rmse, normals/mean_angle, ...; fractions in
[0, 1], angles in degrees, depths in metres) and writes the same keys as JSON.
Conventions: see ``ka_tf.metrics.compute_metrics``.

``--per_class`` adds the scene-parsing classes one by one (IoU, share of the
labelled pixels, share of the predicted pixels; most frequent first), where a
mean IoU hides which classes a model gets and which it never predicts:

    python tools/evaluate.py --model=student.keras --dataset=synth_street \
        --data_dir=~/.cache/ka_tf/synth/128x256_seed0 --split=val --per_class
"""

from __future__ import annotations

import os

from absl import flags

from ka_tf import cli, config, path_flags
from ka_tf.visualize import CLASS_NAME_SETS

path_flags.define_path("model", None, "The .keras model file to evaluate (required).")
flags.DEFINE_string(
    "dataset", None, "Dataset name for ka_tf.data.load, e.g. synth_street, nyuv2 (required)."
)
path_flags.define_path("data_dir", None, "The dataset's root directory (required).")
flags.DEFINE_string("split", "test", "The split to evaluate on, e.g. test or val.")
path_flags.define_path(
    "output", None, "Where to write the metrics as JSON (written atomically); omit to only print."
)
flags.DEFINE_integer("batch_size", 8, "Images per forward pass.", lower_bound=1)
flags.DEFINE_integer(
    "max_examples", None, "Evaluate only the first N examples of the split.", lower_bound=1
)
flags.DEFINE_integer(
    "num_classes",
    None,
    "Scene-parsing class count; default: the model's semseg logits' last dimension.",
    lower_bound=1,
)
flags.DEFINE_list(
    "tasks", None, "Tasks to evaluate (semseg,depth,normals); default: all the model has."
)
flags.DEFINE_float(
    "min_depth",
    None,
    "Depth predictions are clamped to at least this many metres. Default: gin's "
    "evaluate_model.min_depth (1e-3 unless a --gin_file binds it).",
)
flags.DEFINE_float(
    "max_depth",
    None,
    "Depth predictions are clamped to at most this many metres and target pixels deeper "
    "than it are left out (e.g. 10 for NYUv2, 80 for Cityscapes). Default: gin's "
    "evaluate_model.max_depth, which the dataset gin files bind (gin/data/*.gin); none "
    "without one.",
)
flags.DEFINE_list(
    "multi_view_scales",
    None,
    "Score the model averaged over views of each image: the image resized by each of "
    "these scales (1 first; sides rounded to a multiple of 32) and each one's mirror, "
    "every output mapped back (what amalgamate.target_scales makes a teacher's "
    "fine-tuning targets), e.g. 1,1.25,1.5. Default: the model's single pass.",
)
flags.DEFINE_bool(
    "per_class",
    False,
    "Also print each scene-parsing class's IoU and its shares of the labelled and the "
    "predicted pixels, and write them to --output under 'semseg/per_class'.",
)
flags.DEFINE_enum(
    "class_names",
    "auto",
    CLASS_NAME_SETS,
    "Class names of --per_class: cityscapes (19 classes), nyu13 (13), none (numbered), "
    "or auto: inferred from the class count (19 -> cityscapes, 13 -> nyu13, else none).",
)
flags.DEFINE_bool("progress", True, "Show a progress bar.")
config.define_gin_flags()
FLAGS = flags.FLAGS


def _multi_view(model):
    """``model`` averaged over the ``--multi_view_scales`` views, or a one-line error."""
    from ka_tf.amalgamation.target_views import MultiViewModel, check_target_scales
    from ka_tf.errors import ConfigError

    try:
        scales = check_target_scales([float(value) for value in FLAGS.multi_view_scales])
    except (ValueError, ConfigError):
        raise ConfigError(
            f"--multi_view_scales must be distinct positive numbers, 1 first. Received: "
            f"--multi_view_scales={','.join(FLAGS.multi_view_scales)}. Pass e.g. "
            f"--multi_view_scales=1,1.25,1.5."
        ) from None
    return MultiViewModel(model, scales, name=model.name)


def main(argv: list[str]) -> int:
    del argv
    model_path = cli.require_flag("model")
    dataset_name = cli.require_flag("dataset")
    data_dir = cli.require_flag("data_dir")

    import ka_tf.data
    from ka_tf import evaluation, io_utils
    from ka_tf.errors import ModelFileError
    from ka_tf.metrics import format_table
    from ka_tf.tasks import task_names

    config.parse_gin_config(FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.gin_search_paths)
    model = evaluation.load_model_file(model_path)
    if FLAGS.multi_view_scales:
        model = _multi_view(model)
    dataset = ka_tf.data.load(dataset_name, data_dir=data_dir, split=FLAGS.split)
    if FLAGS.max_examples is not None:
        dataset = dataset.take(FLAGS.max_examples)
    dataset = dataset.batch(FLAGS.batch_size)
    # Only flags given on the command line override gin's evaluate_model bindings.
    depth_range = {
        name: getattr(FLAGS, name)
        for name in ("min_depth", "max_depth")
        if getattr(FLAGS, name) is not None
    }
    try:
        results = evaluation.evaluate_model(
            model,
            dataset,
            num_classes=FLAGS.num_classes,
            tasks=FLAGS.tasks,
            progress=FLAGS.progress,
            per_class=FLAGS.per_class,
            **depth_range,
        )
    except ModelFileError as error:  # the checks name the Keras model; say which file it is
        raise ModelFileError(f"--model={model_path}: {error}") from None
    name = os.path.basename(model_path)
    for task in task_names():  # one table per task keeps each one narrow enough to read
        columns = [key for key in results if key.startswith(f"{task}/") and key != _per(task)]
        if columns:
            print(format_table({name: results}, metrics=columns), end="\n\n")
    if FLAGS.per_class:
        for task, rows in _per_class(results, model_path).items():
            print(format_table(rows, digits=3, first_column="class"), end="\n\n")
            results[_per(task)] = rows
    if FLAGS.output:
        io_utils.atomic_write_json(FLAGS.output, results)
        print(f"wrote {FLAGS.output}")
    return 0


def _per(task: str) -> str:
    return f"{task}/per_class"


def _per_class(results: dict, model_path: str) -> dict[str, dict[str, dict[str, float]]]:
    """Task → class name → its IoU and pixel shares, most frequent class first."""
    import numpy as np

    from ka_tf.errors import ConfigError
    from ka_tf.tasks import task_names
    from ka_tf.visualize import class_names_and_palette

    scores = {
        task: {key: np.asarray(value, dtype=float) for key, value in results[_per(task)].items()}
        for task in task_names()
        if _per(task) in results
    }
    if not scores:
        raise ConfigError(
            f"--per_class: the evaluated tasks of --model={model_path} predict no classes. "
            f"Drop --per_class, or evaluate a scene-parsing model."
        )
    tables = {}
    for task, score in scores.items():
        names, _ = class_names_and_palette(FLAGS.class_names, len(score["iou"]))
        rows = {}
        for index in np.argsort(-score["share"], kind="stable"):
            row = {"IoU": float(score["iou"][index])} if np.isfinite(score["iou"][index]) else {}
            row["pixels"] = float(score["share"][index])
            row["predicted"] = float(score["predicted_share"][index])
            rows[names[index]] = row
        tables[task] = rows
    return tables


def run() -> None:
    """The `ka-evaluate` console script and `python tools/evaluate.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
