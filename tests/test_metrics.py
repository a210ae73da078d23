"""ka_tf.metrics against hand-computed cases, streaming vs one-shot, and bad input."""

import math
import time

import numpy as np
import pytest

from ka_tf.errors import ConfigError, DataError
from ka_tf.metrics import (
    DenseMetrics,
    compute_metrics,
    format_markdown_table,
    format_table,
    metric_names,
    relative_change,
)
from ka_tf.metrics.normals import MEDIAN_MAX_ERROR, NormalsAccumulator, angular_errors

# --- semseg -------------------------------------------------------------------


def _semseg_case():
    # Valid (target, prediction) pairs: (0,0) (0,1) (1,1) (1,1) (2,2) (2,0); the two
    # 255 pixels have predictions 2 and 0 that must count nowhere.
    targets = np.array([[[0, 0, 1, 255], [1, 2, 2, 255]]], np.uint8)
    predictions = np.array([[[0, 1, 1, 2], [1, 2, 0, 0]]], np.int64)
    return predictions, targets


def test_semseg_hand_computed_with_ignore_pixels():
    predictions, targets = _semseg_case()
    result = compute_metrics({"semseg": predictions}, {"semseg": targets}, num_classes=3)
    assert list(result) == ["semseg/miou", "semseg/pixel_acc", "semseg/mean_acc"]
    # Confusion [[1,1,0],[0,2,0],[1,0,1]]: IoU 1/3, 2/3, 1/2; recall 1/2, 1, 1/2.
    assert result["semseg/pixel_acc"] == pytest.approx(4 / 6)
    assert result["semseg/miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert result["semseg/mean_acc"] == pytest.approx(2 / 3)


def test_semseg_empty_class_left_out_of_the_mean():
    predictions, targets = _semseg_case()
    # Class 3 is neither in the targets nor predicted: same numbers as with 3 classes.
    five = compute_metrics({"semseg": predictions}, {"semseg": targets}, num_classes=5)
    three = compute_metrics({"semseg": predictions}, {"semseg": targets}, num_classes=3)
    assert five == three


def test_semseg_predicted_but_absent_class_counts_in_miou_not_mean_acc():
    targets = np.array([[[0, 0, 1, 1]]], np.uint8)
    predictions = np.array([[[0, 2, 1, 1]]], np.int32)
    result = compute_metrics({"semseg": predictions}, {"semseg": targets}, num_classes=3)
    # IoU: class 0 = 1/2, class 1 = 1, class 2 = 0/1 (a false positive only).
    assert result["semseg/miou"] == pytest.approx(0.5)
    # Recall over classes present in the targets (0 and 1) only.
    assert result["semseg/mean_acc"] == pytest.approx(0.75)
    assert result["semseg/pixel_acc"] == pytest.approx(0.75)


def test_semseg_bad_input_raises():
    predictions, targets = _semseg_case()
    with pytest.raises(DataError, match=r"differ in shape.*\(1, 2, 3\).*\(1, 2, 4\)"):
        compute_metrics({"semseg": predictions[..., :3]}, {"semseg": targets}, 3)
    with pytest.raises(DataError, match="look like logits"):
        logits = np.zeros((1, 2, 4, 3), np.float32)
        compute_metrics({"semseg": logits}, {"semseg": targets}, 3)
    with pytest.raises(DataError, match=r"integer class ids.*float32"):
        compute_metrics({"semseg": predictions.astype(np.float32)}, {"semseg": targets}, 3)
    bad_targets = targets.copy()
    bad_targets[0, 0, 0] = 7
    with pytest.raises(DataError, match="targets contain class id 7 but num_classes=3"):
        compute_metrics({"semseg": predictions}, {"semseg": bad_targets}, 3)
    bad_predictions = predictions.copy()
    bad_predictions[0, 1, 3] = 3  # out of range even on an ignored pixel
    with pytest.raises(DataError, match="predictions contain class id 3 but num_classes=3"):
        compute_metrics({"semseg": bad_predictions}, {"semseg": targets}, 3)
    with pytest.raises(DataError, match="negative class id"):
        compute_metrics({"semseg": predictions - 1}, {"semseg": targets}, 3)
    with pytest.raises(ConfigError, match="need num_classes"):
        compute_metrics({"semseg": predictions}, {"semseg": targets})
    with pytest.raises(ConfigError, match="num_classes=255"):
        compute_metrics({"semseg": predictions}, {"semseg": targets}, 255)
    with pytest.raises(DataError, match="no valid pixel"):
        compute_metrics({"semseg": predictions}, {"semseg": np.full_like(targets, 255)}, 3)


# --- depth --------------------------------------------------------------------


def test_depth_hand_computed_with_invalid_pixels():
    # Valid: t = 1, 2, 4 (0 and NaN are invalid, whatever the prediction there).
    targets = np.array([[[1.0, 2.0, 4.0, 0.0, np.nan]]], np.float32)
    predictions = np.array([[[1.1, 1.5, 8.0, 5.0, 3.0]]], np.float32)
    result = compute_metrics({"depth": predictions}, {"depth": targets})
    assert list(result) == [
        "depth/abs_rel",
        "depth/sq_rel",
        "depth/rmse",
        "depth/rmse_log",
        "depth/log10",
        "depth/delta1",
        "depth/delta2",
        "depth/delta3",
    ]
    expected = {
        "depth/abs_rel": (0.1 / 1 + 0.5 / 2 + 4 / 4) / 3,
        "depth/sq_rel": (0.01 / 1 + 0.25 / 2 + 16 / 4) / 3,
        "depth/rmse": math.sqrt((0.01 + 0.25 + 16) / 3),
        "depth/rmse_log": math.sqrt(
            (math.log(1.1) ** 2 + math.log(0.75) ** 2 + math.log(2.0) ** 2) / 3
        ),
        "depth/log10": (math.log10(1.1) + abs(math.log10(0.75)) + math.log10(2.0)) / 3,
        # worst ratios 1.1, 1.333, 2.0 against 1.25, 1.5625, 1.953125
        "depth/delta1": 1 / 3,
        "depth/delta2": 2 / 3,
        "depth/delta3": 2 / 3,
    }
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, rel=1e-6), key


