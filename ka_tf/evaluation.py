"""Evaluates a dense-prediction Keras model on a dataset with :mod:`ka_tf.metrics`.

Model contract (every ka_tf model follows it): input float32 ``[B, H, W, 3]``
RGB in 0..255 (normalisation happens inside the model); output a dict keyed by
task — ``semseg`` float32 logits ``[B, H, W, C]``, ``depth`` float32 metres
``[B, H, W]`` (a trailing channel of 1 is accepted), ``normals`` float32
``[B, H, W, 3]``.

Dataset contract (:mod:`ka_tf.data`): a batched ``tf.data.Dataset`` of dicts
with ``image`` uint8 ``[B, H, W, 3]`` and the label keys it has.

Example:
    >>> model = keras.saving.load_model("teacher.keras")
    >>> ds = ka_tf.data.load("synth_street", "/tmp/synth", "test").batch(8)
    >>> evaluate_model(model, ds)["semseg/miou"]
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import gin
import keras
import numpy as np
import tensorflow as tf

from ka_tf.constants import IMAGE
from ka_tf.errors import ConfigError, DataError, ModelFileError
from ka_tf.metrics import DenseMetrics
from ka_tf.metrics.depth import DEFAULT_MIN_DEPTH
from ka_tf.tasks import get_task, ordered_tasks, task_names


def _model_name(model: keras.Model) -> str:
    return getattr(model, "name", type(model).__name__)


def _postprocess(model: keras.Model, outputs: Any) -> dict[str, tf.Tensor]:
    """Checks the model's outputs against the contract and turns them into metric inputs."""
    name = _model_name(model)
    if not isinstance(outputs, dict) or not outputs:
        kind = "a single tensor" if hasattr(outputs, "shape") else type(outputs).__name__
        raise ModelFileError(
            f"model {name!r} returns {kind}, not a dict keyed by task. "
            f"Expected a dict with keys from {list(task_names())}."
        )
    unknown = sorted(set(outputs) - set(task_names()))
    if unknown:
        raise ModelFileError(
            f"model {name!r} has unknown output keys {unknown}. Expected keys from "
            f"{list(task_names())}."
        )
    return {task: get_task(task).metric_prediction(outputs[task], name) for task in outputs}


