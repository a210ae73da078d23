"""Binary segmentation, added as one file (ka_tf/tasks/binary.py) and registered: it runs
through every place a task touches — head, loss, flip and resize rules, padding, metrics
and per-image statistics, constant baseline, export outputs, pictures — and a tiny
amalgamation of a binary teacher with a depth teacher."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import ka_tf.registry_all  # noqa: F401
from ka_tf import config
from ka_tf.amalgamation.run import amalgamate, distillation_losses
from ka_tf.baselines import fit_constant_baseline
from ka_tf.data import pipeline, resize
from ka_tf.errors import ConfigError, DataError, ModelFileError
from ka_tf.evaluation import evaluate_model
from ka_tf.export.dense_export_module import output_names_for, postprocess
from ka_tf.export.runtimes import resize_outputs
from ka_tf.metrics import DenseMetrics, metric_names
from ka_tf.metrics.per_image import image_statistics, pooled_metrics
from ka_tf.models import SegNet
from ka_tf.tasks import get_task, register_task, task_names, unregister_task
from ka_tf.tasks.binary import BinarySegmentation, MaskBinaryCrossEntropy
from tests.helpers import REPO_ROOT

TASK = "person"


@pytest.fixture(autouse=True)
def person_task():
    register_task(BinarySegmentation(TASK))
    yield get_task(TASK)
    unregister_task(TASK)


def test_registered_after_the_built_ins_and_forgotten_on_request():
    assert task_names() == ("semseg", "depth", "normals", TASK)
    assert metric_names()[-3:] == ("person/iou", "person/f_measure", "person/mae")
    with pytest.raises(ConfigError, match="built-in"):
        unregister_task("depth")


def test_metrics_by_hand():
    labels = np.array([[[1, 1, 0, 0], [1, 0, 0, 255]]], np.uint8)  # 3 fg, 4 bg, 1 ignored
    probs = np.array([[[0.9, 0.2, 0.7, 0.1], [0.6, 0.0, 0.4, 0.99]]], np.float32)
    metrics = DenseMetrics(tasks=[TASK])
    metrics.update({TASK: probs}, {TASK: labels})
    result = metrics.result()
    tp, fp, fn = (
        2,
        1,
        1,
    )  # predicted fg (>= 0.5) at (0,0), (0,2), (1,0); truth fg (0,0), (0,1), (1,0)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert result["person/iou"] == pytest.approx(tp / (tp + fp + fn))
    assert result["person/f_measure"] == pytest.approx(
        1.3 * precision * recall / (0.3 * precision + recall)
    )
    mae = np.mean(np.abs(probs[labels != 255] - labels[labels != 255]))
    assert result["person/mae"] == pytest.approx(mae)
    rows = image_statistics(TASK, probs, labels)
    assert pooled_metrics(TASK, rows.sum(axis=0)) == pytest.approx(result)
    with pytest.raises(DataError, match=r"mask labels hold \[2\]"):
        metrics.update({TASK: probs}, {TASK: np.full_like(labels, 2)})


def test_head_loss_flip_resize_and_padding(person_task):
    teacher = SegNet(TASK, width_multiplier=1 / 16)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 64, 3)).astype("float32")
    probs = teacher(images)[TASK]
    assert probs.shape == (2, 32, 64)
    assert float(tf.reduce_min(probs)) >= 0.0 and float(tf.reduce_max(probs)) <= 1.0
    loss = distillation_losses((TASK,))[TASK]
    assert isinstance(loss, MaskBinaryCrossEntropy)
    target = np.full((2, 32, 64), 255, np.uint8)
    target[:, :, :32] = 1
    # Ignored pixels (255) do not count: the loss only sees the left half.
    expected = -np.mean(np.log(np.clip(probs.numpy()[:, :, :32], 1e-6, 1.0)))
    assert float(loss(target, probs)) == pytest.approx(expected, rel=1e-4)
    label = tf.constant(target[0])
    flipped = pipeline.flip_left_right({"image": tf.zeros((32, 64, 3), tf.uint8), TASK: label})
    np.testing.assert_array_equal(flipped[TASK].numpy(), target[0][:, ::-1])
    resized = resize.resize_example(
        {"image": tf.zeros((32, 64, 3), tf.uint8), TASK: label}, (16, 32)
    )
    assert set(np.unique(resized[TASK].numpy())) <= {1, 255}  # nearest: never blended
    assert person_task.pad_value == 255


def test_the_iou_term_weighs_a_small_object_as_a_whole():
    from ka_tf.losses import build_loss

    loss = build_loss(TASK, "bce_iou")
    target = np.zeros((1, 32, 32), np.float32)
    target[0, 10:14, 10:14] = 1.0  # a 16-pixel object in 1024
    assert float(loss(target, target)) == pytest.approx(0.0, abs=1e-4)
    missed = np.full_like(target, 0.01)  # background right, the object missed
    bce_only = float(build_loss(TASK, "bce")(target, missed))
    # BCE alone barely notices (the object is 1.6% of the pixels); the IoU term does.
    assert bce_only < 0.1 and float(loss(target, missed)) > bce_only + 0.9
    ignored = np.where(target > 0, 255.0, target)  # only background left, all matched
    assert float(loss(ignored, np.zeros_like(target))) == pytest.approx(0.0, abs=1e-4)
    config = loss.get_config()
    assert config["iou_weight"] == 1.0
    assert float(type(loss).from_config({**config, "iou_weight": 0.0})(target, missed)) == (
        pytest.approx(bce_only, rel=1e-5)
    )


def test_evaluation_baseline_export_and_picture():
    rng = np.random.default_rng(1)
    labels = (rng.uniform(size=(4, 32, 64)) < 0.3).astype(np.uint8)
    data = tf.data.Dataset.from_tensor_slices(
        {"image": rng.integers(0, 256, (4, 32, 64, 3), dtype=np.uint8), TASK: labels}
    ).batch(2)
    baseline = fit_constant_baseline(data, TASK)
    assert baseline.value == pytest.approx(labels.mean())
    scores = evaluate_model(baseline.model(), data, progress=False)
    assert scores["person/mae"] == pytest.approx(
        np.mean(np.abs(labels.astype(np.float64) - labels.mean())), rel=1e-5
    )
    assert scores["person/iou"] == 0.0  # a constant below 0.5 predicts no foreground
    model = SegNet(TASK, width_multiplier=1 / 16)
    outputs = postprocess(model(np.zeros((1, 32, 64, 3), "float32")))
    assert tuple(outputs) == output_names_for([TASK]) == (TASK, "person_probs")
    assert outputs[TASK].dtype == tf.int32
    bigger = resize_outputs({k: v.numpy() for k, v in outputs.items()}, (64, 128))
    assert bigger[TASK].shape == (1, 64, 128) and bigger[TASK].dtype == np.int32
    picture = get_task(TASK).render(outputs["person_probs"].numpy()[0])
    assert picture.shape == (32, 64, 3) and picture.dtype == np.uint8
    with pytest.raises(ModelFileError, match=r"person output .*Expected foreground probab"):
        get_task(TASK).metric_prediction(tf.zeros((1, 32, 64, 2)), "two_channels")


@pytest.mark.slow  # ~1 min on 2 cores: six phases traced
def test_tiny_amalgamation_of_a_binary_and_a_depth_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path / "synth_cache"))
    teachers = {}
    for task in (TASK, "depth"):
        teachers[task] = str(tmp_path / f"{task}.keras")
        SegNet(task, width_multiplier=1 / 16).save(teachers[task])
    gin.clear_config()
    config.parse_gin_config(
        ["gin/synth_street.gin"],
        [
            "BATCH_SIZE = 2",
            "IMAGE_SIZE = (32, 64)",
            "synth_benchmark.splits = {'transfer': 4, 'val': 2, 'test': 2}",
            "TRAIN_STEPS = 1",
            "BLOCKWISE_STEPS = 1",
            "transfer/make_dataset.split = 'transfer'",
            "amalgamate.init_from = 'depth'",
            "amalgamate.steps_per_epoch = 1",
            "amalgamate.val_batches = 1",
            "amalgamate.eval_max_batches = 1",
            "amalgamate.num_panels = 1",
            f"TEACHERS = {teachers!r}",
        ],
        search_paths=[REPO_ROOT],
    )
    try:
        report = amalgamate(str(tmp_path / "run"), tf.distribute.get_strategy())
    finally:
        gin.clear_config()
    assert report["tasks"] == [TASK, "depth"] or report["tasks"] == ["depth", TASK]
    assert set(report["branch_points"]) == {TASK, "depth"}
    assert len(report["block_losses"][TASK]) == 5
    student = keras.saving.load_model(str(tmp_path / "run" / "student.keras"))
    outputs = student(np.zeros((1, 32, 64, 3), "float32"))
    assert outputs[TASK].shape == (1, 32, 64) and outputs["depth"].shape == (1, 32, 64)
