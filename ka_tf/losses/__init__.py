"""Loss terms keyed by task, as ``keras.losses.Loss`` objects (Keras scales them per replica).

:func:`build_loss` is the one factory, bound from gin by name; each task's module
(:mod:`ka_tf.tasks`) lists its losses. The built-in tasks offer:

| task | names |
| --- | --- |
| ``semseg`` | ``ce`` (labels, ignore 255), ``kl`` (teacher logits), ``hard_ce`` (argmax) |
| ``depth`` | ``l1``, ``log_l1``, ``berhu``, ``silog`` (valid where target > 0) |
| ``normals`` | ``cosine`` (1 − cos), ``angular`` (radians); valid where the target norm > 0.5 |
"""

from __future__ import annotations

from typing import Any

import gin
import keras

from ka_tf.errors import ConfigError
from ka_tf.losses.depth_losses import BerHu, DepthL1, ScaleInvariantLogLoss
from ka_tf.losses.feature_losses import FeatureMSE
from ka_tf.losses.normals_losses import AngularError, CosineDistance
from ka_tf.losses.semseg_losses import (
    HardTargetCrossEntropy,
    SemsegCrossEntropy,
    SoftTargetKLDivergence,
)


@gin.configurable
def build_loss(task: str, name: str, **kwargs: Any) -> keras.losses.Loss:
    """Returns loss ``name`` for ``task`` (see the table in this module's docstring).

    Example:
        >>> build_loss("semseg", "kl", temperature=2.0)
    """
    from ka_tf.tasks import get_task

    losses = get_task(task).losses()  # an unknown task is a ConfigError naming the known ones
    if name not in losses:
        raise ConfigError(
            f"unknown {task} loss. Received: name={name!r}. Expected one of {sorted(losses)}."
        )
    return losses[name](**kwargs)


__all__ = [
    "AngularError",
    "BerHu",
    "CosineDistance",
    "DepthL1",
    "FeatureMSE",
    "HardTargetCrossEntropy",
    "ScaleInvariantLogLoss",
    "SemsegCrossEntropy",
    "SoftTargetKLDivergence",
    "build_loss",
]
