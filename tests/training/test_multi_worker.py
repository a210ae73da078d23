"""``--strategy=multi_worker``: two tools/train.py workers on 127.0.0.1 train one student.

The fast test pins the per-worker input: each worker keeps its replicas' rows of
every global batch. The slow test starts two real worker processes with their own
``TF_CONFIG``; both must finish, only the chief writes ``--model_dir``, and the two
replicas end with bit-identical weights. Each worker logs a SHA-256 of the student
it saved (the chief into --model_dir, the other into its temporary directory, read
back before that is removed), which is how the test compares them without keeping
the non-chief's files.
"""

import json
import os
import re
import socket
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from ka_tf.errors import ConfigError
from ka_tf.training.launch import weights_digest
from ka_tf.training.phase import _worker_slices
from tests.helpers import REPO_ROOT
from tests.training.tiny_train import make_inputs, train_command

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


def test_global_batch_not_divisible_by_replicas():
    context = tf.distribute.InputContext(3, 0, 3)
    with pytest.raises(ConfigError, match="BATCH_SIZE=4 with 3 replicas"):
        _worker_slices(_batches(), context)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow  # two TensorFlow processes sharing the CPU: ~1.5-3 minutes on 2 cores
def test_two_workers_train_identical_replicas_and_only_the_chief_writes(tmp_path):
    teachers, images = make_inputs(tmp_path)
    model_dir = tmp_path / "run"
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    command = train_command(
        model_dir,
        teachers,
        images,
        "--strategy=multi_worker",
        "--deterministic",
        # Batch statistics averaged over both workers: without it each worker keeps
        # BatchNorm moving averages of its own half batch (see BUILD.md).
        "--gin_bindings=amalgamate.synchronized_bn = True",
        "--gin_bindings=TRAIN_STEPS = 2",
    )
    processes, logs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2")
        logs.append(open(tmp_path / f"worker{index}.log", "w+"))
        log = logs[index]
        processes.append(
            subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    outputs = []
    try:
        for process in processes:
            process.wait(timeout=420)
    finally:
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is None:
                process.kill()
                process.wait()
            log.seek(0)
            outputs.append(log.read())
            log.close()
    for index, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0, f"worker {index}:\n{output[-3000:]}"

    digests = [DIGEST.findall(output) for output in outputs]
    assert digests[0] and digests[0][0][1] == "True", outputs[0][-2000:]
    assert digests[1] and digests[1][0][1] == "False", outputs[1][-2000:]
    assert digests[0][0][0] == digests[1][0][0], "the replicas' final weights differ"

    # The chief wrote the run; its student is the one both workers logged.
    for name in ("student.keras", "amalgamation_report.json", "config.gin"):
        assert (model_dir / name).exists(), name
    final = model_dir / "checkpoints" / "finetune" / "ckpt-000002"
    assert json.loads((final / "progress.json").read_text())["epoch"] == 2
    import keras

    import ka_tf.registry_all  # noqa: F401

    student = keras.saving.load_model(str(model_dir / "student.keras"))
    assert weights_digest(student) == digests[0][0][0]
    with np.load(final / "state.npz") as state:
        assert int(state["optimizer/00000"]) == 2
    # The non-chief's temporary directory is gone and it wrote nothing else.
    scratch = re.search(r"Non-chief worker: writing into (\S+) ", outputs[1])
    assert scratch and not os.path.exists(scratch[1])
