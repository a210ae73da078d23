"""Optimizers and learning-rate schedules, bound from gin.

Keras optimizers and schedules are registered as gin external configurables
(``@keras.optimizers.AdamW``, ``@keras.optimizers.schedules.CosineDecay``, ...), and
:func:`build_optimizer` is the one factory the trainers call.
"""

from __future__ import annotations

import gin
import keras

from ka_tf.errors import ConfigError

for _name in ("SGD", "Adam", "AdamW", "Lion", "Lamb", "RMSprop", "Nadam"):
    gin.external_configurable(getattr(keras.optimizers, _name), module="keras.optimizers")
for _name in ("CosineDecay", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay"):
    gin.external_configurable(
        getattr(keras.optimizers.schedules, _name), module="keras.optimizers.schedules"
    )

OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "lion": keras.optimizers.Lion,
}


@gin.configurable
def build_optimizer(
    total_steps: int,
    name: str = "adam",
    learning_rate: float = 1e-3,
    warmup_steps: int = 0,
    final_lr_fraction: float = 0.01,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
) -> keras.optimizers.Optimizer:
    """Returns an optimizer with linear warm-up and cosine decay over ``total_steps``.

    Args:
        total_steps: Steps of the training phase the optimizer serves.
        name: One of ``sgd``, ``adam``, ``adamw``, ``lion``.
        learning_rate: Peak learning rate.
        warmup_steps: Linear warm-up steps from 0 to the peak.
        final_lr_fraction: The learning rate at the end, as a fraction of the peak.
        weight_decay: Decoupled weight decay (``adamw``/``lion``/``sgd``), or None.
        clipnorm: Per-variable gradient norm clip, or None.

    Example:
        >>> optimizer = build_optimizer(total_steps=1000, name="adamw", weight_decay=1e-4)
    """
    if name not in OPTIMIZERS:
        raise ConfigError(
            f"unknown optimizer. Received: build_optimizer.name={name!r}. "
            f"Expected one of {sorted(OPTIMIZERS)}."
        )
    if total_steps < 1:
        raise ConfigError(f"total_steps must be >= 1. Received: total_steps={total_steps}.")
    warmup_steps = min(warmup_steps, total_steps - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=final_lr_fraction,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    kwargs = {"learning_rate": schedule}
    if clipnorm is not None:
        kwargs["clipnorm"] = clipnorm
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    return OPTIMIZERS[name](**kwargs)
