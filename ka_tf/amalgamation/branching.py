"""Choosing where each task branches out of the shared trunk (paper step 3)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import gin

from ka_tf.errors import ConfigError, TrainingError
from ka_tf.models.arch import BRANCH_CANDIDATES


@gin.configurable
def choose_branch_points(
    block_losses: Mapping[str, Sequence[float]],
    tolerance: float = 0.1,
    min_index: int = 1,
) -> dict[str, int]:
    """Picks, per task, the deepest allowed block whose projection loss stays close to the best.

    Rule: among candidates ``b >= min_index`` (``min_index=1`` keeps branching in the
    decoder — the paper's n > N/2 constraint), let ``best`` be the task's lowest
    measured loss. Choose the deepest ``b`` with ``loss[b] <= best + tolerance * |best|``.
    A deeper branch point shares more layers, so the rule prefers the smallest
    student whose sharing costs the task at most ``tolerance`` (relative) in loss.
    ``|best|`` keeps the rule right when a divergence is measured a hair below zero
    (float rounding of a KL between near-identical distributions).

    Args:
        block_losses: Task → validation projection loss at each candidate 0..4.
        tolerance: Allowed relative loss increase over the task's best block.
        min_index: Shallowest allowed candidate.

    Returns:
        Task → chosen candidate index.

    Raises:
        ConfigError: ``min_index`` or ``tolerance`` out of range, or a task without
            one loss per candidate.
        TrainingError: A measured loss is NaN or infinite.
    """
    count = len(BRANCH_CANDIDATES)
    if not 0 <= min_index < count:
        raise ConfigError(
            f"min_index out of range. Received: min_index={min_index}. Expected 0..{count - 1}."
        )
    if tolerance < 0:
        raise ConfigError(f"tolerance must be >= 0. Received: tolerance={tolerance}.")
    choice = {}
    for task, losses in block_losses.items():
        if len(losses) != count:
            raise ConfigError(f"{task}: expected {count} block losses, received {list(losses)}.")
        if not all(math.isfinite(loss) for loss in losses):
            raise TrainingError(
                f"{task}: a block-wise projection loss is not finite: {list(losses)}. "
                "Lower the learning rate or check the teacher files; the block checkpoints "
                "are kept, so rerunning resumes after the last finished block."
            )
        allowed = range(min_index, count)
        best = min(losses[b] for b in allowed)
        threshold = best + tolerance * abs(best) + 1e-12
        choice[task] = max(b for b in allowed if losses[b] <= threshold)
    return choice
