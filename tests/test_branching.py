"""The branch-point rule: deepest block within tolerance of the best, decoder-only by default."""

import pytest

from ka_tf.amalgamation.branching import choose_branch_points
from ka_tf.errors import ConfigError, TrainingError


def test_deepest_within_tolerance():
    losses = {"semseg": [0.10, 0.10, 0.104, 0.109, 0.20], "depth": [0.05, 0.30, 0.31, 0.40, 0.50]}
    assert choose_branch_points(losses, tolerance=0.1) == {"semseg": 3, "depth": 2}


def test_min_index_excludes_encoder_and_zero_tolerance_picks_best():
    losses = {"depth": [0.01, 0.2, 0.1, 0.3, 0.4]}
    assert choose_branch_points(losses, tolerance=0.0, min_index=1) == {"depth": 2}
    assert choose_branch_points(losses, tolerance=0.0, min_index=0) == {"depth": 0}


def test_bad_arguments():
    with pytest.raises(ConfigError, match="min_index=5"):
        choose_branch_points({"depth": [1] * 5}, min_index=5)
    with pytest.raises(ConfigError, match="expected 5 block losses"):
        choose_branch_points({"depth": [1, 2]})


def test_losses_a_hair_below_zero_still_choose_a_block():
    # A KL between near-identical softmaxes can round to -3e-8 (seen in CI).
    losses = {"semseg": [-3.4e-08, -3.0e-08, -3.3e-08, -2.0e-08, 1e-3]}
    assert choose_branch_points(losses, tolerance=0.1) == {"semseg": 2}


def test_non_finite_loss_is_a_training_error():
    with pytest.raises(TrainingError, match="depth: a block-wise projection loss is not finite"):
        choose_branch_points({"depth": [0.1, float("nan"), 0.2, 0.3, 0.4]})
