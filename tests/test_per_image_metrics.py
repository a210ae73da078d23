"""Per-image statistics pool back to exactly the streaming metrics, on any subset."""

import numpy as np
import pytest

from ka_tf.metrics import DenseMetrics
from ka_tf.metrics.per_image import image_statistics, pooled_metrics


def _batch(task, rng, n=5):
    if task == "semseg":
        target = rng.integers(0, 4, (n, 6, 8)).astype(np.uint8)
        target[:, 0, :2] = 255  # ignored pixels
        return rng.integers(0, 4, (n, 6, 8)).astype(np.int32), target
    if task == "depth":
        target = rng.uniform(1, 50, (n, 6, 8)).astype(np.float32)
        target[:, 0, 0] = 0  # invalid
        return target * rng.uniform(0.7, 1.4, target.shape).astype(np.float32), target
    normals = rng.normal(size=(2, n, 6, 8, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return normals[0], normals[1]


@pytest.mark.parametrize("task", ["semseg", "depth", "normals"])
def test_pooled_rows_equal_the_streaming_metrics(task):
    rng = np.random.default_rng(0)
    predictions, targets = _batch(task, rng)
    kwargs = {"num_classes": 4} if task == "semseg" else {}
    rows = image_statistics(task, predictions, targets, max_depth=40.0, **kwargs)
    assert rows.shape[0] == 5
    for subset in ([0, 1, 2, 3, 4], [0, 0, 3], [4]):
        metrics = DenseMetrics(num_classes=4, tasks=[task], max_depth=40.0)
        metrics.update({task: predictions[subset]}, {task: targets[subset]})
        expected = metrics.result()
        got = pooled_metrics(task, rows[subset].sum(axis=0))
        assert got.keys() == expected.keys()
        np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-9)