def test_depth_clamps_predictions_and_max_depth_masks_targets():
    targets = np.array([[2.0, 2.0, 6.0]], np.float32)
    predictions = np.array([[-1.0, 5.0, 6.0]], np.float32)
    plain = compute_metrics({"depth": predictions}, {"depth": targets}, min_depth=0.5)
    # Predictions clamped to 0.5 (from -1): errors |0.5-2|, |5-2|, 0.
    assert plain["depth/rmse"] == pytest.approx(math.sqrt((1.5**2 + 3**2) / 3))
    capped = compute_metrics(
        {"depth": predictions}, {"depth": targets}, min_depth=0.5, max_depth=3.0
    )
    # Target 6 > 3 is left out; prediction 5 is clamped to 3.
    assert capped["depth/rmse"] == pytest.approx(math.sqrt((1.5**2 + 1**2) / 2))
    assert capped["depth/abs_rel"] == pytest.approx((1.5 / 2 + 1 / 2) / 2)


def test_depth_bad_input_raises():
    targets = np.ones((1, 2, 3), np.float32)
    with pytest.raises(DataError, match=r"differ in shape.*\(1, 2, 3, 1\)"):
        compute_metrics({"depth": np.ones((1, 2, 3, 1))}, {"depth": targets})
    nan_prediction = np.ones((1, 2, 3), np.float32)
    nan_prediction[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN or infinite on 1 valid pixel"):
        compute_metrics({"depth": nan_prediction}, {"depth": targets})
    masked = targets.copy()
    masked[0, 0, 0] = 0.0  # the NaN prediction is now on an invalid pixel: fine
    assert compute_metrics({"depth": nan_prediction}, {"depth": masked})["depth/rmse"] == 0.0
    with pytest.raises(ConfigError, match="positive min_depth"):
        compute_metrics({"depth": targets}, {"depth": targets}, min_depth=0.0)
    with pytest.raises(ConfigError, match="max_depth"):
        compute_metrics({"depth": targets}, {"depth": targets}, min_depth=1.0, max_depth=0.5)
    with pytest.raises(DataError, match="no valid pixel"):
        compute_metrics({"depth": targets}, {"depth": np.zeros_like(targets)})


# --- normals ------------------------------------------------------------------


def _unit(degrees: float) -> list[float]:
    radians = math.radians(degrees)
    return [math.sin(radians), 0.0, math.cos(radians)]


def test_normals_angles_at_0_90_180_and_between():
    up = [0.0, 0.0, 1.0]
    targets = np.array([[[up, up, up, up, up, up, [0, 0, 0], [0, 0.4, 0]]]], np.float32)
    predictions = np.array(
        [
            [
                [
                    [0.0, 0.0, 2.0],  # 0° (length does not matter)
                    _unit(10),
                    _unit(20),
                    _unit(45),
                    [1.0, 0.0, 0.0],  # 90°
                    [0.0, 0.0, -1.0],  # 180°
                    [1.0, 0.0, 0.0],  # invalid target (zero vector)
                    [0.0, 0.0, 1.0],  # invalid target (norm 0.4)
                ]
            ]
        ],
        np.float32,
    )
    angles = angular_errors(predictions, targets)
    np.testing.assert_allclose(angles, [0, 10, 20, 45, 90, 180], atol=1e-4)
    result = compute_metrics({"normals": predictions}, {"normals": targets})
    assert list(result) == [
        "normals/mean_angle",
        "normals/median_angle",
        "normals/within_11.25",
        "normals/within_22.5",
        "normals/within_30",
    ]
    assert result["normals/mean_angle"] == pytest.approx(345 / 6, abs=1e-4)
    assert result["normals/median_angle"] == pytest.approx(32.5, abs=MEDIAN_MAX_ERROR + 1e-6)
    assert result["normals/within_11.25"] == pytest.approx(2 / 6)
    assert result["normals/within_22.5"] == pytest.approx(3 / 6)
    assert result["normals/within_30"] == pytest.approx(3 / 6)


def test_normals_small_angles_are_accurate_and_zero_prediction_scores_90():
    targets = np.array([[[[0.0, 0.0, 1.0]] * 2]], np.float32)
    predictions = np.array([[[_unit(0.001), [0.0, 0.0, 0.0]]]], np.float32)
    np.testing.assert_allclose(angular_errors(predictions, targets), [0.001, 90.0], atol=1e-5)


def test_normals_histogram_median_within_stated_error():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(3, 16, 16, 3)).astype(np.float32)
    predictions = targets + rng.normal(scale=0.5, size=targets.shape).astype(np.float32)
    accumulator = NormalsAccumulator()
    accumulator.update(predictions, targets)
    exact = np.median(angular_errors(predictions, targets).astype(np.float64))
    assert abs(accumulator.result()["normals/median_angle"] - exact) <= MEDIAN_MAX_ERROR + 1e-9


