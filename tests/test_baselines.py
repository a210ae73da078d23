"""Trivial constant baselines: fitted values, and their metrics equal hand-made constants."""

import numpy as np
import pytest
import tensorflow as tf

from ka_tf.baselines import fit_constant_baseline
from ka_tf.errors import ConfigError, DataError
from ka_tf.evaluation import evaluate_model
from ka_tf.metrics import compute_metrics
from tests.test_evaluation import NUM_CLASSES, tiny_arrays


def _batches(arrays, batch=2):
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch)


def test_fitted_constants_match_numpy_statistics():
    arrays = tiny_arrays(n=6)
    arrays["semseg"][0, :4] = 255  # ignored pixels do not vote
    labels = arrays["semseg"][arrays["semseg"] != 255]
    semseg = fit_constant_baseline(_batches(arrays), "semseg", NUM_CLASSES)
    assert semseg.value == int(np.bincount(labels).argmax())
    assert semseg.pixels == labels.size and "majority class" in semseg.description

    depth = arrays["depth"]
    valid = depth[np.isfinite(depth) & (depth > 0)]
    fitted = fit_constant_baseline(_batches(arrays), "depth")
    assert fitted.value == pytest.approx(float(valid.astype(np.float64).mean()), rel=1e-9)

    normals = fit_constant_baseline(_batches(arrays), "normals")
    vectors = arrays["normals"].reshape(-1, 3)
    mean = vectors[np.linalg.norm(vectors, axis=1) > 0.5].astype(np.float64).sum(0)
    np.testing.assert_allclose(normals.value, mean / np.linalg.norm(mean), rtol=1e-9)

    # Only the first max_batches batches are read (training streams are infinite).
    first = fit_constant_baseline(_batches(arrays).repeat(), "depth", max_batches=1)
    head = arrays["depth"][:2]
    assert first.value == pytest.approx(float(head[head > 0].astype(np.float64).mean()))


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("task", ["semseg", "depth", "normals"])
def test_baseline_model_scores_like_the_constant(task, policy):
    # mixed_bfloat16 is what --precision=auto picks on a CPU with bf16 instructions;
    # the baseline model was built under it by train_teacher and once failed there.
    import keras

    keras.mixed_precision.set_global_policy(policy)
    arrays = tiny_arrays(n=4)
    baseline = fit_constant_baseline(_batches(arrays), task, NUM_CLASSES)
    shape = arrays["image"].shape[:3]
    if task == "semseg":
        constant = np.full(shape, baseline.value, np.int64)
    elif task == "depth":
        constant = np.full(shape, baseline.value, np.float32)
    else:
        constant = np.broadcast_to(np.float32(baseline.value), (*shape, 3)).copy()
    expected = compute_metrics({task: constant}, arrays, NUM_CLASSES)
    result = evaluate_model(baseline.model(), _batches(arrays), tasks=[task], progress=False)
    assert result == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_baseline_errors():
    arrays = tiny_arrays(n=2)
    with pytest.raises(ConfigError, match="num_classes"):
        fit_constant_baseline(_batches(arrays), "semseg")
    with pytest.raises(ConfigError, match=r"unknown task.*'edges'.*semseg"):
        fit_constant_baseline(_batches(arrays), "edges")
    images_only = _batches({"image": arrays["image"]})
    with pytest.raises(DataError, match="no 'depth' label"):
        fit_constant_baseline(images_only, "depth")
    arrays["depth"][:] = 0.0
    with pytest.raises(DataError, match="no valid 'depth' pixel"):
        fit_constant_baseline(_batches(arrays), "depth")
