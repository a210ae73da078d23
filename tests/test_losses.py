"""Loss terms against hand-computed values, masks included."""

import math

import numpy as np
import pytest

from ka_tf.errors import ConfigError
from ka_tf.losses import build_loss


def test_semseg_ce_ignores_255():
    logits = np.zeros((1, 1, 2, 3), "float32")
    logits[0, 0, 0] = [2.0, 0.0, 0.0]
    labels = np.array([[[0, 255]]], "uint8")
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert float(build_loss("semseg", "ce")(labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_kl_zero_for_equal_logits_and_positive_otherwise():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 4, 5)).astype("float32")
    kl = build_loss("semseg", "kl", temperature=2.0)
    assert float(kl(logits, logits)) == pytest.approx(0.0, abs=1e-6)
    p, q = np.array([0.7, 0.3]), np.array([0.5, 0.5])
    teacher = np.log(p).reshape(1, 1, 1, 2).astype("float32") * 2.0  # softmax(x/T) = p at T = 2
    student = np.log(q).reshape(1, 1, 1, 2).astype("float32") * 2.0
    expected = float(np.sum(p * np.log(p / q))) * 4.0
    assert float(kl(teacher, student)) == pytest.approx(expected, rel=1e-4)


def test_hard_ce_uses_teacher_argmax():
    teacher = np.array([[[[0.0, 5.0]]]], "float32")
    student = np.array([[[[0.0, 0.0]]]], "float32")
    assert float(build_loss("semseg", "hard_ce")(teacher, student)) == pytest.approx(math.log(2))


def test_balanced_class_weights_are_median_frequency_to_a_power_at_unit_mean():
    from ka_tf.losses.semseg_losses import balanced_class_weights

    counts = np.array([600.0, 300.0, 100.0, 0.0])  # shares 0.6, 0.3, 0.1; class 3 never seen
    assert balanced_class_weights(counts, 0.0) == pytest.approx([1.0, 1.0, 1.0, 0.0])
    full = balanced_class_weights(counts, 1.0)
    # Median-frequency: w_c proportional to median/f_c = 0.3/f_c, scaled so sum f_c w_c = 1.
    raw = np.array([0.5, 1.0, 3.0])
    assert full[:3] == pytest.approx(raw / np.dot([0.6, 0.3, 0.1], raw), rel=1e-6)
    assert full[3] == 0.0
    half = balanced_class_weights(counts, 0.5)
    assert half[2] / half[0] == pytest.approx(math.sqrt(6.0), rel=1e-6)
    assert float(np.dot([0.6, 0.3, 0.1, 0.0], half)) == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ConfigError, match=r"class_balance must be >= 0.*-1"):
        balanced_class_weights(counts, -1.0)
    with pytest.raises(ConfigError, match=r"non-negative \[C\] vector"):
        balanced_class_weights([0.0, 0.0], 1.0)


def test_class_balanced_hard_ce_weights_each_pixel_by_its_target_class():
    weights = [0.5, 2.0, 1.0]
    loss = build_loss("semseg", "hard_ce", class_weights=weights)
    logits = np.zeros((1, 1, 4, 3), "float32")
    logits[0, 0, 0] = [3.0, 0.0, 0.0]
    targets = np.array([[[0, 1, 2, 255]]], "uint8")  # the padded pixel is left out
    ce = [-math.log(math.exp(3) / (math.exp(3) + 2)), math.log(3), math.log(3)]
    expected = (0.5 * ce[0] + 2.0 * ce[1] + 1.0 * ce[2]) / 3
    assert float(loss(targets, logits)) == pytest.approx(expected, rel=1e-5)
    # The teacher's logits give the same targets through their argmax.
    teacher = np.eye(3, dtype="float32")[[0, 1, 2]][None, None] * 5.0
    assert float(loss(teacher, logits[:, :, :3])) == pytest.approx(expected, rel=1e-5)
    # Reloaded from its config, it keeps the weights.
    reloaded = type(loss).from_config(loss.get_config())
    assert float(reloaded(targets, logits)) == pytest.approx(expected, rel=1e-5)


