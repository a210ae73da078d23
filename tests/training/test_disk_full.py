"""Out of disk or killed mid-save: the failing save names what it could not write, nothing is lost.

A fast test fails a checkpoint save with ``ENOSPC`` in process; a slow one takes the
room away from a real ``tools/train.py`` mid fine-tuning (``RLIMIT_FSIZE`` lowered on
the running process, so the next ``state.npz`` write fails with ``EFBIG`` exactly as
on a full disk), then frees it and resumes.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import subprocess
import threading

import keras
import numpy as np
import pytest

from ka_tf import io_utils
from ka_tf.errors import StorageError
from ka_tf.training.checkpoint import TrainingCheckpoint
from tests.helpers import REPO_ROOT
from tests.training.tiny_train import make_inputs, train_command, wait_for_checkpoint


def _model() -> keras.Model:
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_checkpoint_save_on_full_disk_keeps_the_previous_one(tmp_path, monkeypatch):
    model = _model()
    checkpoint = TrainingCheckpoint(str(tmp_path / "ckpt"), {"model": model}, keep=1)
    first = checkpoint.save(epoch=1, progress={"phase": "finetune"})
    saved = [w.copy() for w in model.get_weights()]

    def full_disk(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full_disk)
    model.set_weights([w + 1 for w in saved])
    with pytest.raises(StorageError) as raised:
        checkpoint.save(epoch=2)
    message = str(raised.value)
    assert "ckpt-000002" in message and "No space left on device" in message
    assert f"previous checkpoint {first} is intact" in message and "rerun" in message
    # Nothing pruned, nothing half written, and the previous checkpoint still restores.
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["ckpt-000001"]
    monkeypatch.undo()
    assert checkpoint.restore_latest() == {"epoch": 1, "phase": "finetune"}
    for restored, expected in zip(model.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(restored, expected)


def test_save_killed_midway_leaves_only_a_temp_dir_that_the_next_save_removes(tmp_path):
    model = _model()
    checkpoint = TrainingCheckpoint(str(tmp_path / "ckpt"), {"model": model})
    checkpoint.save(epoch=1)
    # What a save killed before its rename leaves: a temporary directory, half written.
    leftover = tmp_path / "ckpt" / ".tmp-ckpt-killed"
    leftover.mkdir()
    (leftover / "state.npz").write_bytes(b"PK\x03\x04 half a zip")
    assert checkpoint.latest().endswith("ckpt-000001")  # never mistaken for a checkpoint
    assert checkpoint.restore_latest() == {"epoch": 1}
    checkpoint.save(epoch=2)
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["ckpt-000001", "ckpt-000002"]


def test_atomic_write_on_full_disk_names_the_file_and_keeps_it(tmp_path):
    path = tmp_path / "student.keras"
    path.write_bytes(b"previous student")

    def full_disk(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"half")
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    with pytest.raises(StorageError, match=re.escape(str(path))) as raised:
        io_utils.atomic_write(str(path), full_disk)
    assert "EDQUOT" in str(raised.value) and "previous version" in str(raised.value)
    assert path.read_bytes() == b"previous student"
    assert os.listdir(tmp_path) == ["student.keras"]


def _ignore_file_size_signal() -> None:
    # Over RLIMIT_FSIZE the kernel sends SIGXFSZ (default: kill); ignored, the write
    # fails with EFBIG instead, which is what a full disk looks like to the writer.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.slow  # two tiny tools/train.py processes, ~30 s each on 2 cores
def test_train_runs_out_of_disk_mid_finetuning_then_resumes(tmp_path):
    teachers, images = make_inputs(tmp_path)
    model_dir = tmp_path / "run"
    command = train_command(model_dir, teachers, images, "--gin_bindings=TRAIN_STEPS = 40")
    checkpoints = model_dir / "checkpoints" / "finetune"
    # Output goes through a pipe: a log file would hit the file-size limit too.
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_file_size_signal,
    )
    output: dict[str, list[str]] = {"stdout": [], "stderr": []}
    readers = [
        threading.Thread(target=lambda n=name, s=stream: output[n].extend(s), daemon=True)
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for reader in readers:
        reader.start()
    try:
        wait_for_checkpoint(process, checkpoints, lambda: "".join(output["stderr"])[-3000:])
        # The disk "fills": no file may grow past 1 KiB from now on.
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (1024, 1024))
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    for reader in readers:
        reader.join(timeout=60)
    stderr = "".join(output["stderr"])
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert process.returncode == 2, stderr[-3000:]
    assert lines[-1].startswith("error: cannot write checkpoint "), lines[-1]
    assert "File too large" in lines[-1] and "free space" in lines[-1]
    kept = re.search(r"previous checkpoint (\S+) is intact", lines[-1])
    assert kept, lines[-1]
    assert "Traceback" not in stderr and "In call to configurable" not in lines[-1]

    # The checkpoint the message names is complete and the newest; nothing half written.
    assert os.path.basename(kept[1]) == sorted(p.name for p in checkpoints.glob("ckpt-*"))[-1]
    assert not list(checkpoints.glob(".tmp-ckpt-*"))
    epoch = json.loads((checkpoints / os.path.basename(kept[1]) / "progress.json").read_text())
    with np.load(checkpoints / os.path.basename(kept[1]) / "state.npz") as state:
        assert int(state["optimizer/iteration"]) == epoch["epoch"]  # optimizer.iterations
    assert not (model_dir / "student.keras").exists()

    # Room again: the same command resumes from that checkpoint and finishes.
    resumed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"finetune: resumed from {kept[1]}" in resumed.stderr
    assert (model_dir / "student.keras").exists()
