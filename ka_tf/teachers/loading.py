"""Loading a teacher of any tier from a path or a :class:`TeacherSpec`."""

from __future__ import annotations

from typing import Any

from ka_tf.errors import ModelFileError
from ka_tf.teachers.foreign import OUTPUT_ONLY, TeacherSpec, load_foreign
from ka_tf.teachers.splittable import SPLITTABLE, SplittableTeacher


def teacher_tier(teacher: Any) -> str:
    """``"splittable"`` (follows :class:`SplittableTeacher`: SegNet, TargetNet, U-Net) or
    the teacher's own ``tier``."""
    if isinstance(teacher, SplittableTeacher):
        return SPLITTABLE
    return getattr(teacher, "tier", OUTPUT_ONLY)


def load_teacher(source: str | TeacherSpec) -> Any:
    """A teacher from a ka_tf ``.keras`` path (splittable: SegNet, U-Net, a finished
    student) or a :class:`TeacherSpec`
    (output-only: any ``.keras``, SavedModel, ``.tflite`` or ``.onnx`` model).

    Raises:
        ModelFileError: the file is missing or unreadable, or a path that is not a
            ka_tf model was given without a spec.
    """
    if isinstance(source, TeacherSpec):
        return load_foreign(source)
    from ka_tf.evaluation import load_model_file

    path = str(source)
    if not path.endswith(".keras"):
        raise ModelFileError(
            f"teacher {path} is not a ka_tf .keras model: declare it with "
            f"teacher_spec(path=..., outputs={{task: form}}, input_size=..., scale=...) "
            f"(docs/teachers.md)."
        )
    model = load_model_file(path)
    if teacher_tier(model) != SPLITTABLE:
        raise ModelFileError(
            f"teacher {path} is a {type(model).__name__}, not a splittable ka_tf "
            f"SegNet/TargetNet/UNet: declare it as an output-only teacher with "
            f"teacher_spec(path=..., outputs={{task: form}}, ...) (docs/teachers.md).",
        )
    return model
