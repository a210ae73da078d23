"""Exports a ka_tf model as SavedModel, TFLite and ONNX, and proves each in its runtime.

Layout of ``out_dir`` (``name`` defaults to ``student``)::

    saved_model/1/            TensorFlow Serving layout: serving_default (uint8 images),
                              predict_image_bytes (encoded images), serving_float
    student.tflite            float32
    student_fp16.tflite       float16 weights, float32 compute on most CPUs
    student_dynamic.tflite    int8 weights, dynamic-range int8 compute
    student_int8.tflite       full integer: int8 weights and activations (calibrated on
                              representative images); float32 input/output tensors, so
                              every TFLite file has the same interface
    student.onnx              tf2onnx, opset 17
    export_report.json        sizes, parity vs Keras, segmentation agreement, metrics

Every TFLite file uses builtin operators only (no Flex delegate) and has one
signature with input ``images`` float32 ``[1, H, W, 3]`` in 0..255 and the outputs of
:class:`~ka_tf.export.dense_export_module.DenseExportModule`.

A model built under a mixed precision policy is rebuilt from its config in float32
and its weights copied before export (a mixed graph does not convert to TFLite and
gives bfloat16 ONNX); the float32 rebuild is the reference of every parity figure.

Artifacts are written to a temporary folder inside ``out_dir``, checked, and then
renamed into place; an ``out_dir`` that already holds an export is refused unless
``overwrite``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np

from ka_tf import extras
from ka_tf.constants import IMAGE, SIZE_DIVISOR, TASKS
from ka_tf.errors import ConfigError, DataError, ModelFileError
from ka_tf.export.dense_export_module import SERVING_FLOAT, DenseExportModule, model_tasks
from ka_tf.export.formats import (
    TFLITE_QUANTIZATIONS,
    ExportContext,
    format_names,
    get_format,
)
from ka_tf.export.image_sources import ImageSource

ONNX_OPSET = 17
REPORT_FILE = "export_report.json"
_LOG = logging.getLogger(__name__)


def check_choices(values: Sequence[str], valid: Sequence[str], flag: str) -> tuple[str, ...]:
    """Validates a list flag against ``valid``; returns the values, deduplicated, in order.

    Raises:
        ConfigError: on an empty list or an unknown value, naming ``flag``.
    """
    values = [value.strip() for value in values if value.strip()]
    unknown = [value for value in values if value not in valid]
    if unknown or not values:
        raise ConfigError(
            f"unknown {flag} value(s) {unknown or values}. Received: {flag}={','.join(values)}. "
            f"Expected a comma-separated subset of {','.join(valid)}."
        )
    return tuple(dict.fromkeys(values))


def check_image_size(size: Sequence[int]) -> tuple[int, int]:
    """Validates ``(height, width)``: two positive multiples of 32.

    Raises:
        ConfigError: otherwise.
    """
    size = tuple(int(v) for v in size)
    if len(size) != 2 or any(v <= 0 or v % SIZE_DIVISOR for v in size):
        raise ConfigError(
            f"image size must be H,W with both multiples of {SIZE_DIVISOR} (the model "
            f"downsamples 5 times by 2). Received: image_size={list(size)}."
        )
    return size  # type: ignore[return-value]


def artifact_names(
    formats: Sequence[str], quantizations: Sequence[str], name: str = "student"
) -> list[str]:
    """The artifact paths (relative to ``out_dir``) an export with these options writes."""
    return [path for fmt in formats for path in get_format(fmt).artifacts(name, quantizations)]


def existing_export(out_dir: str, name: str = "student") -> list[str]:
    """The export artifacts already in ``out_dir`` (any registered format), relative paths."""
    candidates = [REPORT_FILE]
    candidates += [path for fmt in format_names() for path in get_format(fmt).leftovers(name)]
    return [path for path in candidates if os.path.exists(os.path.join(out_dir, path))]


def is_mixed(model: keras.Model) -> bool:
    """Whether any layer of ``model`` computes or stores in a dtype other than float32."""
    return any(
        layer.compute_dtype != "float32" or layer.variable_dtype != "float32"
        for layer in model._flatten_layers(include_self=True)
    )


def float32_model(model: keras.Model, image_size: Sequence[int] | None = None) -> keras.Model:
    """Rebuilds ``model`` from its config under the float32 policy and copies its weights.

    Args:
        model: A ka_tf model, built under any precision policy.
        image_size: If the config has ``image_shape``, the rebuilt model takes a fixed
            ``(H, W, 3)`` input of this size.

    Returns:
        A float32 model with the same weights.

    Raises:
        ModelFileError: if the model cannot be rebuilt from its config.
    """
    config = model.get_config()
    if image_size is not None and "image_shape" in config:
        config["image_shape"] = [int(image_size[0]), int(image_size[1]), 3]
    if "dtype" in config:
        config["dtype"] = "float32"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        rebuilt = type(model).from_config(config)
    except Exception as error:
        raise ModelFileError(
            f"cannot rebuild model {model.name!r} ({type(model).__name__}) from its config in "
            f"float32: {type(error).__name__}: {error}"
        ) from error
    finally:
        keras.mixed_precision.set_global_policy(previous)
    weights = model.get_weights()
    rebuilt.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
    return rebuilt


def write_saved_model(module: DenseExportModule, path: str) -> None:
    """Writes the SavedModel with all three signatures to ``path``."""
    import tensorflow as tf

    tf.saved_model.save(module, path, signatures=module.signatures())


def convert_tflite(
    module: DenseExportModule,
    quantization: str,
    representative_images: Sequence[np.ndarray] | None = None,
) -> bytes:
    """Converts the module's float32 ``[1, H, W, 3]`` graph to TFLite (builtin ops only).

    Args:
        module: The export module.
        quantization: One of :data:`TFLITE_QUANTIZATIONS`.
        representative_images: float32 ``[H, W, 3]`` calibration images (``int8`` only).

    Raises:
        ConfigError: on ``int8`` without representative images.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.tflite_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        if not representative_images:
            raise ConfigError(
                "int8 quantisation needs calibration images: pass --representative_data="
                "DATASET:DATA_DIR:SPLIT or an image folder (training images)."
            )
        images = [np.asarray(image, np.float32)[None] for image in representative_images]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image] for image in images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif quantization != "none":
        check_choices([quantization], TFLITE_QUANTIZATIONS, "--tflite_quant")
    return converter.convert()


