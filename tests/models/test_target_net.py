"""TargetNet student: branching, parameter counts, splitting, serialization."""

import numpy as np
import pytest

from ka_tf.errors import ConfigError
from ka_tf.models import SegNet, TargetNet
from tests import helpers

IMAGES = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 64, 3)).astype("float32")
TASKS = ("semseg", "depth")


def tiny(points, **kwargs):
    return TargetNet(TASKS, num_classes=4, branch_points=points, width_multiplier=1 / 16, **kwargs)


def test_outputs_per_task():
    outputs = tiny({"semseg": 3, "depth": 1})(IMAGES)
    assert sorted(outputs) == ["depth", "semseg"]
    assert outputs["semseg"].shape == (2, 32, 64, 4)
    assert outputs["depth"].shape == (2, 32, 64)


def test_deeper_branching_means_fewer_parameters():
    counts = [tiny({"semseg": b, "depth": b}).count_params() for b in range(5)]
    assert counts == sorted(counts, reverse=True)
    teachers = sum(SegNet(t, num_classes=4, width_multiplier=1 / 16).count_params() for t in TASKS)
    assert counts[0] < teachers  # even the shallowest branch shares the encoder


def test_trunk_is_as_long_as_the_deepest_branch():
    model = tiny({"semseg": 3, "depth": 1})
    assert len(model.trunk_blocks) == 3
    assert len(model.branches["semseg"]) == 2 and len(model.branches["depth"]) == 4


@pytest.mark.parametrize("points", [{"semseg": 2, "depth": 0}, {"semseg": 4, "depth": 4}])
def test_decode_from_reproduces_outputs(points):
    model = helpers.he_init_convs(tiny(points))
    # Gates that are not the identity (their initial state), so that decode_from
    # missing a gate, or applying one twice, changes the output.
    rng = np.random.default_rng(3)
    for coder in model.coders.values():
        coder.set_weights([rng.normal(0, 1, w.shape).astype(w.dtype) for w in coder.get_weights()])
    full = model(IMAGES)
    identity = tiny(points)
    identity.set_weights(model.get_weights())
    for coder in identity.coders.values():
        coder.set_weights([np.zeros_like(w) for w in coder.get_weights()])
    assert all(
        np.abs(np.asarray(identity(IMAGES)[task]) - np.asarray(full[task])).max() > 1e-4
        for task in TASKS
    ), "the perturbed gates do not change the outputs: the test could not catch a lost gate"
    inter = model.forward_intermediates(IMAGES)
    for task in TASKS:
        np.testing.assert_allclose(inter["outputs"][task], full[task], atol=1e-5)
        for start in range(5):
            feature = inter["candidates"][task][start]
            part = model.decode_from(feature, inter["side"], start, task=task)
            np.testing.assert_allclose(part, full[task], atol=1e-5)


def test_bad_branch_points():
    with pytest.raises(ConfigError, match=r"branch_point=7.*Expected one of \(0, 1, 2, 3, 4\)"):
        tiny({"semseg": 7, "depth": 1})
    with pytest.raises(ConfigError, match="must name every task"):
        tiny({"semseg": 1})


def test_config_roundtrip_and_save_load(tmp_path):
    model = tiny({"semseg": 3, "depth": 1})
    helpers.run_config_roundtrip(model, IMAGES)
    restored = helpers.run_save_load(model, IMAGES, str(tmp_path))
    assert restored.branch_points == {"semseg": 3, "depth": 1}
