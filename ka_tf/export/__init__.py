"""Shipping a model: SavedModel (TensorFlow Serving), TFLite (phones) and ONNX.

- :class:`DenseExportModule`: the serving graph with explicit signatures.
- :func:`export_model`: writes every artifact and ``export_report.json`` (parity of
  each artifact in its own runtime against the float32 Keras model).
- :func:`load_runner`: runs a ``.keras``, SavedModel, ``.tflite`` or ``.onnx`` model
  through one interface.
- :mod:`ka_tf.export.formats`: the export formats, a registry (one class per format).

Example:
    >>> from ka_tf.export import export_model
    >>> report = export_model(student, "export/", formats=("saved_model", "tflite", "onnx"))
    >>> report["artifacts"]["student.tflite"]["max_rel_diff"]
"""

from ka_tf.export.dense_export_module import (
    BAD_IMAGE_MESSAGE,
    PREDICT_IMAGE_BYTES,
    SERVING_DEFAULT,
    SERVING_FLOAT,
    DenseExportModule,
    output_names_for,
)
from ka_tf.export.exporter import REPORT_FILE, export_model, float32_model
from ka_tf.export.formats import (
    TFLITE_QUANTIZATIONS,
    ExportFormat,
    format_names,
    get_format,
    register_format,
)
from ka_tf.export.image_sources import ImageSource, parse_image_source
from ka_tf.export.runtimes import Runner, load_runner, resize_images, resize_outputs

__all__ = [
    "BAD_IMAGE_MESSAGE",
    "PREDICT_IMAGE_BYTES",
    "REPORT_FILE",
    "SERVING_DEFAULT",
    "SERVING_FLOAT",
    "TFLITE_QUANTIZATIONS",
    "DenseExportModule",
    "ExportFormat",
    "ImageSource",
    "Runner",
    "export_model",
    "float32_model",
    "format_names",
    "get_format",
    "load_runner",
    "output_names_for",
    "parse_image_source",
    "register_format",
    "resize_images",
    "resize_outputs",
]