class DensePredictor:
    """Runs a model as one compiled ``tf.function`` and returns metric inputs as numpy.

    Semseg logits become int32 class ids (argmax inside the graph, so only the
    ids leave it), depth loses a trailing channel of 1, normals pass through.

    Args:
        model: A Keras model following the contract in :mod:`ka_tf.evaluation`.
        frozen: Freeze the weights into the graph at the first call for each input
            shape (:func:`~ka_tf.export.dense_export_module.frozen_function`, as the
            export endpoints are): BatchNorm is folded once instead of on every call,
            ~1.8× faster at batch 1 on this CPU, but later changes to the weights are
            not seen. For a model that is done training.

    Attributes:
        num_classes: The semseg logits' last dimension, known after the first call
            (None if the model has no semseg output or it is not static).
        tasks: The model's output task keys, known after the first call.
    """

    def __init__(self, model: keras.Model, frozen: bool = False) -> None:
        self.model = model
        self.frozen = bool(frozen)
        self.num_classes: int | None = None
        self.tasks: tuple[str, ...] | None = None
        # autograph=False: plain Python control flow, and contract errors raised while
        # tracing reach the caller as themselves, not wrapped in a StagingError.
        self._forward = tf.function(self._run, reduce_retracing=True, autograph=False)
        self._frozen: dict[tuple, Any] = {}

    def _run(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = self.model(images, training=False)
        result = _postprocess(self.model, outputs)
        for task in result:
            if get_task(task).has_classes:
                self.num_classes = get_task(task).num_classes(tuple(outputs[task].shape))
        self.tasks = ordered_tasks(result)
        return result

    def __call__(self, images: Any) -> dict[str, np.ndarray]:
        """Predicts one batch of ``[B, H, W, 3]`` images (uint8 or float, 0..255)."""
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise DataError(
                f"images must be a [B, H, W, 3] RGB batch. Received shape {tuple(images.shape)}."
            )
        images = tf.cast(images, tf.float32)
        if self.frozen:
            forward = self._frozen.get(tuple(images.shape))
            if forward is None:
                from ka_tf.export.dense_export_module import frozen_function

                spec = [tf.TensorSpec(images.shape, tf.float32)]
                forward = self._frozen[tuple(images.shape)] = frozen_function(self._run, spec)
            outputs = forward(images)
        else:
            outputs = self._forward(images)
        return {task: tensor.numpy() for task, tensor in outputs.items()}


_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _predictor(model: keras.Model, frozen: bool = False) -> DensePredictor:
    predictors = _PREDICTORS.setdefault(model, {})
    if frozen not in predictors:
        predictors[frozen] = DensePredictor(model, frozen=frozen)
    return predictors[frozen]


def predict_dense(model: keras.Model, images: Any, frozen: bool = False) -> dict[str, np.ndarray]:
    """Runs ``model`` on a batch and returns the metric inputs as numpy arrays.

    The compiled function is cached per model, so calling this in a loop traces
    once per input shape.

    Args:
        model: A Keras model following the contract in :mod:`ka_tf.evaluation`.
        images: ``[B, H, W, 3]`` numpy array or tensor, uint8 or float in 0..255;
            cast to float32, no other preprocessing.
        frozen: Run the weights frozen into the graph (see :class:`DensePredictor`):
            faster at batch 1, for a model that is done training.

    Returns:
        ``semseg``: int32 class ids ``[B, H, W]``; ``depth``: float32 ``[B, H, W]``;
        ``normals``: float32 ``[B, H, W, 3]`` — for the tasks the model outputs.

    Raises:
        ModelFileError: if the outputs are not a dict of known task keys with the
            contract's shapes.
        DataError: if ``images`` is not a ``[B, H, W, 3]`` batch.
    """
    return _predictor(model, frozen)(images)


def _dataset_keys(dataset: tf.data.Dataset) -> list[str]:
    spec = dataset.element_spec
    if not isinstance(spec, dict) or IMAGE not in spec:
        raise DataError(
            f"the dataset's elements must be dicts with an {IMAGE!r} key (ka_tf.data "
            f"contract). Received element_spec={spec}."
        )
    if spec[IMAGE].shape.rank != 4:
        raise DataError(
            f"the dataset must be batched: {IMAGE!r} has shape {spec[IMAGE].shape}, "
            f"expected [B, H, W, 3]. Call dataset.batch(batch_size) first."
        )
    return sorted(spec)


def _cardinality(dataset: tf.data.Dataset, max_batches: int | None) -> int | None:
    count = int(dataset.cardinality())
    known = count if count >= 0 else None
    if max_batches is None:
        return known
    return max_batches if known is None else min(known, max_batches)


@gin.configurable(allowlist=["min_depth", "max_depth"])
def evaluate_model(
    model: keras.Model,
    dataset: tf.data.Dataset,
    num_classes: int | None = None,
    tasks: Sequence[str] | None = None,
    max_batches: int | None = None,
    progress: bool = True,
    min_depth: float = DEFAULT_MIN_DEPTH,
    max_depth: float | None = None,
    per_class: bool = False,
) -> dict[str, Any]:
    """Streams a batched dataset through ``model`` and returns the dataset-level metrics.

    Args:
        model: A Keras model following the contract in :mod:`ka_tf.evaluation`.
        dataset: Batched dataset of dicts: ``image`` uint8 ``[B, H, W, 3]`` plus labels.
        num_classes: Semseg class count; default: the semseg logits' last dimension.
        tasks: Tasks to evaluate; default: every model task the dataset has labels for.
        max_batches: Stop after this many batches (None: the whole dataset).
        progress: Show a tqdm progress bar.
        min_depth: Lower clamp of depth predictions in metres.
        max_depth: Upper clamp of depth predictions; also masks deeper targets. Both
            are gin-bindable (``evaluate_model.max_depth``): a dataset's gin file binds
            its valid depth range, as the standard protocols cap predictions (e.g. at
            10 m on NYUv2); an explicit argument wins.
        per_class: Also return, for each task that predicts classes,
            ``"<task>/per_class"``: ``{"iou", "share", "predicted_share"}``, ``[C]``
            lists (:func:`ka_tf.metrics.semseg.class_scores`; IoU NaN for a class
            neither labelled nor predicted).

    Returns:
        The :func:`ka_tf.metrics.compute_metrics` keys of the evaluated tasks (floats),
        plus the per-class lists when asked.

    Raises:
        DataError: the dataset has no labels for any requested/model task, is not
            batched dicts, or is empty; bad label values.
        ModelFileError: the model's outputs break the contract.
        ConfigError: ``tasks`` names a task the model does not output.
    """
    metrics = _stream_metrics(
        model, dataset, num_classes, tasks, max_batches, progress, min_depth, max_depth
    )
    results: dict[str, Any] = metrics.result()
    if per_class:
        for task, scores in metrics.class_scores().items():
            results[f"{task}/per_class"] = {key: value.tolist() for key, value in scores.items()}
    return results


def _stream_metrics(
    model, dataset, num_classes, tasks, max_batches, progress, min_depth, max_depth
) -> DenseMetrics:
    """The statistics :func:`evaluate_model` reads its metrics from."""
    from tqdm import tqdm

    keys = _dataset_keys(dataset)
    if max_batches is not None:
        if max_batches < 1:
            raise ConfigError(f"max_batches must be >= 1. Received: max_batches={max_batches}.")
        dataset = dataset.take(max_batches)
    label_tasks = list(ordered_tasks(keys))
    predictor = _predictor(model)
    metrics: DenseMetrics | None = None
    bar = tqdm(
        total=_cardinality(dataset, max_batches),
        desc=f"evaluate {_model_name(model)}",
        unit="batch",
        disable=not progress,
    )
    with bar:
        for batch in dataset:
            predictions = predictor(batch[IMAGE])
            if metrics is None:
                chosen = _choose_tasks(
                    _model_name(model), predictor.tasks, label_tasks, keys, tasks
                )
                classes = num_classes if num_classes is not None else predictor.num_classes
                metrics = DenseMetrics(
                    classes if any(get_task(task).has_classes for task in chosen) else None,
                    chosen,
                    min_depth=min_depth,
                    max_depth=max_depth,
                )
            targets = {task: batch[task].numpy() for task in metrics.tasks}
            metrics.update({task: predictions[task] for task in metrics.tasks}, targets)
            bar.update(1)
    if metrics is None:
        raise DataError("the dataset yielded no batch: it (or its split) is empty.")
    return metrics


def teacher_labelled(
    dataset: tf.data.Dataset,
    teachers: Mapping[str, Any],
    max_batches: int | None = None,
) -> tf.data.Dataset:
    """``dataset``'s images, labelled by the teachers: each task's label is its teacher's
    prediction as a label (:meth:`ka_tf.tasks.Task.label_from_prediction`, e.g. a
    binary teacher's mask at 0.5).

    Scores a student's *agreement* with its teachers on images no one labelled (held-out
    real photos). The teachers run once per batch here, and the result is kept in
    memory, so keep the split small (a few hundred frames).

    Args:
        dataset: Batched dicts with ``image`` (other keys are dropped).
        teachers: Task → teacher (anything :func:`predict_dense` runs).
        max_batches: Use at most this many batches.

    Returns:
        A batched dataset of ``{image, task: label}``, batched as ``dataset``.
    """
    _dataset_keys(dataset)
    if max_batches is not None:
        dataset = dataset.take(max_batches)
    batches = []
    for batch in dataset:
        labelled = {IMAGE: batch[IMAGE].numpy()}
        for task, teacher in teachers.items():
            prediction = predict_dense(teacher, batch[IMAGE])[task]
            labelled[task] = get_task(task).label_from_prediction(prediction)
        batches.append(labelled)
    if not batches:
        raise DataError("the dataset yielded no batch: it (or its split) is empty.")
    signature = {
        key: tf.TensorSpec((None, *value.shape[1:]), tf.as_dtype(value.dtype))
        for key, value in batches[0].items()
    }
    return tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature).apply(
        tf.data.experimental.assert_cardinality(len(batches))
    )


