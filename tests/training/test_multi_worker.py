"""``--strategy=multi_worker``: two tools/train.py workers on 127.0.0.1 train one student.

The fast tests pin the per-worker input: each worker keeps its replicas' rows of
every global batch (DATA sharding), evaluation batches of unknown size included.
The slow test starts two real worker processes with their own ``TF_CONFIG``: an
uninterrupted run (only the chief writes ``--model_dir``, both replicas end
bit-identical), then one whose non-chief worker is killed mid fine-tuning and which
both workers resume. Each worker logs a SHA-256 of the student it saved (the chief
into --model_dir, the other into its temporary directory, read back before that is
removed), which is how the test compares them without keeping the non-chief's files.
Every shipped recipe under every strategy: ``test_strategy_matrix.py``.
"""

import json
import os
import re
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from ka_tf.errors import ConfigError
from ka_tf.training.launch import weights_digest
from ka_tf.training.phase import _worker_slices
from tests.training.strategy_matrix import free_ports, run_workers, start_workers, wait_workers
from tests.training.tiny_train import TRAIN_STEPS, make_inputs, train_command

DIGEST = re.compile(r"^student weights sha256: ([0-9a-f]{64}) \(chief: (True|False)\)$", re.M)


def _batches(size=4):
    rows = tf.data.Dataset.range(8).map(lambda i: {"image": tf.fill([2], i)})
    return rows.batch(size, drop_remainder=True)


def test_each_worker_keeps_its_replicas_rows_of_every_global_batch():
    got = []
    for worker in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=worker, num_replicas_in_sync=2
        )
        got.append([b["image"][:, 0].numpy().tolist() for b in _worker_slices(_batches(), context)])
    assert got == [[[0, 1], [4, 5]], [[2, 3], [6, 7]]]
    # Two replicas on one worker: both halves, in order (one per replica).
    context = tf.distribute.InputContext(1, 0, 2)
    local = [b["image"][:, 0].numpy().tolist() for b in _worker_slices(_batches(), context)]
    assert local == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_an_evaluation_batch_of_unknown_size_is_split_as_evenly_as_possible():
    # 5 images in batches of 2 (the last one partial, so the static batch size is None).
    rows = tf.data.Dataset.range(5).map(lambda i: {"image": tf.fill([2], i)}).batch(2)
    assert rows.element_spec["image"].shape[0] is None
    got = []
    for worker in range(2):
        context = tf.distribute.InputContext(2, worker, 2)
        got.append([b["image"][:, 0].numpy().tolist() for b in _worker_slices(rows, context)])
    assert got == [[[0], [2], [4]], [[1], [3], []]]
    # Two local replicas on one worker: every row once, in order.
    local = [
        b["image"][:, 0].numpy().tolist()
        for b in _worker_slices(rows, tf.distribute.InputContext(1, 0, 2))
    ]
    assert local == [[0], [1], [2], [3], [4], []]


@pytest.mark.parametrize("partial", [False, True], ids=["fixed-size", "last-batch-partial"])
def test_tuple_elements_are_sliced_like_dicts(partial):
    # A teacher trains on (images, {task: target}) pairs, which map/flat_map pass as
    # two arguments.
    pairs = tf.data.Dataset.range(8 if not partial else 7).map(
        lambda i: (tf.fill([2], i), {"depth": tf.fill([1], i * 10)})
    )
    pairs = pairs.batch(4, drop_remainder=not partial)
    got = []
    for worker in range(2):
        context = tf.distribute.InputContext(2, worker, 2)
        sliced = _worker_slices(pairs, context)
        got.append(
            [(x[:, 0].numpy().tolist(), y["depth"][:, 0].numpy().tolist()) for x, y in sliced]
        )
    last = ([6], [60]) if partial else ([6, 7], [60, 70])
    assert got == [
        [([0, 1], [0, 10]), ([4, 5], [40, 50])],
        [([2, 3], [20, 30]), last],
    ]


