"""What ka_tf needs to know about one dense task, in one class.

A task says: how many channels its head predicts and what the head's output is;
which distillation losses it offers; how a prediction and a label are mirrored,
averaged and resized; what padded label pixels hold; how a model output becomes a
metric prediction, which accumulator scores it and which per-image sums the study's
bootstrap resamples; what constant is the trivial baseline; what a served model
returns for it; and how a map of it is drawn. Subclass :class:`Task`, override what
differs from the defaults (which suit a dense map of values, such as depth), and
register an instance with :func:`ka_tf.tasks.register_task`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
from keras import ops

from ka_tf.errors import ModelFileError


class TaskMetrics(NamedTuple):
    """The metric keys of a task (``"task/name"``), in report order, and how to read them."""

    names: tuple[str, ...]
    lower_is_better: frozenset[str]  # errors; every other metric is higher-is-better
    primary: str  # the one metric of the Multi-Task-Learning-PyTorch headline
    headline: tuple[str, ...]  # what the zoo table and the study's verdict judge


class Task:
    """One dense prediction task.

    Attributes:
        name: The key of the task's labels, model outputs, losses and metrics.
        has_classes: Whether the head predicts one channel per class (``num_classes``).
        label_channels: Channels of a label: None for an ``[H, W]`` map,
            ``k`` for ``[H, W, k]``.
        pad_value: What padded label pixels hold (an "ignore" or "invalid" value).
        mirror_signs: Per-channel signs applied after mirroring a map left-right (a
            vector's x flips), or None when mirroring only moves pixels.
        default_loss: The distillation loss used when a recipe names none.
        output_form: What a one-channel output holds, for messages (``"metres "``).
        kind: For a task its user names (:func:`~ka_tf.tasks.declare_task`), the kind
            (``binary``) that rebuilds it from its name; None for the built-in tasks.
    """

    name: str = ""
    has_classes: bool = False
    label_channels: int | None = None
    pad_value: float = 0.0
    mirror_signs: tuple[float, ...] | None = None
    default_loss: str = ""
    output_form: str = ""
    kind: str | None = None

    # --- Head ---------------------------------------------------------------------

    def head_channels(self, num_classes: int | None) -> int:
        """Channels of the head's last convolution."""
        del num_classes
        return 1

    def head_output(self, raw: Any, options: Mapping[str, Any]) -> Any:
        """The head's output from its last convolution ``raw`` ``[B, H, W, C]`` (float32).

        Args:
            raw: The convolution's output.
            options: The head's options (``depth_activation``, ...).
        """
        del options
        return raw[..., 0]

    def head_output_shape(self, input_shape: tuple, channels: int) -> tuple:
        """The head's output shape for an input of ``input_shape``."""
        del channels
        return tuple(input_shape[:-1])

    # --- Distillation -------------------------------------------------------------

    def losses(self) -> dict[str, Callable[..., Any]]:
        """Loss name → factory of a ``keras.losses.Loss`` ``(target, prediction)``."""
        return {}

    def mirror(self, values: Any, width_axis: int) -> Any:
        """Mirrors a label or prediction left-right along ``width_axis``."""
        flipped = ops.flip(values, axis=width_axis)
        if self.mirror_signs is None:
            return flipped
        return flipped * ops.cast(ops.convert_to_tensor(self.mirror_signs), flipped.dtype)

    def average(self, predictions: Sequence[Any]) -> Any:
        """The average of predictions of this task on views of one image, each already
        mapped back to the image's frame (teacher targets averaged over the mirror
        image and over scales)."""
        return sum(predictions[1:], predictions[0]) / float(len(predictions))

    # --- Foreign teachers ---------------------------------------------------------

    #: What the output of a teacher that is not a ka_tf model may hold for this task
    #: (``teacher_spec(outputs={task: form})``); the first is the head's own form.
    teacher_forms: tuple[str, ...] = ()

    def teacher_target(self, raw: tf.Tensor, form: str) -> tf.Tensor:
        """The head's output form (what this task's losses compare) from a foreign
        teacher's output ``raw`` ``[B, H, W, C]`` float32, already at the image's size.

        Args:
            raw: The teacher's output, channels last.
            form: One of :attr:`teacher_forms`.
        """
        del raw
        raise NotImplementedError(f"task {self.name!r} takes no foreign teachers ({form!r})")

    # --- Data ---------------------------------------------------------------------

    def resize_label(self, values: tf.Tensor, hw: tf.Tensor, depth_method: str) -> tf.Tensor:
        """Resizes one label ``[H, W, ...]`` to ``hw`` (default: nearest neighbour)."""
        del depth_method
        expanded = values[..., None] if self.label_channels is None else values
        resized = tf.image.resize(expanded, hw, method="nearest")
        return resized[..., 0] if self.label_channels is None else resized

    # --- Metrics ------------------------------------------------------------------

    def metric_prediction(self, output: tf.Tensor, model_name: str) -> tf.Tensor:
        """What the metrics score, from the model's output for this task.

        Raises:
            ModelFileError: if the output does not have this task's shape.
        """
        if output.shape.rank == 4 and output.shape[-1] == 1:
            output = output[..., 0]
        if output.shape.rank != 3:
            raise ModelFileError(
                f"model {model_name!r}: {self.name} output has shape {tuple(output.shape)}. "
                f"Expected {self.output_form}[B, H, W] (or [B, H, W, 1])."
            )
        return tf.cast(output, tf.float32)

    def label_from_prediction(self, prediction: np.ndarray) -> np.ndarray:
        """A teacher's :meth:`metric_prediction` as a label, to score a student's
        agreement with its teacher where no human label exists (semseg class ids,
        depth metres and normals are labels as they are)."""
        return np.asarray(prediction)

    def metrics(self) -> TaskMetrics:
        """The task's metric keys and how to read them."""
        raise NotImplementedError(f"task {self.name!r} defines no metrics")

    def accumulator(self, num_classes: int | None, min_depth: float, max_depth: float | None):
        """A fresh metric accumulator (``update(pred, target)``, ``result()``, ``reset()``)."""
        raise NotImplementedError(f"task {self.name!r} defines no metrics")

    def image_statistics(
        self,
        prediction: np.ndarray,
        target: np.ndarray,
        num_classes: int | None,
        min_depth: float,
        max_depth: float | None,
    ) -> np.ndarray:
        """One image's sufficient statistics (float64): the metrics of a set of images
        are :meth:`pooled_metrics` of the sum of their rows (the study's bootstrap)."""
        raise NotImplementedError(f"task {self.name!r} defines no per-image statistics")

    def pooled_metrics(self, summed: np.ndarray) -> dict[str, float]:
        """The metrics of a set of images from the sum of their :meth:`image_statistics`."""
        raise NotImplementedError(f"task {self.name!r} defines no per-image statistics")

    def num_classes(self, output_shape: tuple) -> int | None:
        """The class count of a model whose output for this task has ``output_shape``
        (None for a task without classes)."""
        del output_shape
        return None

    # --- Constant baseline --------------------------------------------------------

    def baseline_sums(self, labels: np.ndarray, num_classes: int | None) -> tuple[np.ndarray, int]:
        """Sufficient statistics of one label batch for the constant baseline:
        ``(sums, valid pixels)``; sums of several batches add up."""
        valid = labels[np.isfinite(labels) & (labels > 0)].astype(np.float64)
        return np.array([valid.sum()]), int(valid.size)

    def baseline_constant(
        self, sums: np.ndarray, pixels: int, num_classes: int | None
    ) -> tuple[Any, np.ndarray, str]:
        """The constant fitted from summed statistics: ``(value, per-pixel output
        vector, one-line description)``. Default: the mean valid value."""
        value = float(sums[0] / pixels)
        return value, np.array([value], np.float32), f"mean {self.name} {value:.3f}"

    # --- Export -------------------------------------------------------------------

    def export_names(self) -> tuple[str, ...]:
        """Names of the outputs a served model returns for this task."""
        return (self.name,)

    def export_outputs(
        self, output: tf.Tensor, max_depth: float | None = None
    ) -> dict[str, tf.Tensor]:
        """The served outputs, from the model's output for this task.

        Args:
            output: The model's output for this task.
            max_depth: The data's valid depth range, for tasks that clamp to it.
        """
        del max_depth
        return {self.name: tf.cast(output, tf.float32)}

    # --- Pictures -----------------------------------------------------------------

    def render(
        self,
        values: np.ndarray,
        palette: np.ndarray | None = None,
        value_range: tuple[float | None, float | None] = (None, None),
    ) -> np.ndarray:
        """An RGB uint8 picture of one label or prediction (metric form, ``[H, W, ...]``).

        Args:
            values: The map.
            palette: Class colours, for tasks with classes.
            value_range: ``(low, high)`` shared by several maps of a continuous task;
                None takes the map's own range.
        """
        from ka_tf.visualize import COLOUR_MAP

        values = np.asarray(values, np.float32)
        low = np.nanmin(values) if value_range[0] is None else value_range[0]
        high = np.nanmax(values) if value_range[1] is None else value_range[1]
        scaled = np.clip((values - low) / max(float(high - low), 1e-12), 0.0, 1.0)
        return COLOUR_MAP[np.round(np.nan_to_num(scaled) * 255).astype(np.int64)]

    def resize_export(self, name: str, value: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
        """Resizes one served output ``[N, H, W, C]`` (``name`` from :meth:`export_names`)
        to ``size``: bilinear by default."""
        del name
        return tf.image.resize(value, size, method="bilinear")
