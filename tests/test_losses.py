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


def test_unknown_loss_names_choices():
    with pytest.raises(ConfigError, match=r"name='l3'.*silog"):
        build_loss("depth", "l3")
