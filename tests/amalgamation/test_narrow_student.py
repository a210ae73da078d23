"""A student of its own width: 1×1 adaptors in its block-wise gates, channel-sliced
branches, the size budget, and the narrow student's export.

The teachers are 1/16 width (4…32 channels); the student 1/32 (4…16: the 4-channel
floor keeps down1 whole, every other block is half as wide), so the adaptors map
C_s ≠ C_t at blocks 0..3 and are absent at block 4, where both have 4 channels.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.amalgamation.amalgamator import Amalgamator, build_coders
from ka_tf.amalgamation.branching import choose_branch_points
from ka_tf.amalgamation.student_builder import (
    assemble_student,
    build_blockwise_student,
    inherit_weights,
    student_param_counter,
)
from ka_tf.errors import ConfigError
from ka_tf.losses import build_loss
from ka_tf.models import SegNet
from ka_tf.models.channel_coding import ChannelCoding
from tests.helpers import he_init_convs

IMAGES = np.random.default_rng(2).uniform(0, 255, size=(2, 32, 64, 3)).astype("float32")
TEACHER_WIDTH, STUDENT_WIDTH = 1 / 16, 1 / 32


@pytest.fixture(scope="module")
def teachers():
    return {
        "semseg": he_init_convs(SegNet("semseg", num_classes=5, width_multiplier=TEACHER_WIDTH), 0),
        "depth": he_init_convs(SegNet("depth", width_multiplier=TEACHER_WIDTH), 1),
    }


@pytest.fixture(scope="module")
def narrow(teachers):
    student = build_blockwise_student(teachers, init_from="semseg", width_multiplier=STUDENT_WIDTH)
    coders = build_coders(
        student.candidate_channels(),
        tuple(teachers),
        teacher_channels={t: m.candidate_channels(t) for t, m in teachers.items()},
    )
    return student, coders


def _losses():
    return {
        "semseg": build_loss("semseg", "kl", temperature=1.0),
        "depth": build_loss("depth", "log_l1"),
    }


def test_the_adaptor_maps_the_students_channels_to_the_teachers():
    gate = ChannelCoding(8, out_channels=24)
    x = tf.random.normal((2, 4, 6, 8))
    y = gate(x)
    assert tuple(y.shape) == (2, 4, 6, 24)
    assert gate.compute_output_shape((2, 4, 6, 8)) == (2, 4, 6, 24)
    # At initialisation the gate is the identity and the adaptor the identity
    # embedding: student channel i lands on teacher channel i, the rest are zero.
    np.testing.assert_allclose(y[..., :8], x, atol=1e-6)
    np.testing.assert_array_equal(y[..., 8:], 0.0)
    clone = ChannelCoding.from_config(gate.get_config())
    clone.build((None, None, None, 8))
    clone.set_weights(gate.get_weights())
    np.testing.assert_allclose(clone(x), y, atol=1e-6)
    assert len(gate.gate_weights()) == 4 and len(gate.get_weights()) == 5
    # Same width: no adaptor, and the gate weights are all the weights.
    plain = ChannelCoding(8)
    plain.build((None, None, None, 8))
    assert plain.adaptor is None and len(plain.get_weights()) == 4


def test_inherit_weights_copies_the_leading_channels():
    wide = keras.layers.Conv2D(8, 3)
    wide.build((None, None, None, 6))
    small = keras.layers.Conv2D(4, 3)
    small.build((None, None, None, 3))
    assert inherit_weights(small, wide) is False
    np.testing.assert_array_equal(small.kernel.numpy(), wide.kernel.numpy()[:, :, :3, :4])
    same = keras.layers.Conv2D(8, 3)
    same.build((None, None, None, 6))
    assert inherit_weights(same, wide) is True
    np.testing.assert_array_equal(same.kernel.numpy(), wide.kernel.numpy())


def test_the_narrow_student_is_sliced_from_its_init_teacher(teachers, narrow):
    student, _ = narrow
    assert student.width_multiplier == STUDENT_WIDTH
    assert student.candidate_channels() == (16, 16, 8, 4, 4)
    assert teachers["semseg"].candidate_channels("semseg") == (32, 32, 16, 8, 4)
    first = student.encoder_blocks[0].weights[0].numpy()
    theirs = teachers["semseg"].encoder_blocks[0].weights[0].numpy()
    np.testing.assert_array_equal(first, theirs[..., : first.shape[-1]])


@pytest.mark.parametrize("block", range(5))
def test_projection_through_adaptors_trains_the_student_and_the_adaptor(teachers, narrow, block):
    student, coders = narrow
    amalgamator = Amalgamator(
        student,
        teachers,
        _losses(),
        mode="blockwise",
        block=block,
        coders=coders,
        flip_average_targets=False,
    )
    targets = amalgamator.teacher_targets(IMAGES)
    variables = amalgamator.variables_to_train()
    with tf.GradientTape() as tape:
        terms = amalgamator.loss_terms(IMAGES, targets, training=True)
        total = tf.add_n(list(terms.values()))
    assert np.isfinite(float(total)) and float(total) > 0
    gradients = dict(zip([v.path for v in variables], tape.gradient(total, variables), strict=True))
    encoder_first = student.encoder_blocks[0].weights[0].path
    assert float(tf.reduce_sum(tf.abs(gradients[encoder_first]))) > 0
    for task in teachers:
        adaptor = coders[task][block].adaptor
        if block == 4:  # 4 channels on both sides: no adaptor
            assert adaptor is None
            continue
        grad = gradients[adaptor.kernel.path]
        assert grad.shape == adaptor.kernel.shape
        assert float(tf.reduce_sum(tf.abs(grad))) > 0, (task, block)
    # The frozen teachers are not among the trained variables.
    teacher_ids = {id(v) for t in teachers.values() for v in t.weights}
    assert not teacher_ids & {id(v) for v in variables}


def test_gates_without_adaptors_are_a_clear_error(teachers, narrow):
    student, _ = narrow
    with pytest.raises(ConfigError, match=r"maps 16 to 16 channels.*teacher's 32"):
        Amalgamator(
            student,
            teachers,
            _losses(),
            mode="blockwise",
            block=0,
            coders=build_coders(student.candidate_channels(), tuple(teachers)),
        )


def test_a_width_no_adaptor_can_serve_is_a_clear_error(teachers):
    with pytest.raises(ConfigError, match=r"student_width_multiplier=0\b.*None for the teachers"):
        build_blockwise_student(teachers, width_multiplier=0)


def test_assembled_narrow_student_keeps_the_gates_and_slices_the_branches(teachers, narrow):
    blockwise, coders = narrow
    rng = np.random.default_rng(3)
    trained_gate = coders["depth"][2]
    trained_gate.set_weights(
        [rng.normal(0, 0.5, w.shape).astype(w.dtype) for w in trained_gate.get_weights()]
    )
    student = assemble_student(blockwise, coders, teachers, {"semseg": 3, "depth": 2})
    assert student.width_multiplier == STUDENT_WIDTH
    for mine, theirs in zip(
        student.coders["depth"].get_weights(), trained_gate.gate_weights(), strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)
    head = student.heads["semseg"].weights[0].numpy()
    teacher_head = teachers["semseg"].heads["semseg"].weights[0].numpy()
    np.testing.assert_array_equal(head, teacher_head[..., : head.shape[-2], :])
    outputs = student(IMAGES)
    assert outputs["semseg"].shape == (2, 32, 64, 5) and outputs["depth"].shape == (2, 32, 64)
    # The parameter count the size budget reads is the built student's.
    assert student_param_counter(blockwise)({"semseg": 3, "depth": 2}) == student.count_params()


def test_the_size_budget_is_reachable_only_with_a_narrower_student(teachers, narrow):
    total = sum(t.count_params() for t in teachers.values())
    losses = {"semseg": [1.0] * 5, "depth": [1.0] * 5}
    same = student_param_counter(build_blockwise_student(teachers))
    with pytest.raises(ConfigError, match=r"smallest reachable student is 0\.5\d\dx"):
        choose_branch_points(losses, max_params_ratio=0.5, params_ratio=lambda p: same(p) / total)
    count = student_param_counter(narrow[0])
    points = choose_branch_points(
        losses, tolerance=0.0, max_params_ratio=0.5, params_ratio=lambda p: count(p) / total
    )
    assert count(points) / total <= 0.5


@pytest.mark.slow  # ~20 s: SavedModel + TFLite conversion
def test_the_narrow_student_exports_with_parity(teachers, narrow, tmp_path):
    from ka_tf.export import export_model

    blockwise, coders = narrow
    student = assemble_student(blockwise, coders, teachers, {"semseg": 3, "depth": 2})
    images = IMAGES.astype("uint8")
    report = export_model(
        student,
        str(tmp_path / "out"),
        formats=("saved_model", "tflite"),
        parity_images=images,
        image_size=(32, 64),
    )
    for path, entry in report["artifacts"].items():
        assert max(entry["max_rel_diff"].values()) <= 1e-4, path
