"""Exports a ka_tf model (.keras) as SavedModel, TFLite and ONNX, with a parity report.

Usage:
    python tools/export.py --model=student.keras --out_dir=export \\
        --formats=saved_model,tflite,onnx --tflite_quant=none,fp16,dynamic,int8 \\
        --representative_data=synth_street:/data/synth:train \\
        --eval_dataset=synth_street --eval_data_dir=/data/synth --eval_split=test

Writes into --out_dir: saved_model/1/ (TensorFlow Serving layout; signatures
serving_default: uint8 images [N,H,W,3], predict_image_bytes: encoded JPEG/PNG strings
[N], serving_float: float32 images), student.tflite / student_fp16.tflite /
student_dynamic.tflite / student_int8.tflite (builtin ops only; input float32
[1,H,W,3] in 0..255), student.onnx (opset 17; input float32 [N,H,W,3]) and
export_report.json (file sizes; max abs/rel difference of every output versus the
float32 Keras model on held-out images; % pixels with the same class; task metrics of
the quantised TFLite files next to the float model's when --eval_* is given).
Outputs of every artifact: semseg int32 [N,H,W] class ids, semseg_probs float32
[N,H,W,C], depth float32 [N,H,W] metres, normals float32 [N,H,W,3] (the model's tasks).

Image sources (--representative_data): DATASET:DATA_DIR:SPLIT, a split of any dataset
ka_tf.data.load reads (e.g. synth_street:/data/synth:train; use training images), or
a folder of images (searched recursively). Images are resized to the model size.

Held-out parity images: the first --parity_images of the --eval_* split if given,
else the images of --representative_data after the calibration ones, else uniform
noise (the report records which).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from absl import flags

from ka_tf import cli, path_flags
from ka_tf.export.formats import format_names

if TYPE_CHECKING:
    from ka_tf.export.image_sources import ImageSource

path_flags.define_path("model", None, "The .keras model file to export (required).")
path_flags.define_path(
    "out_dir",
    None,
    "Export directory (required). Refused if it already holds an export, unless --overwrite.",
)
flags.DEFINE_list(
    "formats",
    list(format_names()),
    f"Comma-separated export formats: {', '.join(format_names())} (ka_tf/export/formats.py).",
)
flags.DEFINE_list(
    "tflite_quant",
    ["none"],
    "TFLite variants, comma-separated: none (float32 student.tflite), fp16 (float16 "
    "weights), dynamic (int8 weights, dynamic-range), int8 (full integer, calibrated on "
    "--representative_data; float32 input/output tensors).",
)
path_flags.define_path(
    "representative_data",
    None,
    "Calibration images for int8 (required with int8): DATASET:DATA_DIR:SPLIT (e.g. "
    "synth_street:/data/synth:train) or an image folder. Use training images.",
)
flags.DEFINE_integer(
    "representative_samples", 100, "How many calibration images to use.", lower_bound=1
)
flags.DEFINE_list(
    "image_size",
    None,
    "H,W of the exported input (multiples of 32); default: the model's fixed input size.",
)
flags.DEFINE_string("eval_dataset", None, "Labelled dataset for the metrics table, e.g. nyuv2.")
path_flags.define_path("eval_data_dir", None, "Root directory of --eval_dataset.")
flags.DEFINE_string("eval_split", "test", "Split of --eval_dataset.")
flags.DEFINE_integer(
    "eval_max_examples", None, "Evaluate on at most this many examples.", lower_bound=1
)
flags.DEFINE_float(
    "max_depth",
    None,
    "The data's depth range in metres (e.g. 160 for the synthetic streets, 10 for NYUv2): "
    "every artifact clamps its depth output to [0, max_depth] (int8 files then quantise "
    "valid depths only), and the metrics mask target pixels beyond it.",
)
flags.DEFINE_integer(
    "parity_images", 8, "How many held-out images the parity figures use.", lower_bound=1
)
flags.DEFINE_string("name", "student", "Base name of the .tflite and .onnx files.")
flags.DEFINE_bool("overwrite", False, "Replace an existing export in --out_dir.")
FLAGS = flags.FLAGS


def _image_size() -> tuple[int, int] | None:
    from ka_tf.errors import ConfigError
    from ka_tf.export.exporter import check_image_size

    if FLAGS.image_size is None:
        return None
    try:
        return check_image_size([int(v) for v in FLAGS.image_size])
    except ValueError:
        raise ConfigError(
            f"--image_size={','.join(FLAGS.image_size)} must be H,W (two integers, multiples "
            f"of 32)."
        ) from None


def main(argv: list[str]) -> int:
    del argv
    logging.getLogger("ka_tf.export.exporter").setLevel(logging.INFO)
    model_path = cli.require_flag("model")
    out_dir = cli.require_flag("out_dir")

    from ka_tf.errors import ConfigError
    from ka_tf.evaluation import load_model_file
    from ka_tf.export import exporter
    from ka_tf.export.image_sources import parse_image_source

    formats = exporter.check_choices(FLAGS.formats, format_names(), "--formats")
    exporter.check_format_dependencies(formats)
    quants = exporter.check_choices(
        FLAGS.tflite_quant, exporter.TFLITE_QUANTIZATIONS, "--tflite_quant"
    )
    if "tflite" in formats and "int8" in quants and not FLAGS.representative_data:
        raise ConfigError(
            "--tflite_quant=int8 needs calibration images: pass --representative_data="
            "DATASET:DATA_DIR:SPLIT (e.g. synth_street:/data/synth:train) or an image folder."
        )
    found = exporter.existing_export(out_dir, FLAGS.name)
    if found and not FLAGS.overwrite:
        raise ConfigError(
            f"--out_dir={out_dir} already holds an export ({', '.join(found)}). Pass "
            f"--overwrite to replace it, or choose another --out_dir."
        )
    size = _image_size()
    representative = None
    if FLAGS.representative_data:
        representative = parse_image_source(FLAGS.representative_data, "--representative_data")
    eval_source = None
    if FLAGS.eval_dataset or FLAGS.eval_data_dir:
        dataset, data_dir = cli.require_flag("eval_dataset"), cli.require_flag("eval_data_dir")
        eval_source = parse_image_source(
            f"{dataset}:{data_dir}:{FLAGS.eval_split}", "--eval_dataset/--eval_data_dir"
        )

    model = load_model_file(model_path)
    exporter.model_tasks(model)  # not a ka_tf model: a one-line error before any work
    if size is None:
        from ka_tf.export.runtimes import model_image_size

        size = exporter.check_image_size(model_image_size(model, model_path))

    calibration = None
    if representative is not None and "tflite" in formats and "int8" in quants:
        calibration = list(representative.images(size, FLAGS.representative_samples))
        print(f"calibration: {len(calibration)} images from {representative.text}")
    parity, parity_source = _parity_images(
        eval_source, representative, size, FLAGS.parity_images, FLAGS.representative_samples
    )
    report = exporter.export_model(
        model,
        out_dir,
        formats=formats,
        tflite_quantizations=quants,
        image_size=size,
        representative_images=calibration,
        parity_images=parity,
        parity_source=parity_source,
        eval_source=eval_source,
        eval_max_examples=FLAGS.eval_max_examples,
        max_depth=FLAGS.max_depth,
        overwrite=FLAGS.overwrite,
        name=FLAGS.name,
        model_path=model_path,
    )
    for path, entry in report["artifacts"].items():
        rel = ", ".join(f"{k} {v:.2e}" for k, v in entry["max_rel_diff"].items())
        agreement = entry.get("semseg_agreement_pct")
        seg = "" if agreement is None else f"; semseg agreement {agreement:.2f}%"
        print(f"{path}: {entry['size_bytes'] / 1e6:.2f} MB; max rel diff {rel}{seg}")
    if report["metrics"]:
        from ka_tf.metrics import format_table

        rows = {k: v for k, v in report["metrics"].items() if isinstance(v, dict)}
        print(format_table(rows))
    print(f"wrote {out_dir}")
    return 0


def _parity_images(
    eval_source: ImageSource | None,
    representative: ImageSource | None,
    size: tuple[int, int],
    count: int,
    skip: int,
):
    import numpy as np

    if eval_source is not None:
        images = list(eval_source.images(size, count))
        if images:
            return np.stack(images), f"{eval_source.text} (first {len(images)})"
    if representative is not None:
        images = list(representative.images(size, count, skip=skip))
        if images:
            return np.stack(images), f"{representative.text} (after {skip} calibration images)"
    return None, "random uniform noise (seed 0)"


def run() -> None:
    """The `ka-export` console script and `python tools/export.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
