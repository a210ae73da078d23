"""Atomic, resumable training checkpoints: weights, optimizer state and progress.

A checkpoint is a directory ``ckpt-<epoch:06d>`` holding ``state.npz`` (every
weight of the saved models, keyed by ``<group>/<variable path>``, and every optimizer
variable, keyed by ``optimizer/<its path without the optimizer's name>``: Keras names
a slot after the variable it serves, e.g. ``adam_2/student_conv1_kernel_momentum``, so
the state follows the variables, not the order the optimizer happened to create them
in, nor how many optimizers the process built before) and
``progress.json``. Checkpoints written before the paths (``optimizer/00000``, ...)
are restored by position, as they were written. It is written to a
temporary directory and renamed into place, so a killed run leaves either the
previous checkpoint or the new complete one; the newest ``keep`` are kept, and the
next save removes the temporary directory a killed save left behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from ka_tf.errors import ModelFileError
from ka_tf.io_utils import storage_error

_NAME = re.compile(r"^ckpt-(\d{6})$")


_LEGACY_OPTIMIZER_KEY = re.compile(r"^optimizer/\d{5}$")


def _named_weights(groups: Mapping[str, Any]) -> dict[str, Any]:
    named = {}
    for group, obj in groups.items():
        for variable in obj.weights:
            key = f"{group}/{variable.path}"
            if key in named:
                raise ValueError(f"two variables share the checkpoint key {key!r}")
            named[key] = variable
    return named


def _named_optimizer_variables(optimizer: Any) -> dict[str, Any]:
    named = {}
    for variable in optimizer.variables:
        # "adam_3/student_conv1_kernel_momentum" → "optimizer/student_conv1_kernel_momentum":
        # the optimizer's own name counts optimizers built earlier in the process, which
        # a resumed run need not repeat.
        key = "optimizer/" + variable.path.split("/", 1)[-1]
        if key in named:
            raise ValueError(f"two optimizer variables share the checkpoint key {key!r}")
        named[key] = variable
    return named


def _assign(path: str, key: str, variable: Any, value: np.ndarray) -> None:
    if tuple(value.shape) != tuple(variable.shape):
        raise ModelFileError(
            f"checkpoint {path}: {key!r} has shape {value.shape}, the model expects "
            f"{tuple(variable.shape)}."
        )
    variable.assign(value)


class TrainingCheckpoint:
    """Saves and restores groups of Keras objects plus an optimizer, atomically.

    Args:
        directory: Where ``ckpt-*`` directories go.
        groups: Name → object with ``.weights`` (a model or layer) to save.
        optimizer: The optimizer whose state is saved (built before restore).
        keep: How many of the newest checkpoints to keep.

    Example:
        >>> ckpt = TrainingCheckpoint(dir, {"student": student}, optimizer)
        >>> progress = ckpt.restore_latest()  # None on a fresh run
        >>> ckpt.save(epoch=3, progress={"phase": "finetune"})
    """

    def __init__(
        self,
        directory: str,
        groups: Mapping[str, Any],
        optimizer: keras.optimizers.Optimizer | None = None,
        keep: int = 2,
    ):
        self.directory = directory
        self.groups = dict(groups)
        self.optimizer = optimizer
        self.keep = int(keep)

    def checkpoints(self) -> list[str]:
        """Complete checkpoint directories, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        names = sorted(n for n in os.listdir(self.directory) if _NAME.match(n))
        return [os.path.join(self.directory, n) for n in names]

    def latest(self) -> str | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def save(self, epoch: int, progress: Mapping[str, Any] | None = None) -> str:
        """Writes ``ckpt-<epoch>`` atomically and prunes old ones; returns its path.

        Raises:
            StorageError: if the disk is full or the directory cannot be written (the
                message names the checkpoint still intact); nothing is pruned then.
        """
        arrays = {key: np.asarray(v.numpy()) for key, v in _named_weights(self.groups).items()}
        if self.optimizer is not None:
            for key, variable in _named_optimizer_variables(self.optimizer).items():
                arrays[key] = np.asarray(variable.numpy())
        final = os.path.join(self.directory, f"ckpt-{epoch:06d}")
        tmp = None
        try:
            os.makedirs(self.directory, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=".tmp-ckpt-", dir=self.directory)
            with open(os.path.join(tmp, "state.npz"), "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            with open(os.path.join(tmp, "progress.json"), "w", encoding="utf-8") as handle:
                json.dump({"epoch": int(epoch), **dict(progress or {})}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            if os.path.exists(final):
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException as error:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(error, OSError):
                previous = self.latest()
                kept = (
                    f"The previous checkpoint {previous} is intact: rerun the same command "
                    f"to resume from it."
                    if previous
                    else "No earlier checkpoint exists."
                )
                translated = storage_error(error, f"checkpoint {final}", kept)
                if translated is not None:
                    raise translated from error
            raise
        for old in self.checkpoints()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for name in os.listdir(self.directory):  # left by a save that was killed
            if name.startswith(".tmp-ckpt-"):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        return final

    def restore(self, path: str) -> dict[str, Any]:
        """Loads ``path`` into the groups and optimizer; returns its progress dict."""
        state_path = os.path.join(path, "state.npz")
        try:
            with np.load(state_path) as state:
                arrays = {key: state[key] for key in state.files}
            with open(os.path.join(path, "progress.json"), encoding="utf-8") as handle:
                progress = json.load(handle)
        except (OSError, ValueError) as error:
            raise ModelFileError(
                f"checkpoint {path} is unreadable ({error}); delete it to resume from the "
                f"one before."
            ) from error
        for key, variable in _named_weights(self.groups).items():
            if key not in arrays:
                raise ModelFileError(f"checkpoint {path} has no value for {key!r}.")
            _assign(path, key, variable, arrays[key])
        if self.optimizer is not None:
            self._restore_optimizer(path, arrays)
        return progress

    def _restore_optimizer(self, path: str, arrays: Mapping[str, np.ndarray]) -> None:
        saved = sorted(k for k in arrays if k.startswith("optimizer/"))
        if saved and all(_LEGACY_OPTIMIZER_KEY.match(k) for k in saved):
            # Written before optimizer state was keyed by path: positions, as saved.
            if len(saved) != len(self.optimizer.variables):
                raise ModelFileError(
                    f"checkpoint {path} holds {len(saved)} optimizer variables, the optimizer "
                    f"has {len(self.optimizer.variables)}: was it written by another configuration?"
                )
            for key, variable in zip(saved, self.optimizer.variables, strict=True):
                _assign(path, key, variable, arrays[key])
            return
        named = _named_optimizer_variables(self.optimizer)
        missing = sorted(set(named) - set(saved))
        unknown = sorted(set(saved) - set(named))
        if missing or unknown:
            raise ModelFileError(
                f"checkpoint {path} does not match the optimizer: missing {missing[:3]}"
                f"{' ...' if len(missing) > 3 else ''}, unknown {unknown[:3]}"
                f"{' ...' if len(unknown) > 3 else ''}: was it written by another configuration?"
            )
        for key, variable in named.items():
            _assign(path, key, variable, arrays[key])

    def restore_latest(self) -> dict[str, Any] | None:
        """Restores the newest checkpoint if there is one; returns its progress or None."""
        path = self.latest()
        return None if path is None else self.restore(path)