def test_normals_bad_input_raises():
    targets = np.ones((1, 2, 2, 3), np.float32)
    with pytest.raises(DataError, match=r"\[N, H, W, 3\].*\(1, 2, 2, 2\)"):
        compute_metrics({"normals": np.ones((1, 2, 2, 2))}, {"normals": targets[..., :2]})
    with pytest.raises(DataError, match="equal"):
        compute_metrics({"normals": np.ones((1, 2, 3, 3))}, {"normals": targets})
    predictions = targets.copy()
    predictions[0, 1, 1, 2] = np.inf
    with pytest.raises(DataError, match="NaN, infinite"):
        compute_metrics({"normals": predictions}, {"normals": targets})
    with pytest.raises(DataError, match="no valid pixel"):
        compute_metrics({"normals": targets}, {"normals": np.zeros_like(targets)})


# --- streaming, task selection ------------------------------------------------


def _random_dataset(rng, n=6, h=8, w=12, num_classes=4):
    targets = {
        "semseg": rng.integers(0, num_classes, (n, h, w)).astype(np.uint8),
        "depth": rng.uniform(0.5, 10, (n, h, w)).astype(np.float32),
        "normals": rng.normal(size=(n, h, w, 3)).astype(np.float32),
        "image": rng.integers(0, 256, (n, h, w, 3)).astype(np.uint8),
    }
    targets["semseg"][:, :2] = 255
    targets["depth"][:, -1] = 0.0
    targets["normals"][:, :, :1] = 0.0
    predictions = {
        "semseg": rng.integers(0, num_classes, (n, h, w)),
        "depth": targets["depth"] * rng.uniform(0.7, 1.4, (n, h, w)).astype(np.float32),
        "normals": targets["normals"] + rng.normal(size=(n, h, w, 3)).astype(np.float32),
    }
    return predictions, targets


def test_streaming_equals_one_shot():
    predictions, targets = _random_dataset(np.random.default_rng(1))
    one_shot = compute_metrics(predictions, targets, num_classes=4)
    assert list(one_shot) == list(metric_names())
    streaming = DenseMetrics(num_classes=4)
    for start in (0, 1, 4):  # uneven batches: 1, 3, 2 images
        stop = {0: 1, 1: 4, 4: 6}[start]
        streaming.update(
            {k: v[start:stop] for k, v in predictions.items()},
            {k: v[start:stop] for k, v in targets.items()},
        )
    assert streaming.tasks == ("semseg", "depth", "normals")
    result = streaming.result()
    assert list(result) == list(one_shot)
    for key in one_shot:
        assert result[key] == pytest.approx(one_shot[key], rel=1e-9, abs=1e-12), key
    streaming.reset()
    with pytest.raises(DataError, match="no batch was evaluated"):
        streaming.result()


