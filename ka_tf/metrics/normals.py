"""Surface-normal metrics: angular error in degrees, pooled over the dataset.

Conventions (Eigen & Fergus 2015, Multi-Task-Learning-PyTorch):

- Predictions and targets are ``[N, H, W, 3]`` vectors. A target pixel is valid
  when its vector is finite with norm ``> 0.5`` (ka_tf datasets store 0 for
  invalid). The angle does not depend on either vector's length, which is the
  same as L2-normalising both first; a zero prediction vector scores 90°. A
  non-finite prediction on a valid pixel is an error.
- The angle is ``degrees(atan2(|p x t|, p . t))``, element-wise in float32 (this
  form is accurate near 0° and 180°, unlike ``arccos`` of a dot product: within
  ~1e-4° of float64), sums in float64.
- ``normals/mean_angle``: exact mean over all valid pixels of the dataset.
- ``normals/median_angle``: from a fixed histogram of 18000 bins of 0.01° over
  [0°, 180°] (constant memory, whatever the dataset size): the median's order
  statistic(s) are located in the cumulative histogram and the centre of their
  bin is reported, so the value is within **0.005°** of the exact median.
- ``normals/within_{11.25,22.5,30}``: exact fraction (in [0, 1], not percent) of
  valid pixels whose angle is ``< 11.25°``, ``< 22.5°``, ``< 30°``.
"""

from __future__ import annotations

import numpy as np

from ka_tf.errors import DataError

MEAN_ANGLE = "normals/mean_angle"
MEDIAN_ANGLE = "normals/median_angle"
WITHIN_11 = "normals/within_11.25"
WITHIN_22 = "normals/within_22.5"
WITHIN_30 = "normals/within_30"
NORMALS_METRICS = (MEAN_ANGLE, MEDIAN_ANGLE, WITHIN_11, WITHIN_22, WITHIN_30)

THRESHOLDS = (11.25, 22.5, 30.0)
BIN_WIDTH = 0.01
NUM_BINS = round(180.0 / BIN_WIDTH)
# The largest difference between the reported and the exact median, in degrees.
MEDIAN_MAX_ERROR = BIN_WIDTH / 2
_VALID_NORM = 0.5


def angular_errors(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Returns the angle in degrees at every valid target pixel, flattened (float32).

    Args:
        predictions: ``[..., 3]`` predicted normals (any length; normalised here).
        targets: ``[..., 3]`` target normals of the same shape; invalid where the
            norm is ``<= 0.5`` or non-finite.

    Raises:
        DataError: on mismatched shapes, a last axis other than 3, or non-finite
            predictions at valid pixels.
    """
    predictions = np.asarray(predictions)
    targets = np.asarray(targets)
    if predictions.shape != targets.shape or predictions.ndim < 1 or predictions.shape[-1] != 3:
        raise DataError(
            f"normals predictions and targets must have equal [N, H, W, 3] shapes. Received: "
            f"predictions {predictions.shape} vs targets {targets.shape}."
        )
    pred = predictions.astype(np.float32, copy=False)
    target = targets.astype(np.float32, copy=False)
    px, py, pz = pred[..., 0], pred[..., 1], pred[..., 2]
    tx, ty, tz = target[..., 0], target[..., 1], target[..., 2]
    with np.errstate(invalid="ignore", over="ignore"):
        target_sq_norm = tx * tx + ty * ty + tz * tz
        valid = np.isfinite(target_sq_norm) & (target_sq_norm > _VALID_NORM**2)
        # atan2(|p x t|, p . t) is the angle between p and t whatever their lengths,
        # and unlike arccos of a normalised dot product it stays accurate near 0°
        # and 180° in float32 (within ~1e-4° of a float64 computation).
        cross_x = py * tz - pz * ty
        cross_y = pz * tx - px * tz
        cross_z = px * ty - py * tx
        cross = np.sqrt(cross_x * cross_x + cross_y * cross_y + cross_z * cross_z)[valid]
        dot = (px * tx + py * ty + pz * tz)[valid]
    if not (np.all(np.isfinite(cross)) and np.all(np.isfinite(dot))):
        bad = int(np.count_nonzero(~(np.isfinite(cross) & np.isfinite(dot))))
        raise DataError(
            f"normals predictions are NaN, infinite or huge (> 1e18) on {bad} valid "
            f"pixel(s); the model diverged or its output is not a normal map."
        )
    angles = np.degrees(np.arctan2(cross, dot))
    # A zero prediction has no direction: score it 90° rather than a perfect 0°.
    angles[(cross == 0) & (dot == 0)] = 90.0
    return angles


class NormalsAccumulator:
    """Streams batches into an angle histogram plus exact sums and counts.

    Example:
        >>> acc = NormalsAccumulator()
        >>> acc.update(np.array([[[0.0, 0, 1]]]), np.array([[[0.0, 0, 1]]]))
        >>> acc.result()["normals/within_11.25"]
        1.0
    """

    def __init__(self) -> None:
        self.reset()

    def update(self, predictions: np.ndarray, targets: np.ndarray) -> None:
        """Adds one batch of predicted and target normals (``[N, H, W, 3]``)."""
        angles = angular_errors(predictions, targets)
        bins = np.minimum((angles / BIN_WIDTH).astype(np.int64), NUM_BINS - 1)
        self.histogram += np.bincount(bins, minlength=NUM_BINS)
        self.count += angles.size
        self.angle_sum += float(np.sum(angles, dtype=np.float64))
        for index, threshold in enumerate(THRESHOLDS):
            self.within[index] += int(np.count_nonzero(angles < threshold))

    def _median(self) -> float:
        cumulative = np.cumsum(self.histogram)
        lower, upper = (self.count - 1) // 2, self.count // 2
        bins = np.searchsorted(cumulative, [lower + 1, upper + 1], side="left")
        return float(np.mean((bins + 0.5) * BIN_WIDTH))

    def result(self) -> dict[str, float]:
        """Returns the metrics over every valid pixel seen since the last reset.

        Raises:
            DataError: if no valid target normal was seen.
        """
        if self.count == 0:
            raise DataError(
                "normals metrics saw no valid pixel: every target normal is zero or "
                "non-finite. Check the normal labels and the split."
            )
        return {
            MEAN_ANGLE: self.angle_sum / self.count,
            MEDIAN_ANGLE: self._median(),
            WITHIN_11: self.within[0] / self.count,
            WITHIN_22: self.within[1] / self.count,
            WITHIN_30: self.within[2] / self.count,
        }

    def reset(self) -> None:
        """Forgets every batch seen so far."""
        self.histogram = np.zeros(NUM_BINS, np.int64)
        self.count = 0
        self.angle_sum = 0.0
        self.within = [0, 0, 0]
