"""Per-sample masked means: the reduction every dense loss here ends with."""

from keras import ops


def masked_mean_per_sample(values, mask):
    """Mean of ``values`` over pixels where ``mask`` is 1, per sample → [B].

    Samples without a valid pixel contribute 0.
    """
    mask = ops.cast(mask, values.dtype)
    axes = tuple(range(1, len(values.shape)))
    total = ops.sum(values * mask, axis=axes)
    count = ops.sum(mask, axis=axes)
    return total / ops.maximum(count, 1.0)