def test_class_balance_without_measured_weights_is_an_error_not_unweighted():
    loss = build_loss("semseg", "hard_ce", class_balance=0.5)
    targets = np.array([[[0, 1]]], "uint8")
    logits = np.zeros((1, 1, 2, 2), "float32")
    with pytest.raises(ConfigError, match=r"class_balance=0.5 but no class weights.*cache_targets"):
        loss(targets, logits)
    weights = loss.set_class_frequencies([3.0, 1.0])
    assert weights[1] / weights[0] == pytest.approx(math.sqrt(3.0), rel=1e-6)  # power 0.5
    assert 0.75 * weights[0] + 0.25 * weights[1] == pytest.approx(1.0, rel=1e-6)
    assert float(loss(targets, logits)) == pytest.approx(math.log(2) * sum(weights) / 2, rel=1e-5)
    with pytest.raises(ConfigError, match=r"class_balance must be >= 0"):
        build_loss("semseg", "hard_ce", class_balance=-0.5)


def test_depth_losses_skip_invalid_pixels():
    target = np.array([[[2.0, 0.0, 4.0]]], "float32")
    pred = np.array([[[1.0, 9.0, 4.0]]], "float32")
    assert float(build_loss("depth", "l1")(target, pred)) == pytest.approx(0.5)
    assert float(build_loss("depth", "log_l1")(target, pred)) == pytest.approx(math.log(2) / 2)
    d = np.array([math.log(0.5), 0.0])
    silog = np.mean(d**2) - 0.5 * np.mean(d) ** 2
    assert float(build_loss("depth", "silog")(target, pred)) == pytest.approx(silog, rel=1e-5)
    # berHu: c = 0.2 * max|err| = 0.2; |err| = 1 > c -> (1 + 0.04) / 0.4; 0 -> 0
    assert float(build_loss("depth", "berhu")(target, pred)) == pytest.approx(2.6 / 2, rel=1e-5)


def test_normals_cosine_distance():
    target = np.array([[[[0, 0, 1], [1, 0, 0], [0, 0, 0]]]], "float32")
    pred = np.array([[[[0, 0, 1], [0, 1, 0], [1, 0, 0]]]], "float32")
    # pixel 1: 0, pixel 2: 1, pixel 3 invalid
    assert float(build_loss("normals", "cosine")(target, pred)) == pytest.approx(0.5)


def test_normals_angular_error_is_the_mean_angle_with_finite_gradients():
    target = np.array([[[[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]]]], "float32")
    tilt = math.radians(5.0)
    pred = np.array(
        [[[[0, 0, 1], [0, 1, 0], [math.sin(tilt), 0, math.cos(tilt)], [1, 0, 0]]]], "float32"
    )
    # pixels: 0, 90 and 5 degrees; the fourth is invalid (target norm 0)
    loss = build_loss("normals", "angular")
    expected = (0.0 + math.pi / 2 + tilt) / 3
    assert float(loss(target, pred)) == pytest.approx(expected, rel=1e-5)
    # Opposite vectors are pi apart (acos's domain edge, where atan2 stays exact).
    assert float(loss(target[:, :, :1], -target[:, :, :1])) == pytest.approx(math.pi, rel=1e-5)

    import tensorflow as tf

    pred_var = tf.Variable(target[:, :, :3] * 1.0)  # exactly the target: angle 0
    with tf.GradientTape() as tape:
        value = loss(target[:, :, :3], pred_var)
    gradient = tape.gradient(value, pred_var).numpy()
    assert np.all(np.isfinite(gradient))
    # At 5 degrees the angle still pulls with slope ~1 per radian; 1 - cos pulls with
    # sin(5 deg) ~ 0.087: the point of the angular loss.
    tilted = tf.Variable(pred[:, :, 2:3])
    for name, slope in (("angular", 1.0), ("cosine", math.sin(tilt))):
        with tf.GradientTape() as tape:
            value = build_loss("normals", name)(target[:, :, 2:3], tilted)
        assert float(tf.norm(tape.gradient(value, tilted))) == pytest.approx(slope, rel=1e-3)


def test_unknown_loss_names_choices():
    with pytest.raises(ConfigError, match=r"name='l3'.*silog"):
        build_loss("depth", "l3")
