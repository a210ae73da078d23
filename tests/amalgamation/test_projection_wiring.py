"""The block-wise projection is wired to the right block, switches and teacher.

A student initialised from the semseg teacher, with identity gates (their state at
initialisation) and no flip averaging, *is* that teacher up to every candidate
block: projecting its feature through the teacher's own remaining decoder must give
the teacher's output exactly, so the semseg projection loss is ~0 at every block at
step 0. The depth teacher is another network, so its projection loss is not. A
projection through the wrong block, the student's instead of the teacher's
switches, or a missing decoder block breaks the first equality; gates that are not
applied at all pass it, which is why the second test perturbs them. The teachers get
He-initialised kernels: at Keras' default init a deep ReLU net outputs nearly a
constant, and every projection would match.
"""

import numpy as np
import pytest

from ka_tf.amalgamation.amalgamator import Amalgamator, build_coders
from ka_tf.amalgamation.student_builder import build_blockwise_student
from ka_tf.losses import build_loss
from ka_tf.models import SegNet
from tests.helpers import he_init_convs

IMAGES = np.random.default_rng(1).uniform(0, 255, size=(2, 32, 64, 3)).astype("float32")


@pytest.fixture(scope="module")
def setup():
    teachers = {
        "semseg": he_init_convs(SegNet("semseg", num_classes=5, width_multiplier=1 / 16), 0),
        "depth": he_init_convs(SegNet("depth", width_multiplier=1 / 16), 1),
    }
    student = build_blockwise_student(teachers, init_from="semseg")
    coders = build_coders(student.candidate_channels(), tuple(teachers))
    losses = {
        "semseg": build_loss("semseg", "kl", temperature=1.0),
        "depth": build_loss("depth", "log_l1"),
    }
    return teachers, student, coders, losses


def _terms(setup, block):
    teachers, student, coders, losses = setup
    amalgamator = Amalgamator(
        student,
        teachers,
        losses,
        mode="blockwise",
        block=block,
        coders=coders,
        flip_average_targets=False,
    )
    targets = amalgamator.teacher_targets(IMAGES)
    return {k: float(v) for k, v in amalgamator.loss_terms(IMAGES, targets, training=False).items()}


@pytest.mark.parametrize("block", range(5))
def test_student_from_the_semseg_teacher_projects_onto_it_exactly(setup, block):
    terms = _terms(setup, block)
    assert terms["semseg_projection"] < 1e-6, terms
    assert terms["depth_projection"] > 1e-3, terms


def test_a_perturbed_gate_moves_the_projection(setup):
    _, _, coders, _ = setup
    gate = coders["semseg"][2]
    saved = gate.get_weights()
    rng = np.random.default_rng(0)
    try:
        gate.set_weights([rng.normal(0, 1, w.shape).astype(w.dtype) for w in saved])
        assert _terms(setup, 2)["semseg_projection"] > 1e-6  # exactly 0 unperturbed
        # The other blocks' gates are separate: block 3 still projects exactly.
        assert _terms(setup, 3)["semseg_projection"] < 1e-6
    finally:
        gate.set_weights(saved)
