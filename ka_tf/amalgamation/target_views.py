"""Views of an image that teacher targets are averaged over: the image, its mirror, and
the image resized by each of a list of scales (and their mirrors).

Each view's prediction is mapped back to the image's frame (a mirrored prediction by
its task's mirror rule, a rescaled one resized bilinearly) and the task averages them
(:meth:`ka_tf.tasks.Task.average`; normals are renormalised). Averaging over mirror
and scales is the multi-view inference of data distillation (Radosavovic et al.,
"Data Distillation: Towards Omni-Supervised Learning", CVPR 2018): its targets are
better than the model's single pass, so a student trained on them has more to learn
than the teacher's own output. :class:`MultiViewModel` scores a teacher that way,
so a report can show what the targets are worth.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from ka_tf.errors import ConfigError
from ka_tf.tasks import get_task


def flip_width(x):
    """Mirrors a [B, H, W, ...] tensor left-right."""
    return ops.flip(x, axis=2)


def unflip_prediction(task: str, flipped):
    """Maps a prediction on the mirrored image back to the original frame
    (:meth:`ka_tf.tasks.Task.mirror` along the width of a [B, H, W, ...] batch)."""
    return get_task(task).mirror(flipped, width_axis=2)


def view_size(height: int, width: int, scale: float, multiple: int = 32) -> tuple[int, int]:
    """The size of a target view at ``scale``: each side scaled and rounded to the
    nearest multiple of ``multiple``, halves up (the teachers' total stride; at least
    one)."""
    return tuple(
        max(multiple, int(side * scale / multiple + 0.5) * multiple) for side in (height, width)
    )


def resize_prediction(prediction, size: Sequence[int]):
    """A dense prediction ``[B, H, W]`` or ``[B, H, W, C]`` resized bilinearly to
    ``size`` (computed in float32, returned in the prediction's dtype)."""
    values = ops.cast(prediction, "float32")
    if len(prediction.shape) == 3:
        return ops.cast(
            ops.image.resize(values[..., None], size, "bilinear")[..., 0], prediction.dtype
        )
    return ops.cast(ops.image.resize(values, size, "bilinear"), prediction.dtype)


def check_target_scales(target_scales: Sequence[float]) -> tuple[float, ...]:
    """``target_scales`` as a tuple of positive floats with 1.0 first, or a ConfigError."""
    scales = tuple(float(s) for s in target_scales)
    if (
        not scales
        or scales[0] != 1.0
        or any(s <= 0 for s in scales)
        or len(set(scales)) != len(scales)
    ):
        raise ConfigError(
            f"target_scales must start with 1.0 (the image itself) and list distinct positive "
            f"scales. Received: target_scales={tuple(target_scales)}. Pass e.g. "
            f"(1.0, 1.25, 1.5)."
        )
    return scales


def other_views(
    teacher, images, tasks: Sequence[str], scales: Sequence[float], mirror: bool
) -> dict[str, list]:
    """The teacher's outputs on every view of ``images`` but the image itself (its
    mirror if ``mirror``; each other scale, and its mirror), mapped back to the
    image's frame: task → list of predictions shaped like the image's own."""
    height, width = images.shape[1], images.shape[2]
    views: dict[str, list] = {task: [] for task in tasks}
    for scale in scales:
        scaled = images
        if scale != 1.0:
            scaled = ops.image.resize(images, view_size(height, width, scale), "bilinear")
        for mirrored in (False, True) if mirror else (False,):
            if scale == 1.0 and not mirrored:
                continue  # the image itself: the caller's own pass
            outputs = teacher(flip_width(scaled) if mirrored else scaled, training=False)
            for task in tasks:
                output = outputs[task]
                if mirrored:
                    output = unflip_prediction(task, output)
                if scale != 1.0:
                    output = resize_prediction(output, (height, width))
                views[task].append(output)
    return views


def average_views(
    teacher, images, outputs, tasks: Sequence[str], scales: Sequence[float], mirror: bool
) -> dict:
    """Task → the teacher's prediction averaged over every view of ``images``, given
    its own pass on them (``outputs``); that pass alone when there is no other view."""
    views = other_views(teacher, images, tasks, scales, mirror)
    return {
        task: get_task(task).average([outputs[task], *views[task]])
        if views[task]
        else outputs[task]
        for task in tasks
    }


class MultiViewModel(keras.Model):
    """A dense model whose outputs are averaged over views of each image: what a
    teacher's multi-view targets score (e.g. on the test split, beside its single pass).

    Args:
        model: The wrapped model (outputs a dict keyed by task).
        scales: Image scales, 1.0 first (:func:`check_target_scales`).
        mirror: Average each scale with its mirror image too.
    """

    def __init__(self, model: keras.Model, scales: Sequence[float], mirror: bool = True, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{model.name}_views"), **kwargs)
        self.model = model
        self.scales = check_target_scales(scales)
        self.mirror = bool(mirror)

    def call(self, images, training=False):
        outputs = self.model(images, training=False)
        return average_views(self.model, images, outputs, list(outputs), self.scales, self.mirror)
