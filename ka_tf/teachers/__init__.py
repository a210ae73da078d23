"""Teachers: the models a student learns from, in three tiers.

- *splittable*: a ka_tf SegNet, U-Net or finished TargetNet ``.keras`` file. Its
  decoder runs from any branch candidate with the side inputs of its own pass (pooling
  switches, skips), so the block-wise phase projects the student's features through it
  (the paper's method); :mod:`ka_tf.teachers.splittable` is the protocol.
- *output-only*: any other dense model — a ``.keras`` file of any architecture, a
  SavedModel, a ``.tflite`` or an ``.onnx`` file — declared with
  :func:`~ka_tf.teachers.foreign.teacher_spec` (its input convention and which
  output holds which task in what form). Only its outputs are distilled, into the
  student's heads; TFLite/ONNX outputs are cached per image on disk.

- *tap-only*: a foreign model with one inner feature per branch candidate declared
  (``teacher_spec(taps=...)``): the block-wise phase matches the student's feature to
  each tap through its gate's learned 1×1 adaptor; its outputs are distilled as above.

Example (a notebook):
    >>> from ka_tf.teachers import load_teacher, teacher_spec
    >>> spec = teacher_spec("selfie.tflite", {"person": "probability"},
    ...                     input_size=(256, 256), scale=1 / 255)
    >>> teacher = load_teacher(spec)
    >>> teacher(images)["person"].shape  # images: float RGB [B, H, W, 3] in 0..255
"""

from ka_tf.teachers.foreign import (
    OUTPUT_ONLY,
    TAP_ONLY,
    ForeignTeacher,
    TeacherSpec,
    teacher_spec,
)
from ka_tf.teachers.loading import load_teacher, teacher_tier
from ka_tf.teachers.model_files import ModelFile, model_file_kinds, register_model_file
from ka_tf.teachers.preprocessing import Preprocessing
from ka_tf.teachers.splittable import SPLITTABLE, SplittableTeacher, seeds_student

__all__ = [
    "OUTPUT_ONLY",
    "SPLITTABLE",
    "TAP_ONLY",
    "ForeignTeacher",
    "ModelFile",
    "Preprocessing",
    "SplittableTeacher",
    "TeacherSpec",
    "load_teacher",
    "model_file_kinds",
    "register_model_file",
    "seeds_student",
    "teacher_spec",
    "teacher_tier",
]
