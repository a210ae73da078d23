"""Monocular-depth metrics from sums pooled over every valid pixel of the dataset.

Conventions (Eigen et al. 2014, as used by the amalgamation paper):

- Predictions and targets are depths in metres of equal shape (``[N, H, W]``).
- A target pixel is *valid* when it is finite and ``> 0``; when ``max_depth`` is
  given, target pixels deeper than ``max_depth`` are also left out (the usual
  "cap" protocol, e.g. 10 m on NYUv2, 80 m on KITTI/Cityscapes).
- Predictions are clamped to ``[min_depth, max_depth]`` (``min_depth`` defaults
  to 1e-3 m so that ratios and logs stay finite; no upper clamp by default).
  A non-finite prediction on a valid pixel is an error, never a silent NaN.
- Every metric is pooled over all valid pixels of all images (element-wise terms
  in float32, sums accumulated in float64 and divided once by the pixel count;
  ~1e-8 relative to an all-float64 computation), not averaged per image:

  - ``depth/abs_rel`` = mean(|p - t| / t)
  - ``depth/sq_rel`` = mean((p - t)² / t)
  - ``depth/rmse`` = sqrt(mean((p - t)²))
  - ``depth/rmse_log`` = sqrt(mean((ln p - ln t)²)) (natural log)
  - ``depth/log10`` = mean(|log10 p - log10 t|)
  - ``depth/delta{k}`` = fraction of pixels with max(p/t, t/p) < 1.25**k, k = 1, 2, 3
    (fractions in [0, 1], not percent).
"""

from __future__ import annotations

import numpy as np

from ka_tf.errors import ConfigError, DataError

ABS_REL = "depth/abs_rel"
SQ_REL = "depth/sq_rel"
RMSE = "depth/rmse"
RMSE_LOG = "depth/rmse_log"
LOG10 = "depth/log10"
DELTA1 = "depth/delta1"
DELTA2 = "depth/delta2"
DELTA3 = "depth/delta3"
DEPTH_METRICS = (ABS_REL, SQ_REL, RMSE, RMSE_LOG, LOG10, DELTA1, DELTA2, DELTA3)

DEFAULT_MIN_DEPTH = 1e-3
_DELTA_BASE = 1.25
# The pooled sums behind the metrics (also the columns of a per-image statistics row).
SUM_KEYS = ("count", "abs_rel", "sq_rel", "sq_err", "sq_log", "abs_log10", "d1", "d2", "d3")


def _check_range(min_depth: float, max_depth: float | None) -> tuple[float, float | None]:
    if min_depth is None or not np.isfinite(min_depth) or min_depth <= 0:
        raise ConfigError(
            f"depth metrics need a positive min_depth (predictions are clamped to it so that "
            f"ratios and logs are finite). Received: min_depth={min_depth!r}. "
            f"Expected e.g. {DEFAULT_MIN_DEPTH}."
        )
    if max_depth is not None and not (np.isfinite(max_depth) and max_depth > min_depth):
        raise ConfigError(
            f"max_depth must be None or a finite value above min_depth={min_depth}. "
            f"Received: max_depth={max_depth!r}."
        )
    return float(min_depth), None if max_depth is None else float(max_depth)


