"""Teacher scores computed once per teacher file, split and settings: read back only
when all three are the same."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf import score_cache
from ka_tf.evaluation import evaluate_model
from ka_tf.models import SegNet

RNG = np.random.default_rng(5)
IMAGES = RNG.integers(0, 256, size=(4, 32, 64, 3)).astype("uint8")
LABELS = RNG.integers(0, 4, size=(4, 32, 64)).astype("uint8")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    keras.utils.set_random_seed(2)
    model = SegNet("semseg", num_classes=4, width_multiplier=1 / 16)
    model(tf.zeros((1, 32, 64, 3)))
    path = str(tmp_path_factory.mktemp("teacher") / "semseg.keras")
    model.save(path)
    return model, path


def dataset(labels=LABELS):
    return tf.data.Dataset.from_tensor_slices({"image": IMAGES, "semseg": labels}).batch(2)


def batches(labels=LABELS, max_batches=None):
    """The fingerprint a caller passes for the batches it scores."""
    return score_cache.dataset_fingerprint(dataset(labels), max_batches)


class Counter:
    def __init__(self, model, data):
        self.calls = 0
        self.model, self.data = model, data

    def __call__(self):
        self.calls += 1
        return evaluate_model(self.model, self.data, tasks=["semseg"], progress=False)


def test_scores_are_computed_once_then_read(teacher, tmp_path):
    model, path = teacher
    compute = Counter(model, dataset())
    first, read = score_cache.scores(path, batches(), {"tasks": ["semseg"]}, compute, root=tmp_path)
    assert not read and compute.calls == 1
    assert first == pytest.approx(evaluate_model(model, dataset(), progress=False))
    again, read = score_cache.scores(path, batches(), {"tasks": ["semseg"]}, compute, root=tmp_path)
    assert read and compute.calls == 1 and again == first


def test_another_split_file_setting_or_metric_code_is_a_miss(teacher, tmp_path, monkeypatch):
    model, path = teacher
    compute = Counter(model, dataset())
    settings = {"tasks": ["semseg"]}
    score_cache.scores(path, batches(), settings, compute, root=tmp_path)
    relabelled = LABELS.copy()
    relabelled[0, 0, 0] = (relabelled[0, 0, 0] + 1) % 4  # one pixel's label
    other = Counter(model, dataset(relabelled))
    _, read = score_cache.scores(path, batches(relabelled), settings, other, root=tmp_path)
    assert not read and other.calls == 1
    copy = tmp_path / "copy.keras"
    copy.write_bytes(open(path, "rb").read() + b"\0")  # another file's bytes
    _, read = score_cache.scores(str(copy), batches(), settings, compute, root=tmp_path)
    assert not read
    _, read = score_cache.scores(
        path, batches(), {"tasks": ["semseg"], "max_depth": 9.0}, compute, root=tmp_path
    )
    assert not read
    _, read = score_cache.scores(path, batches(max_batches=1), settings, compute, root=tmp_path)
    assert not read
    monkeypatch.setattr(score_cache, "_metrics_code", lambda: "a changed metric")
    _, read = score_cache.scores(path, batches(), settings, compute, root=tmp_path)
    assert not read


def test_an_unreadable_entry_is_recomputed(teacher, tmp_path):
    model, path = teacher
    compute = Counter(model, dataset())
    first, _ = score_cache.scores(path, batches(), {}, compute, root=tmp_path)
    (entry,) = [name for name in os.listdir(tmp_path) if name.endswith(".json")]
    (tmp_path / entry).write_text("{not json")
    again, read = score_cache.scores(path, batches(), {}, compute, root=tmp_path)
    assert not read and compute.calls == 2 and again == first
    assert json.loads((tmp_path / entry).read_text())["scores"] == first


def test_the_fingerprint_reads_every_array():
    assert score_cache.dataset_fingerprint(dataset()) == score_cache.dataset_fingerprint(dataset())
    images_only = tf.data.Dataset.from_tensor_slices({"image": IMAGES}).batch(2)
    assert score_cache.dataset_fingerprint(images_only) != score_cache.dataset_fingerprint(
        dataset()
    )
    assert score_cache.dataset_fingerprint(dataset(), 1) != score_cache.dataset_fingerprint(
        dataset()
    )


def test_an_amalgamation_run_reads_its_teachers_scores_the_second_time(tmp_path, monkeypatch):
    """The run's evaluation: the same teacher files on the same frames are scored once."""
    from ka_tf.amalgamation.run import _evaluate
    from ka_tf.models import TargetNet

    monkeypatch.setenv(score_cache.CACHE_ENV, str(tmp_path / "scores"))
    keras.utils.set_random_seed(4)
    teachers, paths = {}, {}
    for task in ("semseg", "depth"):
        teachers[task] = SegNet(
            task, num_classes=4 if task == "semseg" else None, width_multiplier=1 / 16
        )
        paths[task] = str(tmp_path / f"{task}.keras")
        teachers[task].save(paths[task])
    student = TargetNet(
        ("semseg", "depth"),
        num_classes=4,
        branch_points={"semseg": 1, "depth": 1},
        width_multiplier=1 / 16,
    )
    depth = RNG.uniform(1.0, 50.0, size=LABELS.shape).astype("float32")

    def test_data():
        elements = {"image": IMAGES, "semseg": LABELS, "depth": depth}
        return tf.data.Dataset.from_tensor_slices(elements).batch(2)

    results = [
        _evaluate(student, teachers, paths, test_data, None, str(tmp_path / name), 1, "test")
        for name in ("first", "second")
    ]
    assert results[0]["teacher_scores_cached"] == []
    assert results[1]["teacher_scores_cached"] == ["semseg", "depth"]
    assert results[1]["metrics"] == results[0]["metrics"]
    assert len(os.listdir(tmp_path / "scores")) == 2