def test_dense_metrics_task_selection_and_errors():
    predictions, targets = _random_dataset(np.random.default_rng(2))
    depth_only = compute_metrics({"depth": predictions["depth"]}, targets)
    assert all(key.startswith("depth/") for key in depth_only) and len(depth_only) == 8
    metrics = DenseMetrics(num_classes=4)
    metrics.update(predictions, targets)
    with pytest.raises(DataError, match="predictions lack task 'normals'"):
        metrics.update({"semseg": predictions["semseg"], "depth": predictions["depth"]}, targets)
    with pytest.raises(DataError, match=r"unknown keys \['edges'\]"):
        compute_metrics({"edges": predictions["depth"]}, targets)
    with pytest.raises(DataError, match="no task to evaluate"):
        compute_metrics({"depth": predictions["depth"]}, {"semseg": targets["semseg"]})
    with pytest.raises(ConfigError, match="tasks=\\['edges'\\]"):
        DenseMetrics(tasks=["edges"])
    explicit = DenseMetrics(tasks=["depth"])
    explicit.update(predictions, targets)  # extra prediction tasks are not evaluated
    assert list(explicit.result()) == list(depth_only)


def test_speed_of_a_realistic_stream():
    rng = np.random.default_rng(3)
    n, h, w = 16, 128, 256
    predictions, targets = _random_dataset(rng, n=n, h=h, w=w, num_classes=19)
    metrics = DenseMetrics(num_classes=19)
    start = time.perf_counter()
    for _ in range(100 // n + 1):  # ~100+ images of 128x256, all three tasks
        metrics.update(predictions, targets)
    elapsed = time.perf_counter() - start
    metrics.result()
    # Measured ~0.5 s here for ~100 images; the bound leaves room for a loaded machine.
    assert elapsed < 10.0, elapsed


# --- headline and tables ------------------------------------------------------


def test_relative_change_sign_corrected():
    student = {"semseg/miou": 0.55, "depth/rmse": 0.6, "depth/abs_rel": 0.2, "other": 3.0}
    teacher = {"semseg/miou": 0.5, "depth/rmse": 0.75, "depth/abs_rel": 0.25, "other": 1.0}
    change = relative_change(student, teacher)
    assert change["semseg/miou"] == pytest.approx(0.1)
    assert change["depth/rmse"] == pytest.approx(0.2)  # lower rmse: better, positive
    assert change["depth/abs_rel"] == pytest.approx(0.2)
    assert "other" not in change
    assert change["delta_m"] == pytest.approx(0.5 / 3)
    assert change["delta_m_tasks"] == pytest.approx(0.15)  # miou and rmse only
    worse = relative_change({"normals/mean_angle": 22.0}, {"normals/mean_angle": 20.0})
    assert worse["delta_m"] == pytest.approx(-0.1)
    with pytest.raises(DataError, match="non-zero teacher"):
        relative_change({"semseg/miou": 0.5}, {"semseg/miou": 0.0})
    with pytest.raises(DataError, match="share no known metric"):
        relative_change({"semseg/miou": 0.5}, {"depth/rmse": 0.5})


def test_format_table_and_markdown():
    rows = {
        "teacher": {"semseg/miou": 0.5, "depth/rmse": 0.75},
        "student-long-name": {"semseg/miou": 0.55, "params": 1234.0},
    }
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["model", "semseg/miou", "↑", "depth/rmse", "↓", "params"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["teacher", "0.5000", "0.7500", "-"]
    assert lines[3].split() == ["student-long-name", "0.5500", "-", "1234.0000"]
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule align
    assert format_table(rows, metrics=["depth/rmse"], digits=2).splitlines()[2].split() == [
        "teacher",
        "0.75",
    ]
    markdown = format_markdown_table(rows).splitlines()
    assert markdown[0] == "| model | semseg/miou ↑ | depth/rmse ↓ | params |"
    assert markdown[1] == "| --- | ---: | ---: | ---: |"
    assert markdown[3] == "| student-long-name | 0.5500 | - | 1234.0000 |"


def test_class_scores_per_class_iou_and_shares():
    from ka_tf.metrics.semseg import class_scores, metrics_from_confusion

    # rows: target class, columns: predicted; class 2 neither occurs nor is predicted.
    matrix = np.array([[6, 2, 0], [1, 1, 0], [0, 0, 0]])
    scores = class_scores(matrix)
    np.testing.assert_allclose(scores["iou"][:2], [6 / 9, 1 / 4])
    assert np.isnan(scores["iou"][2])
    np.testing.assert_allclose(scores["share"], [0.8, 0.2, 0.0])
    np.testing.assert_allclose(scores["predicted_share"], [0.7, 0.3, 0.0])
    assert np.nanmean(scores["iou"]) == pytest.approx(metrics_from_confusion(matrix)["semseg/miou"])