def depth_sums(
    predictions: np.ndarray,
    targets: np.ndarray,
    min_depth: float = DEFAULT_MIN_DEPTH,
    max_depth: float | None = None,
) -> dict[str, float]:
    """Returns the pooled sums of one batch (see the module docstring).

    Args:
        predictions: Predicted depth in metres.
        targets: Target depth in metres, same shape; invalid pixels are 0/NaN/inf.
        min_depth: Lower clamp of the predictions (metres, > 0).
        max_depth: Upper clamp of the predictions and upper limit of valid targets.

    Returns:
        A dict of float sums keyed by ``count``, ``abs_rel``, ``sq_rel``, ``sq_err``,
        ``sq_log``, ``abs_log10``, ``d1``, ``d2``, ``d3``.

    Raises:
        DataError: on mismatched shapes or non-finite predictions on valid pixels.
        ConfigError: on an invalid ``min_depth``/``max_depth``.
    """
    min_depth, max_depth = _check_range(min_depth, max_depth)
    predictions = np.asarray(predictions)
    targets = np.asarray(targets)
    if predictions.shape != targets.shape:
        raise DataError(
            f"depth predictions and targets differ in shape: predictions {predictions.shape} "
            f"vs targets {targets.shape}. Expected equal [N, H, W] arrays in metres "
            f"(squeeze a trailing channel of 1)."
        )
    for name, array in (("predictions", predictions), ("targets", targets)):
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(
            array.dtype, np.complexfloating
        ):
            raise DataError(
                f"depth {name} must be real numbers in metres. Received dtype={array.dtype}."
            )
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(targets) & (targets > 0)
        if max_depth is not None:
            valid &= targets <= max_depth
    # Element-wise work in float32, every sum accumulated in float64: the pooled
    # metrics then agree with an all-float64 computation to ~1e-8 relative.
    target = targets[valid].astype(np.float32, copy=False)
    pred = predictions[valid].astype(np.float32, copy=False)
    if not np.all(np.isfinite(pred)):
        bad = int(np.count_nonzero(~np.isfinite(pred)))
        raise DataError(
            f"depth predictions are NaN or infinite on {bad} valid pixel(s); the model "
            f"diverged or its output is not a depth map."
        )
    pred = np.clip(
        pred, np.float32(min_depth), None if max_depth is None else np.float32(max_depth)
    )
    diff = pred - target
    squared = diff * diff
    ratio = pred / target
    log_ratio = np.log(ratio)
    worst_ratio = np.maximum(ratio, 1.0 / ratio)
    f64 = np.float64
    return {
        "count": float(target.size),
        "abs_rel": float(np.sum(np.abs(diff) / target, dtype=f64)),
        "sq_rel": float(np.sum(squared / target, dtype=f64)),
        "sq_err": float(np.sum(squared, dtype=f64)),
        "sq_log": float(np.sum(log_ratio * log_ratio, dtype=f64)),
        "abs_log10": float(np.sum(np.abs(log_ratio), dtype=f64) / np.log(10.0)),
        "d1": float(np.count_nonzero(worst_ratio < _DELTA_BASE)),
        "d2": float(np.count_nonzero(worst_ratio < _DELTA_BASE**2)),
        "d3": float(np.count_nonzero(worst_ratio < _DELTA_BASE**3)),
    }


def metrics_from_sums(sums: dict[str, float]) -> dict[str, float]:
    """Turns pooled sums into the eight depth metrics.

    Raises:
        DataError: if no valid target pixel was seen.
    """
    count = sums["count"]
    if count == 0:
        raise DataError(
            "depth metrics saw no valid pixel: every target depth is 0, non-finite or beyond "
            "max_depth. Check the depth labels, the split and --max_depth."
        )
    return {
        ABS_REL: sums["abs_rel"] / count,
        SQ_REL: sums["sq_rel"] / count,
        RMSE: float(np.sqrt(sums["sq_err"] / count)),
        RMSE_LOG: float(np.sqrt(sums["sq_log"] / count)),
        LOG10: sums["abs_log10"] / count,
        DELTA1: sums["d1"] / count,
        DELTA2: sums["d2"] / count,
        DELTA3: sums["d3"] / count,
    }


class DepthAccumulator:
    """Streams batches into pooled float64 sums and computes the metrics once.

    Args:
        min_depth: Lower clamp of the predictions in metres (> 0).
        max_depth: Optional upper clamp of the predictions; also masks targets beyond it.

    Example:
        >>> acc = DepthAccumulator()
        >>> acc.update(np.array([[2.0, 1.0]]), np.array([[1.0, 0.0]]))
        >>> acc.result()["depth/abs_rel"]
        1.0
    """

    def __init__(self, min_depth: float = DEFAULT_MIN_DEPTH, max_depth: float | None = None):
        self.min_depth, self.max_depth = _check_range(min_depth, max_depth)
        self.sums = dict.fromkeys(SUM_KEYS, 0.0)

    def update(self, predictions: np.ndarray, targets: np.ndarray) -> None:
        """Adds one batch of predicted and target depths (same shape, metres)."""
        batch = depth_sums(predictions, targets, self.min_depth, self.max_depth)
        for key, value in batch.items():
            self.sums[key] += value

    def result(self) -> dict[str, float]:
        """Returns the metrics over every valid pixel seen since the last reset."""
        return metrics_from_sums(self.sums)

    def reset(self) -> None:
        """Forgets every batch seen so far."""
        self.sums = dict.fromkeys(SUM_KEYS, 0.0)
