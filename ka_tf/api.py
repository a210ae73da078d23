"""The Python API: what a notebook calls (also as ``ka_tf.<name>``).

Example:
    >>> import ka_tf
    >>> spec = ka_tf.teacher_spec("scene.onnx", {"semseg": "logits"},
    ...                           input_size=(256, 512), scale=1 / 255, layout="nchw")
    >>> ka_tf.load_teacher(spec)(images)["semseg"].shape  # check it before training
    >>> student, report = ka_tf.amalgamate(
    ...     "runs/mine", teachers={"semseg": spec, "depth": "depth.keras"},
    ...     images="my_photos/", blockwise_steps=0, branch_points={"semseg": 2, "depth": 3})
    >>> ka_tf.predict(student, photos)["depth"].shape
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def load_model(path: str) -> Any:
    """Loads any ka_tf ``.keras`` model (a teacher or a student), its layers registered.

    Raises:
        ModelFileError: the file is missing, not ``.keras``, or unreadable.
    """
    from ka_tf.evaluation import load_model_file

    return load_model_file(path)


def predict(model: Any, images: Any, frozen: bool = False) -> dict[str, np.ndarray]:
    """A model's metric-form predictions for a ``[B, H, W, 3]`` batch (0..255): semseg
    class ids, depth in metres, normals, mask probabilities
    (:func:`ka_tf.evaluation.predict_dense`). ``frozen=True`` runs the weights frozen
    into the graph (BatchNorm folded once, ~1.8× faster at batch 1 here), for a model
    that is done training: later weight changes are not seen."""
    from ka_tf.evaluation import predict_dense

    return predict_dense(model, images, frozen=frozen)


def amalgamate(
    model_dir: str,
    teachers: Mapping[str, Any] | Sequence[Any] | None = None,
    images: str | None = None,
    gin_file: str = "gin/demo.gin",
    bindings: Sequence[str] = (),
    **overrides: Any,
) -> tuple[Any, dict[str, Any]]:
    """Runs the amalgamation job as ``tools/train.py`` does, from Python.

    Args:
        model_dir: The run directory (resumed when it holds a run).
        teachers: ``{task: path or TeacherSpec}`` or a list; overrides the recipe's
            ``TEACHERS`` (None: the recipe's).
        images: A folder of unlabelled photos to amalgamate on (``--images``: 10% held
            out for the branch choice).
        gin_file: The recipe (a path, or one of the shipped ``gin/`` recipes).
        bindings: Extra gin bindings, after the recipe's (macros such as
            ``"IMAGE_SIZE = (64, 128)"``).
        **overrides: Arguments of :func:`ka_tf.amalgamation.run.amalgamate`, e.g.
            ``finetune_steps=200, branch_points={"semseg": 2, "depth": 3}`` (bound as
            ``amalgamate.<name> = <value>`` after ``bindings``).

    Returns:
        ``(student, report)``: the student model and the report dict (also in
        ``model_dir/student.keras`` and ``amalgamation_report.json``).
    """
    import gin

    from ka_tf import config, distribute
    from ka_tf.amalgamation.run import STUDENT_FILE
    from ka_tf.amalgamation.run import amalgamate as run_amalgamation

    extra = list(bindings) + (config.image_folder_bindings(images) if images else [])
    extra += [f"amalgamate.{name} = {value!r}" for name, value in overrides.items()]
    gin.clear_config()
    config.parse_gin_config([gin_file], extra)
    try:
        strategy = distribute.get_strategy()
        distribute.set_precision_policy()
        arguments = {} if teachers is None else {"teachers": teachers}
        report = run_amalgamation(model_dir, strategy, **arguments)
        config.write_config(model_dir, operative=True)
    finally:
        gin.clear_config()
    return load_model(os.path.join(model_dir, STUDENT_FILE)), report