def check_format_dependencies(formats: Sequence[str]) -> None:
    """Raises a one-line :class:`~ka_tf.extras.MissingExtraError` if a format lacks its tools."""
    for fmt in formats:
        for module in get_format(fmt).requires:
            extras.check(module, f"--formats={fmt}")


def convert_onnx(saved_model_dir: str, path: str, opset: int = ONNX_OPSET) -> None:
    """Converts the SavedModel's ``serving_float`` signature to ONNX with tf2onnx's CLI.

    The ONNX model has input ``images`` float32 ``[N, H, W, 3]`` and the exported outputs.

    Raises:
        RuntimeError: if tf2onnx fails (its last output lines are in the message).
    """
    extras.check("tf2onnx", f"exporting {path}")
    command = [
        sys.executable,
        "-m",
        "tf2onnx.convert",
        "--saved-model",
        saved_model_dir,
        "--signature_def",
        SERVING_FLOAT,
        "--tag",
        "serve",
        "--opset",
        str(opset),
        "--output",
        path,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0 or not os.path.isfile(path):
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"tf2onnx failed (exit {result.returncode}):\n{tail}")


def compare_outputs(
    actual: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Parity figures of one artifact's outputs against the reference (float32 Keras).

    Returns:
        ``max_abs_diff`` and ``max_rel_diff`` (max abs diff / max abs reference value)
        per float output, and ``semseg_agreement_pct``: % of pixels with the same class.
    """
    if sorted(actual) != sorted(reference):
        raise ModelFileError(
            f"outputs {sorted(actual)} differ from the Keras model's {sorted(reference)}."
        )
    max_abs, max_rel = {}, {}
    agreement = {}
    for name, ref in reference.items():
        if np.issubdtype(np.asarray(ref).dtype, np.integer):  # class ids: agreement
            agreement[f"{name}_agreement_pct"] = float(100.0 * np.mean(actual[name] == ref))
            continue
        diff = float(np.max(np.abs(actual[name].astype(np.float64) - ref)))
        max_abs[name] = diff
        max_rel[name] = diff / max(float(np.max(np.abs(ref))), 1e-12)
    return {"max_abs_diff": max_abs, "max_rel_diff": max_rel, **agreement}


def evaluate_runner(
    runner: Any,
    source: ImageSource,
    num_classes: int | None,
    max_examples: int | None = None,
    min_depth: float = 1e-3,
    max_depth: float | None = None,
) -> dict[str, float]:
    """Task metrics of a runner on a labelled split (predictions resized to the labels).

    Raises:
        DataError: if the split has no labels for the model's tasks or is empty.
    """
    from ka_tf.export.runtimes import resize_images, resize_outputs
    from ka_tf.metrics import DenseMetrics

    metrics = None
    for example in source.examples(max_examples):
        if metrics is None:
            tasks = [t for t in TASKS if t in example and t in runner.output_names]
            if not tasks:
                raise DataError(
                    f"--eval_data={source.text} has no labels for the model's outputs "
                    f"{list(runner.output_names)} (its keys are {sorted(example)}). Pass a "
                    f"labelled split such as test."
                )
            metrics = DenseMetrics(num_classes, tasks, min_depth=min_depth, max_depth=max_depth)
        image = example[IMAGE]
        outputs = runner(resize_images(image[None], runner.image_size))
        outputs = resize_outputs(outputs, image.shape[:2])
        targets = {task: example[task][None] for task in metrics.tasks}
        metrics.update({task: outputs[task] for task in metrics.tasks}, targets)
    if metrics is None:
        raise DataError(f"--eval_data={source.text} yielded no example: the split is empty.")
    return metrics.result()


def _move_into_place(tmp_dir: str, out_dir: str, relative: Sequence[str], trash: str) -> None:
    for path in relative:
        source, target = os.path.join(tmp_dir, path), os.path.join(out_dir, path)
        if os.path.isfile(source):
            os.chmod(source, 0o644)  # readable by a model server running as another user
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(target):
            os.replace(target, os.path.join(trash, path.replace("/", "_")))
        os.replace(source, target)


def export_model(
    model: keras.Model,
    out_dir: str,
    formats: Sequence[str] | None = None,
    tflite_quantizations: Sequence[str] = ("none",),
    image_size: Sequence[int] | None = None,
    representative_images: Iterable[np.ndarray] | None = None,
    parity_images: np.ndarray | None = None,
    parity_source: str = "random uniform noise (seed 0)",
    eval_source: ImageSource | None = None,
    eval_max_examples: int | None = None,
    max_depth: float | None = None,
    overwrite: bool = False,
    name: str = "student",
    model_path: str | None = None,
) -> dict[str, Any]:
    """Exports ``model`` to ``out_dir`` in ``formats`` and writes ``export_report.json``.

    Args:
        model: A ka_tf model (dict output keyed by task), any precision policy.
        out_dir: The export directory (created if needed).
        formats: Registered format names (:func:`~ka_tf.export.formats.format_names`);
            default: all of them.
        tflite_quantizations: Subset of :data:`TFLITE_QUANTIZATIONS` (TFLite only).
        image_size: ``(H, W)`` of the exported input; default: the model's fixed size.
        representative_images: float32/uint8 ``[H, W, 3]`` calibration images at
            ``image_size`` (needed for ``int8``).
        parity_images: ``[N, H, W, 3]`` images in 0..255 for the parity figures;
            default: 4 images of uniform noise (seed 0).
        parity_source: Where ``parity_images`` come from, recorded in the report.
        eval_source: A labelled split; the float model and each quantised TFLite file
            are evaluated on it.
        eval_max_examples: Evaluate on at most this many examples.
        max_depth: The data's depth range in metres (e.g. 10 NYUv2, 80 Cityscapes):
            every artifact clamps its depth output to ``[0, max_depth]`` (a quantised
            file then spends its 8 bits on valid depths), and the metrics mask targets
            beyond it.
        overwrite: Replace an existing export in ``out_dir``.
        name: Base name of the TFLite and ONNX files.
        model_path: Recorded in the report.

    Returns:
        The report written to ``out_dir/export_report.json``.

    Raises:
        ConfigError: bad formats/quantisations/size, int8 without calibration images,
            or an existing export without ``overwrite``.
        ModelFileError: the model is not a ka_tf model.
    """
    from ka_tf import io_utils
    from ka_tf.export.runtimes import KerasRunner, model_image_size

    formats = check_choices(formats or format_names(), format_names(), "--formats")
    quantizations = check_choices(tflite_quantizations, TFLITE_QUANTIZATIONS, "--tflite_quant")
    if "tflite" not in formats:
        quantizations = ()
    check_format_dependencies(formats)
    tasks = model_tasks(model)
    size = check_image_size(image_size or model_image_size(model, model_path or model.name))
    calibration = None
    if "int8" in quantizations:
        calibration = [np.asarray(image, np.float32) for image in representative_images or []]
        if not calibration:
            raise ConfigError(
                "--tflite_quant=int8 needs calibration images: pass --representative_data="
                "DATASET:DATA_DIR:SPLIT or an image folder (training images)."
            )
    found = existing_export(out_dir, name) if os.path.isdir(out_dir) else []
    if found and not overwrite:
        raise ConfigError(
            f"--out_dir={out_dir} already holds an export ({', '.join(found)}). Pass "
            f"--overwrite to replace it, or choose another --out_dir."
        )
    io_utils.ensure_writable_dir(out_dir, "--out_dir")

    mixed = is_mixed(model)
    float_model = float32_model(model, size)
    reference_runner = KerasRunner(float_model, size, model_path or model.name, max_depth=max_depth)
    if parity_images is None:
        parity_images = np.random.default_rng(0).uniform(0, 255, (4, *size, 3))
    parity_images = np.round(np.asarray(parity_images, np.float32)).clip(0, 255)
    reference = reference_runner(parity_images)

    relative = artifact_names(formats, quantizations, name)
    tmp_dir = tempfile.mkdtemp(prefix=".export-", dir=out_dir)
    try:
        context = ExportContext(reference_runner.module, tmp_dir, name, quantizations, calibration)
        artifacts: dict[str, dict[str, Any]] = {}
        runners: dict[str, Any] = {}
        for fmt in formats:
            export_format = get_format(fmt)
            _LOG.info("writing %s", ", ".join(export_format.artifacts(name, quantizations)))
            for path in export_format.write(context):
                runner = export_format.load(context.path(path))
                runners[path] = runner
                artifacts[path] = {
                    "format": runner.runtime,
                    "size_bytes": _size(context.path(path)),
                    **export_format.describe(path, runner, name),
                    **compare_outputs(runner(parity_images), reference),
                }

        metrics = None
        if eval_source is not None:
            classes = reference_runner.num_classes
            metrics = {"eval_data": eval_source.text, "keras_float32": None}
            metrics["keras_float32"] = evaluate_runner(
                reference_runner, eval_source, classes, eval_max_examples, max_depth=max_depth
            )
            for path, runner in runners.items():
                if artifacts[path].get("quantization", "none") != "none":
                    metrics[path] = evaluate_runner(
                        runner, eval_source, classes, eval_max_examples, max_depth=max_depth
                    )

        report = {
            "model": model_path or model.name,
            "model_class": type(model).__name__,
            "tasks": list(tasks),
            "outputs": list(reference_runner.output_names),
            "num_classes": reference_runner.num_classes,
            "image_size": list(size),
            "depth_clamp_m": None if max_depth is None else [0.0, float(max_depth)],
            "source_policy_mixed": mixed,
            "reference": "Keras model rebuilt in float32 (weights copied)",
            "parity_images": {"source": parity_source, "count": len(parity_images)},
            "artifacts": artifacts,
            "metrics": metrics,
        }
        runners.clear()
        trash = os.path.join(tmp_dir, ".replaced")
        os.makedirs(trash)
        if overwrite:  # the new export replaces the old one whole, stale files included
            for stale in existing_export(out_dir, name):
                if stale == "saved_model":
                    os.replace(os.path.join(out_dir, stale), os.path.join(trash, stale))
                elif stale != REPORT_FILE and stale not in relative:
                    os.remove(os.path.join(out_dir, stale))
        _move_into_place(tmp_dir, out_dir, relative, trash)
        io_utils.atomic_write_text(
            os.path.join(out_dir, REPORT_FILE), json.dumps(report, indent=2) + "\n"
        )
        os.chmod(os.path.join(out_dir, REPORT_FILE), 0o644)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return report


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
    )


__all__ = [
    "REPORT_FILE",
    "artifact_names",
    "check_choices",
    "check_image_size",
    "compare_outputs",
    "convert_onnx",
    "convert_tflite",
    "evaluate_runner",
    "existing_export",
    "export_model",
    "float32_model",
    "is_mixed",
    "write_saved_model",
]