def test_evaluation_input_takes_exactly_the_batches_asked_for():
    from types import SimpleNamespace

    from ka_tf.training.phase import evaluation_input

    model = SimpleNamespace(distribute_strategy=tf.distribute.get_strategy())
    batches = list(evaluation_input(model, lambda: _batches(2).repeat(), 3))
    assert [b["image"][:, 0].numpy().tolist() for b in batches] == [[0, 1], [2, 3], [4, 5]]


def test_global_batch_not_divisible_by_replicas():
    context = tf.distribute.InputContext(3, 0, 3)
    with pytest.raises(ConfigError, match="BATCH_SIZE=4 with 3 replicas"):
        _worker_slices(_batches(), context)


def _tf_env(tmp_path):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KA_TF_CACHE=str(tmp_path / "cache"))


def _digests(outputs):
    found = [DIGEST.findall(output) for output in outputs]
    assert found[0] and found[0][0][1] == "True", outputs[0][-3000:]
    assert found[1] and found[1][0][1] == "False", outputs[1][-3000:]
    return found[0][0][0], found[1][0][0]


@pytest.mark.slow  # three 2-worker runs sharing the CPU: ~5-8 minutes on 2 cores
def test_a_worker_killed_mid_finetuning_resumes_to_the_uninterrupted_weights(tmp_path):
    """SIGKILL one worker during fine-tuning: the other ends with one error line naming
    the strategy and the phase; both restarted with the same command finish with the
    weights of an uninterrupted 2-worker run, bit for bit."""
    teachers, images = make_inputs(tmp_path)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    flags = (
        "--strategy=multi_worker",
        "--deterministic",
        "--gin_bindings=amalgamate.synchronized_bn = True",
    )
    env = _tf_env(tmp_path)

    reference = tmp_path / "reference"
    chief, other = _digests(
        run_workers(
            train_command(reference, teachers, images, *flags), workers, env, tmp_path / "logs"
        )
    )
    assert chief == other, "the replicas' final weights differ"
    # The chief wrote the run; its student is the one both workers logged.
    for name in ("student.keras", "amalgamation_report.json", "config.gin"):
        assert (reference / name).exists(), name
    assert not (reference / ".ka_tf_shared_probe").exists()
    final = reference / "checkpoints" / "finetune" / f"ckpt-{TRAIN_STEPS:06d}"
    assert json.loads((final / "progress.json").read_text())["epoch"] == TRAIN_STEPS
    import keras

    import ka_tf.registry_all  # noqa: F401

    student = keras.saving.load_model(str(reference / "student.keras"))
    assert weights_digest(student) == chief
    with np.load(final / "state.npz") as state:
        assert int(state["optimizer/iteration"]) == TRAIN_STEPS

    run_dir = tmp_path / "killed"
    command = train_command(run_dir, teachers, images, *flags)
    processes = start_workers(command, workers, env, tmp_path / "logs")
    checkpoints = run_dir / "checkpoints" / "finetune"
    try:
        deadline = time.monotonic() + 420
        while not (checkpoints / "ckpt-000002").exists():
            assert all(p.poll() is None for p, _ in processes), "a worker ended before the kill"
            assert time.monotonic() < deadline, "no second fine-tuning checkpoint in 420 s"
            time.sleep(0.05)
        processes[1][0].send_signal(signal.SIGKILL)
        outputs, codes = wait_workers(processes, timeout=300)
    finally:
        for process, _ in processes:
            if process.poll() is None:
                process.kill()
    assert codes[1] == -signal.SIGKILL
    assert codes[0] not in (0, None), outputs[0][-3000:]
    lines = [line for line in outputs[0].strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: strategy multi_worker, worker 0 of 2, phase finetune: "), (
        outputs[0][-3000:]
    )
    assert "start every worker again with the same command" in lines[-1]
    assert "Traceback" not in outputs[0]
    assert not (run_dir / "student.keras").exists()

    resumed = run_workers(command, workers, env, tmp_path / "logs")
    assert "finetune: resumed from" in resumed[0] and "finetune: resumed from" in resumed[1]
    assert _digests(resumed) == (chief, chief), "the resumed run ended with other weights"
