"""A frozen model's scores on a labelled split, computed once and kept on disk.

Every amalgamation run scores its teachers on the test split beside the student, and
those scores never change while the teacher file and the split do not: a study's
seeds, a second ``make demo`` and the controls all score the same teachers on the
same frames (about 15 s a teacher on the 500 street test frames here). :func:`scores`
keys each result by everything it depends on — the model file's sha256, a sha256 of
every array of every batch the evaluation reads (images and labels, in order), the
evaluation's settings (tasks, batch limit, depth range), the evaluation's own source
(``evaluation.py``, ``metrics/``, ``tasks/``) and a format version — so a changed
teacher, a re-rendered split, another depth clamp or a changed metric lands in another
entry and a stale score is never read. An entry that cannot be read is computed again and
rewritten, with one warning.

The default root is ``$KA_TF_SCORE_CACHE``, else ``~/.cache/ka_tf/scores``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from ka_tf.io_utils import atomic_write_json, path_sha256

CACHE_ENV = "KA_TF_SCORE_CACHE"
FORMAT_VERSION = 1


def default_cache_root() -> str:
    """``$KA_TF_SCORE_CACHE`` if set, else ``~/.cache/ka_tf/scores``."""
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "ka_tf", "scores"
    )


def _metrics_code() -> str:
    """sha256 of the evaluation's own source (ka_tf/evaluation.py, ka_tf/metrics/,
    ka_tf/tasks/): a changed metric makes every stored score stale."""
    package = os.path.dirname(os.path.abspath(__file__))
    files = [os.path.join(package, "evaluation.py")]
    for folder in ("metrics", "tasks"):
        root = os.path.join(package, folder)
        files += sorted(
            os.path.join(root, name) for name in os.listdir(root) if name.endswith(".py")
        )
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.relpath(path, package).encode())
        with open(path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def dataset_fingerprint(dataset: tf.data.Dataset, max_batches: int | None = None) -> str:
    """sha256 of every array of every batch of ``dataset`` (the first ``max_batches``),
    keys in sorted order: what an evaluation of it reads."""
    if max_batches is not None:
        dataset = dataset.take(max_batches)
    digest = hashlib.sha256()
    for batch in dataset:
        for key in sorted(batch):
            value = np.ascontiguousarray(batch[key].numpy())
            digest.update(f"{key}:{value.dtype}:{value.shape}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


def scores(
    model_path: str,
    data_fingerprint: str,
    settings: Mapping[str, Any],
    compute: Callable[[], Mapping[str, float]],
    root: str | None = None,
) -> tuple[dict[str, float], bool]:
    """The scores of the model in ``model_path`` on the batches ``data_fingerprint``
    names: read from the cache when it holds this model, these batches and these
    settings, else ``compute()``d and written.

    Args:
        model_path: The model file (or SavedModel folder) the scores are of.
        data_fingerprint: :func:`dataset_fingerprint` of the batches ``compute``
            evaluates (computed once by a caller that scores several models on them).
        settings: Everything else the scores depend on (tasks, depth range, ...):
            JSON-serialisable.
        compute: Evaluates the model; called only on a miss.
        root: The cache root (default :func:`default_cache_root`).

    Returns:
        ``(scores, read)``: ``read`` is True where they came from the cache.
    """
    key = {
        "format": FORMAT_VERSION,
        "metrics_code": _metrics_code(),
        "model": path_sha256(model_path),
        "data": data_fingerprint,
        "settings": json.loads(json.dumps(dict(settings), sort_keys=True)),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = os.path.join(root or default_cache_root(), f"{digest}.json")
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                entry = json.load(handle)
            if entry["key"] == key:
                return {name: float(value) for name, value in entry["scores"].items()}, True
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        logging.warning("Score cache entry %s is unreadable or not this key: recomputing.", path)
    result = {name: float(value) for name, value in compute().items()}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_json(
        path, {"key": key, "model_path": os.path.abspath(model_path), "scores": result}
    )
    return result, False
