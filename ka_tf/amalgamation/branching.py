"""Choosing where each task branches out of the shared trunk (paper step 3)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import gin

from ka_tf.errors import ConfigError, TrainingError
from ka_tf.models.arch import BRANCH_CANDIDATES


@gin.configurable
def choose_branch_points(
    block_losses: Mapping[str, Sequence[float]],
    tolerance: float = 0.1,
    min_index: int = 1,
    max_params_ratio: float | None = None,
    params_ratio: Callable[[Mapping[str, int]], float] | None = None,
) -> dict[str, int]:
    """Picks, per task, the deepest allowed block whose projection loss stays close to the best.

    Rule: among candidates ``b >= min_index`` (``min_index=1`` keeps branching in the
    decoder — the paper's n > N/2 constraint), let ``best`` be the task's lowest
    measured loss. Choose the deepest ``b`` with ``loss[b] <= best + tolerance * |best|``.
    A deeper branch point shares more layers, so the rule prefers the smallest
    student whose sharing costs the task at most ``tolerance`` (relative) in loss.
    ``|best|`` keeps the rule right when a divergence is measured a hair below zero
    (float rounding of a KL between near-identical distributions).

    Size budget: with ``max_params_ratio``, a choice whose student is larger than that
    fraction of the teachers' parameters (``params_ratio(points)``) is replaced by the
    combination of allowed candidates that fits the budget at the least summed
    relative loss increase over each task's best, ``Σ (loss[b] − best) / |best|``
    (ties: the smaller student).

    Args:
        block_losses: Task → validation projection loss at each candidate 0..4.
        tolerance: Allowed relative loss increase over the task's best block.
        min_index: Shallowest allowed candidate.
        max_params_ratio: Largest student/teachers parameter ratio allowed (None: no
            budget).
        params_ratio: Branch points → the student's parameters over the teachers'
            together; required with ``max_params_ratio``.

    Returns:
        Task → chosen candidate index.

    Raises:
        ConfigError: ``min_index``, ``tolerance`` or ``max_params_ratio`` out of range,
            a task without one loss per candidate, or a budget that no allowed
            combination meets (naming the smallest reachable ratio).
        TrainingError: A measured loss is NaN or infinite.
    """
    count = len(BRANCH_CANDIDATES)
    if not 0 <= min_index < count:
        raise ConfigError(
            f"min_index out of range. Received: min_index={min_index}. Expected 0..{count - 1}."
        )
    if tolerance < 0:
        raise ConfigError(f"tolerance must be >= 0. Received: tolerance={tolerance}.")
    if max_params_ratio is not None and (max_params_ratio <= 0 or params_ratio is None):
        raise ConfigError(
            f"choose_branch_points.max_params_ratio must be > 0 and needs params_ratio. "
            f"Received: max_params_ratio={max_params_ratio}."
        )
    choice, relative = {}, {}
    allowed = range(min_index, count)
    for task, losses in block_losses.items():
        if len(losses) != count:
            raise ConfigError(f"{task}: expected {count} block losses, received {list(losses)}.")
        if not all(math.isfinite(loss) for loss in losses):
            raise TrainingError(
                f"{task}: a block-wise projection loss is not finite: {list(losses)}. "
                "Lower the learning rate or check the teacher files; the block checkpoints "
                "are kept, so rerunning resumes after the last finished block."
            )
        best = min(losses[b] for b in allowed)
        threshold = best + tolerance * abs(best) + 1e-12
        choice[task] = max(b for b in allowed if losses[b] <= threshold)
        scale = max(abs(best), 1e-12)
        relative[task] = {b: (losses[b] - best) / scale for b in allowed}
    if max_params_ratio is None or params_ratio(choice) <= max_params_ratio:
        return choice
    tasks = list(choice)
    options = []
    for combo in itertools.product(allowed, repeat=len(tasks)):
        points = dict(zip(tasks, combo, strict=True))
        ratio = params_ratio(points)
        cost = sum(relative[task][b] for task, b in points.items())
        options.append((ratio <= max_params_ratio, cost, ratio, points))
    fitting = [option for option in options if option[0]]
    if not fitting:
        smallest = min(options, key=lambda option: option[2])
        raise ConfigError(
            f"no branch points fit choose_branch_points.max_params_ratio={max_params_ratio}: "
            f"the smallest reachable student is {smallest[2]:.3f}x the teachers' parameters "
            f"(branch points {smallest[3]}, min_index={min_index}). Raise max_params_ratio "
            f"to at least {math.ceil(smallest[2] * 1000) / 1000:.3f}, or use a narrower student."
        )
    return min(fitting, key=lambda option: (option[1], option[2]))[3]
