"""The branch rule's size budget, and the parameter count it relies on."""

import itertools

import pytest

from ka_tf.amalgamation.branching import choose_branch_points
from ka_tf.amalgamation.student_builder import build_blockwise_student, student_param_counter
from ka_tf.errors import ConfigError
from ka_tf.models import SegNet, TargetNet

# semseg is best at block 1 and within 10% down to 3; depth is flat.
LOSSES = {"semseg": [9.0, 1.0, 1.05, 1.08, 2.0], "depth": [1.0, 1.0, 1.0, 1.0, 1.0]}


def _ratio(points):
    # A toy size: deeper branch points share more, so the student is smaller.
    return 1.0 - 0.1 * sum(points.values())


def test_without_a_budget_the_tolerance_rule_decides():
    assert choose_branch_points(LOSSES) == {"semseg": 3, "depth": 4}


def test_a_budget_moves_the_cheapest_task_deeper():
    # {3, 4} is 0.3x; a 0.25x budget needs one more step of sharing: semseg to 4
    # would cost +100% of its loss, so nothing else fits but that.
    assert choose_branch_points(LOSSES, max_params_ratio=0.25, params_ratio=_ratio) == {
        "semseg": 4,
        "depth": 4,
    }
    # A budget the tolerance choice already meets changes nothing.
    assert choose_branch_points(LOSSES, max_params_ratio=0.5, params_ratio=_ratio) == {
        "semseg": 3,
        "depth": 4,
    }


def test_an_unreachable_budget_names_the_smallest_ratio():
    with pytest.raises(ConfigError) as error:
        choose_branch_points(LOSSES, max_params_ratio=0.1, params_ratio=_ratio)
    message = str(error.value)
    assert "smallest reachable student is 0.200x" in message
    assert "{'semseg': 4, 'depth': 4}" in message and "at least 0.200" in message


def test_a_budget_needs_a_size_function():
    with pytest.raises(ConfigError, match="needs params_ratio"):
        choose_branch_points(LOSSES, max_params_ratio=0.5)


def test_param_counter_equals_the_built_students():
    teachers = {
        "semseg": SegNet("semseg", num_classes=7, width_multiplier=1 / 16),
        "depth": SegNet("depth", width_multiplier=1 / 16),
    }
    count = student_param_counter(build_blockwise_student(teachers))
    for semseg, depth in itertools.product(range(5), [0, 2, 4]):
        points = {"semseg": semseg, "depth": depth}
        built = TargetNet(
            ("semseg", "depth"), num_classes=7, branch_points=points, width_multiplier=1 / 16
        )
        assert count(points) == built.count_params(), points
