"""The Python API: what a notebook calls (also as ``ka_tf.<name>``).

Example:
    >>> import ka_tf
    >>> teacher = ka_tf.load_teacher(ka_tf.teacher_spec(
    ...     "scene.onnx", {"semseg": "logits"}, input_size=(256, 512), scale=1 / 255,
    ...     layout="nchw"))
    >>> report = ka_tf.amalgamate(
    ...     "runs/mine", teachers={"semseg": teacher_spec_or_path, "depth": "depth.keras"},
    ...     images="my_photos/", bindings=["BLOCKWISE_STEPS = 0",
    ...                                    "amalgamate.branch_points = {'semseg': 2, 'depth': 3}"])
    >>> student = ka_tf.load_model("runs/mine/student.keras")
    >>> ka_tf.predict(student, photos)["depth"].shape
"""

from __future__ import annotations

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


def predict(model: Any, images: Any) -> dict[str, np.ndarray]:
    """A model's metric-form predictions for a ``[B, H, W, 3]`` batch (0..255): semseg
    class ids, depth in metres, normals, mask probabilities
    (:func:`ka_tf.evaluation.predict_dense`)."""
    from ka_tf.evaluation import predict_dense

    return predict_dense(model, images)


def amalgamate(
    model_dir: str,
    teachers: Mapping[str, Any] | Sequence[Any] | None = None,
    gin_file: str = "gin/demo.gin",
    bindings: Sequence[str] = (),
    images: str | None = None,
) -> dict[str, Any]:
    """Runs the amalgamation job as ``tools/train.py`` does, from Python.

    Args:
        model_dir: The run directory (resumed when it holds a run).
        teachers: ``{task: path or TeacherSpec}`` or a list; overrides the recipe's
            ``TEACHERS`` (None: the recipe's).
        gin_file: The recipe (a path, or one of the shipped ``gin/`` recipes).
        bindings: Extra gin bindings, after the recipe's.
        images: A folder of unlabelled photos to amalgamate on (``--images``).

    Returns:
        The report dict (also in ``model_dir/amalgamation_report.json``).
    """
    import gin

    from ka_tf import config, distribute
    from ka_tf.amalgamation.run import amalgamate as run_amalgamation

    extra = list(bindings) + (config.image_folder_bindings(images) if images else [])
    gin.clear_config()
    config.parse_gin_config([gin_file], extra)
    try:
        strategy = distribute.get_strategy()
        distribute.set_precision_policy()
        overrides = {} if teachers is None else {"teachers": teachers}
        report = run_amalgamation(model_dir, strategy, **overrides)
        config.write_config(model_dir, operative=True)
        return report
    finally:
        gin.clear_config()
