"""The Amalgamator's custom train_step: learning, frozen teachers, no labels, replicas."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.amalgamation.amalgamator import Amalgamator, build_coders
from ka_tf.amalgamation.student_builder import assemble_student, build_blockwise_student
from ka_tf.errors import ConfigError
from ka_tf.losses import build_loss
from ka_tf.models import SegNet
from tests import helpers

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(4, 32, 64, 3)).astype("uint8")
WIDTH = 1 / 16


def make_teachers():
    keras.utils.set_random_seed(1)
    return {
        "semseg": SegNet("semseg", num_classes=4, width_multiplier=WIDTH),
        "depth": SegNet("depth", width_multiplier=WIDTH),
    }


def make_losses():
    return {
        "semseg": build_loss("semseg", "kl", temperature=2.0),
        "depth": build_loss("depth", "log_l1"),
    }


def batch(labels_seed=None):
    data = {"image": IMAGES}
    if labels_seed is not None:
        rng = np.random.default_rng(labels_seed)
        data["semseg"] = rng.integers(0, 256, size=IMAGES.shape[:3]).astype("uint8")
        data["depth"] = rng.normal(size=IMAGES.shape[:3]).astype("float32")
    return data


def make_amalgamator(
    teachers, mode, block=None, learning_rate=1e-2, synchronized_bn=False, eager=False, **kw
):
    init = "scratch" if mode == "finetune" else "semseg"
    student = build_blockwise_student(teachers, init_from=init, synchronized_bn=synchronized_bn)
    coders = build_coders(student.candidate_channels(), list(teachers))
    if mode == "finetune":
        student = assemble_student(student, coders, teachers, {"semseg": 3, "depth": 1})
    amalgamator = Amalgamator(
        student, teachers, make_losses(), mode=mode, block=block, coders=coders, **kw
    )
    # Eager steps skip the ~15 s graph trace of these tiny models; graph mode is
    # covered by the loss-falls and MirroredStrategy tests.
    amalgamator.compile(optimizer=keras.optimizers.Adam(learning_rate), run_eagerly=eager)
    amalgamator.prepare(IMAGES[:2])
    return amalgamator


def train_on_fixed_batch(amalgamator, steps, data=None):
    return [
        {
            k: float(v)
            for k, v in amalgamator.train_on_batch(data or batch(), return_dict=True).items()
        }
        for _ in range(steps)
    ]


@pytest.mark.parametrize(
    "mode,block",
    # The fine-tuning case (~20 s) runs with the slow tests (CI: make test-slow).
    [("blockwise", 2), pytest.param("finetune", None, marks=pytest.mark.slow)],
)
def test_train_step_lowers_loss_on_a_fixed_batch(mode, block):
    amalgamator = make_amalgamator(make_teachers(), mode, block)
    history = train_on_fixed_batch(amalgamator, 12)
    terms = [name for name in history[0] if name != "loss"]
    assert sorted(terms) == sorted(
        [f"{t}_projection" for t in ("semseg", "depth")]
        if mode == "blockwise"
        else [f"{t}_output" for t in ("semseg", "depth")]
    )
    assert history[-1]["loss"] < 0.8 * history[0]["loss"], history


def test_teachers_stay_bit_identical():
    teachers = make_teachers()
    before = {task: [w.copy() for w in t.get_weights()] for task, t in teachers.items()}
    train_on_fixed_batch(make_amalgamator(teachers, "blockwise", 1, eager=True), 3)
    train_on_fixed_batch(make_amalgamator(teachers, "finetune", eager=True), 3)
    for task, teacher in teachers.items():
        for old, new in zip(before[task], teacher.get_weights(), strict=True):
            np.testing.assert_array_equal(old, new)
        assert not teacher.trainable


def test_labels_never_influence_training():
    results = []
    for labels_seed in (None, 7):
        amalgamator = make_amalgamator(make_teachers(), "finetune", eager=True)
        keras.utils.set_random_seed(3)
        initial = [w.copy() for w in amalgamator.student.get_weights()]
        history = train_on_fixed_batch(amalgamator, 2, batch(labels_seed))
        results.append((initial, history, amalgamator.student.get_weights()))
    (init_a, hist_a, final_a), (init_b, hist_b, final_b) = results
    for a, b in zip(init_a, init_b, strict=True):
        np.testing.assert_array_equal(a, b)
    assert hist_a == hist_b
    for a, b in zip(final_a, final_b, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # ~1 minute: two graph traces under MirroredStrategy
def test_mirrored_two_replicas_match_one_device():
    """Same data, same initial weights: 1 and 2 replicas give the same losses and update.

    SGD (not Adam) so that a gradient scaled by the replica count would show.
    """
    dataset = tf.data.Dataset.from_tensor_slices({"image": IMAGES}).batch(4).repeat()
    runs = []
    for strategy in (tf.distribute.get_strategy(), helpers.two_device_strategy()):
        with strategy.scope():
            # Synchronised BatchNorm: otherwise each replica normalises by half the batch.
            amalgamator = make_amalgamator(
                make_teachers(), "finetune", synchronized_bn=True, flip_average_targets=False
            )
            amalgamator.compile(optimizer=keras.optimizers.SGD(0.5))
            amalgamator.prepare(IMAGES[:2])
        initial = [w.copy() for w in amalgamator.student.get_weights()]
        history = amalgamator.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0).history
        updates = [w - w0 for w, w0 in zip(amalgamator.student.get_weights(), initial, strict=True)]
        runs.append((history["loss"][0], updates))
    (loss_1, updates_1), (loss_2, updates_2) = runs
    assert loss_2 == pytest.approx(loss_1, rel=1e-5)
    largest = max(float(np.abs(u).max()) for u in updates_1)
    assert largest > 0.1  # the step moved the weights (so a 2x or 0.5x update would show)
    for a, b in zip(updates_1, updates_2, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-3 * largest)


@pytest.mark.slow  # ~14 s: bfloat16 on CPU
def test_mixed_bfloat16_trains_and_outputs_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    amalgamator = make_amalgamator(make_teachers(), "finetune", eager=True)
    assert amalgamator.student.get_layer("down1").compute_dtype == "bfloat16"
    history = train_on_fixed_batch(amalgamator, 6)
    assert np.isfinite(history[-1]["loss"]) and history[-1]["loss"] < history[0]["loss"]
    outputs = amalgamator.student(IMAGES.astype("float32"))
    assert all(o.dtype == tf.float32 for o in outputs.values())


def test_channel_mismatch_is_a_clear_error():
    teachers = make_teachers()
    student = build_blockwise_student(teachers)
    wide = {"semseg": teachers["semseg"], "depth": SegNet("depth", width_multiplier=WIDTH * 2)}
    with pytest.raises(
        ConfigError, match=r"'depth' gate at block 2 maps 16 to 16 channels.*teacher's 32"
    ):
        Amalgamator(
            student,
            wide,
            make_losses(),
            mode="blockwise",
            block=2,
            coders=build_coders(student.candidate_channels(), list(teachers)),
        )


def test_task_weights_scale_each_task_term():
    """What amalgamate.finetune_task_weights sets: a task's terms times its weight."""
    teachers = make_teachers()
    images = tf.constant(IMAGES[:2], tf.float32)
    terms = []
    for weights in (None, {"semseg": 0.5}):
        keras.utils.set_random_seed(2)
        amalgamator = make_amalgamator(teachers, "finetune", eager=True, task_weights=weights)
        targets = amalgamator.teacher_targets(images)
        terms.append(amalgamator.loss_terms(images, targets, training=False))
    assert float(terms[1]["semseg_output"]) == pytest.approx(
        0.5 * float(terms[0]["semseg_output"]), rel=1e-5
    )
    assert float(terms[1]["depth_output"]) == pytest.approx(float(terms[0]["depth_output"]))