def _choose_tasks(
    name: str,
    model_tasks: Sequence[str],
    label_tasks: Sequence[str],
    keys: Sequence[str],
    requested: Sequence[str] | None,
) -> tuple[str, ...]:
    if requested is not None:
        missing_model = [task for task in requested if task not in model_tasks]
        if missing_model:
            raise ConfigError(
                f"tasks={list(requested)} but model {name!r} outputs only {list(model_tasks)}."
            )
        missing_labels = [task for task in requested if task not in label_tasks]
        if missing_labels:
            raise DataError(
                f"the dataset has no labels for {missing_labels} (its keys are {list(keys)})."
            )
        return ordered_tasks(requested)
    chosen = tuple(task for task in model_tasks if task in label_tasks)
    if not chosen:
        raise DataError(
            f"the dataset has no labels for any of model {name!r}'s tasks "
            f"{list(model_tasks)}: its keys are {list(keys)}. Evaluate on a labelled split "
            f"(e.g. test) of a dataset with those labels."
        )
    return chosen


def load_model_file(path: str) -> keras.Model:
    """Loads a ``.keras`` model file, with ka_tf's custom layers registered.

    Args:
        path: A ``.keras`` file written by ``model.save``.

    Returns:
        The loaded Keras model.

    Raises:
        ModelFileError: if the file is missing, not a ``.keras`` file, or unreadable.
    """
    if not os.path.isfile(path):
        raise ModelFileError(
            f"model file not found: --model={path}. Pass a .keras file written by a ka_tf "
            f"tool (e.g. tools/train_teacher.py or tools/convert_teacher.py)."
        )
    if not path.endswith(".keras"):
        raise ModelFileError(
            f"--model={path} is not a .keras file. Expected a Keras v3 .keras archive "
            f"(model.save('model.keras')); convert PyTorch checkpoints with "
            f"tools/convert_teacher.py first."
        )
    try:
        import ka_tf.models  # noqa: F401  (registers ka_tf's serializable layers)
    except ModuleNotFoundError as error:
        if error.name != "ka_tf.models":
            raise
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:
        reason = " ".join(str(error).split())[:300]
        raise ModelFileError(
            f"cannot load --model={path}: {type(error).__name__}: {reason}"
        ) from error
