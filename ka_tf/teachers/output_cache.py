"""Teacher outputs computed once per image and kept on disk.

A teacher that runs outside TensorFlow (TFLite, ONNX) would otherwise run on every
training step. :class:`OutputCache` keys each image by the sha256 of the model's input
bytes (so the image, its mirror, and the preprocessing all count) inside a folder
keyed by the model file's sha256 and the outputs read: a changed model, a changed
preprocessing or a changed output choice lands in another folder, so a stale output is
never read. An entry that cannot be read, or has the wrong shape, is recomputed and
rewritten, with one warning.

The default folder is ``$KA_TF_TEACHER_CACHE``, else ``~/.cache/ka_tf/teacher_outputs``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

from ka_tf.io_utils import atomic_write_json

CACHE_ENV = "KA_TF_TEACHER_CACHE"
KEY_FILE = "key.json"


def default_cache_root() -> str:
    """``$KA_TF_TEACHER_CACHE`` if set, else ``~/.cache/ka_tf/teacher_outputs``."""
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "ka_tf", "teacher_outputs"
    )


class OutputCache:
    """Per-image teacher outputs under ``root/<key hash>/``.

    Args:
        root: The cache's root folder.
        key: What the outputs depend on besides the image (model fingerprint, outputs
            read, runtime): JSON-serialisable; hashed into the folder name and kept in
            ``key.json`` beside the entries.
        output_shapes: Output name → shape of one image's output (no batch dim); an
            entry of another shape is recomputed.

    Attributes:
        hits, misses: Images served from the cache, and computed, by this object.
    """

    def __init__(
        self,
        root: str,
        key: Mapping[str, Any],
        output_shapes: Mapping[str, Sequence[int | None]],
    ) -> None:
        text = json.dumps(dict(key), sort_keys=True)
        self.folder = os.path.join(root, hashlib.sha256(text.encode()).hexdigest()[:20])
        os.makedirs(self.folder, exist_ok=True)
        key_path = os.path.join(self.folder, KEY_FILE)
        if not os.path.exists(key_path):
            atomic_write_json(key_path, dict(key))
        self.output_shapes = {name: tuple(shape) for name, shape in output_shapes.items()}
        self.hits = 0
        self.misses = 0

    def _path(self, digest: str) -> str:
        return os.path.join(self.folder, digest[:2], digest + ".npz")

    def _read(self, path: str) -> dict[str, np.ndarray] | None:
        if not os.path.exists(path):
            return None
        try:
            with np.load(path) as entry:
                values = {name: np.array(entry[name]) for name in self.output_shapes}
        except Exception as error:  # a cut or foreign file: recompute it
            logging.warning(
                "teacher output cache entry %s unreadable (%s): recomputed", path, error
            )
            return None
        for name, value in values.items():
            expected = self.output_shapes[name]
            if value.ndim != len(expected) or any(
                e is not None and e != v for e, v in zip(expected, value.shape, strict=True)
            ):
                logging.warning(
                    "teacher output cache entry %s has %s of shape %s, expected %s: recomputed",
                    path,
                    name,
                    value.shape,
                    expected,
                )
                return None
        return values

    def _write(self, path: str, values: Mapping[str, np.ndarray]) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(temporary, **values)
        os.replace(temporary, path)

    def lookup(
        self, inputs: np.ndarray, compute: Callable[[np.ndarray], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """The outputs for a batch of model inputs: cached ones read, the rest computed
        (in one call of ``compute`` on the missing images) and stored."""
        inputs = np.ascontiguousarray(inputs, np.float32)
        digests = [hashlib.sha256(one.tobytes()).hexdigest() for one in inputs]
        found = [self._read(self._path(d)) for d in digests]
        missing = [i for i, entry in enumerate(found) if entry is None]
        if missing:
            computed = compute(inputs[missing])
            for row, i in enumerate(missing):
                entry = {name: np.asarray(computed[name][row]) for name in self.output_shapes}
                self._write(self._path(digests[i]), entry)
                found[i] = entry
        self.misses += len(missing)
        self.hits += len(inputs) - len(missing)
        return {
            name: np.stack([entry[name] for entry in found]).astype(np.float32)
            for name in self.output_shapes
        }
