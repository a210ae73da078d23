"""Fine-tuning targets computed once per transfer image, kept on disk, reused by every run.

In an amalgamation step the frozen teachers' targets (each teacher on the image and
on its mirror, and on each scale of ``amalgamate.target_scales``) cost about a
third of the step (far more with several scales), yet for a given image they never
change. :func:`prepare_target_cache` runs each teacher once per image of the
transfer split, on the whole unaugmented frame (flip-averaged as the step does), and
stores the targets; :meth:`TargetCache.attach` then joins each image's targets to it
(``teacher_target/<task>``) inside the input pipeline *before* augmentation, where
they are augmented as that task's labels would be, so the flip, zoom and
window of :func:`ka_tf.data.pipeline.augment_element` move them with the image (nearest
neighbour, each task's mirror rule) and colour jitter leaves them alone. The train
step reads them instead of running the teachers
(:meth:`~ka_tf.amalgamation.amalgamator.Amalgamator.cached_targets`).

These are not bit-for-bit the targets of the live step: a teacher that sees the whole
clean frame sees more context than on a jittered window, and zoomed targets are
resampled rather than recomputed. The study measured the effect (BUILD.md).

What is stored per task:

- ``classes`` (uint8 ``[N, H, W]``): the argmax of a class-predicting task whose
  fine-tuning loss reads only the argmax (``hard_ce``).
- ``map`` (float16, the output's shape): every other task (depth metres, normals,
  mask probabilities) and a class-predicting task whose loss reads the whole
  distribution (``kl``): its logits, 2 bytes × classes a pixel (2.5 GB for 2,000
  128×256 frames of 19 classes; memory-mapped, not read into memory). float16 keeps
  ~3 significant digits, far below the teachers' own error.

Each task has its own folder, so runs that share one teacher share its targets: the
study's single-teacher control reads the student's, and a student whose other
teacher changes recomputes only that teacher's. Staleness: a folder is named by a
hash of everything its targets depend on — the teacher file's sha256, the task, its
storage form, the flip averaging and scales, the format version and the fingerprints
of all the images in order — so a changed teacher or a re-rendered split lands in
another folder and a stale one is never read. A folder whose arrays fail their
recorded sha256 (a crash mid-write, a tampered file) is deleted and rebuilt, with
one warning.

The default root is ``$KA_TF_TARGET_CACHE``, else ``~/.cache/ka_tf/teacher_targets``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from ka_tf.constants import IMAGE, TEACHER_TARGET
from ka_tf.errors import ConfigError
from ka_tf.io_utils import atomic_write_json, file_sha256
from ka_tf.tasks import get_task

CACHE_ENV = "KA_TF_TARGET_CACHE"
FORMAT_VERSION = 2  # 2: one folder per task
CLASSES, MAP = "classes", "map"
MANIFEST = "manifest.json"
FINGERPRINTS = "fingerprints.npy"


def default_cache_root() -> str:
    """``$KA_TF_TARGET_CACHE`` if set, else ``~/.cache/ka_tf/teacher_targets``."""
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "ka_tf", "teacher_targets"
    )


def storage_form(task: str, loss: keras.losses.Loss) -> str:
    """How ``task``'s targets are stored for ``loss``: ``classes`` where the task
    predicts classes and the loss reads only the teacher's argmax
    (``reads_target_classes``), else ``map`` (the output itself, float16)."""
    if get_task(task).has_classes and getattr(loss, "reads_target_classes", False):
        return CLASSES
    return MAP


def image_fingerprints(images: tf.Tensor) -> tf.Tensor:
    """int64 ``[B]``: a 64-bit fingerprint of each uint8 image's bytes in ``[B, H, W, 3]``."""
    flat = tf.reshape(tf.cast(images, tf.uint8), [tf.shape(images)[0], -1])
    return tf.bitcast(tf.fingerprint(flat), tf.int64)


class TargetCache:
    """One transfer split's targets: ``task → [N, ...]`` arrays and a fingerprint index.

    Build one with :func:`prepare_target_cache`.

    Attributes:
        folders: Task → the folder its array lives in.
        forms: Task → ``classes`` or ``map``.
        size: Images cached.
        computed: Tasks whose targets this object computed (the rest were read from
            an earlier run's folders).
    """

    def __init__(
        self, folders: Mapping[str, str], forms: Mapping[str, str], computed: Sequence[str]
    ) -> None:
        self.folders = dict(folders)
        self.forms = dict(forms)
        self.computed = [task for task in forms if task in computed]
        self._arrays = {
            task: np.load(os.path.join(self.folders[task], f"{task}.npy"), mmap_mode="r")
            for task in forms
        }
        # Every folder indexes the same images in the same order (their key says so).
        fingerprints = np.load(os.path.join(self.folders[next(iter(forms))], FINGERPRINTS))
        self.size = int(fingerprints.shape[0])
        # Identical images have identical targets: the first row serves them all.
        keys, rows = np.unique(fingerprints, return_index=True)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.int64), tf.constant(rows, tf.int64)
            ),
            default_value=-1,
        )

    @property
    def built(self) -> bool:
        """Whether this object computed any task's targets."""
        return bool(self.computed)

    def record(self) -> dict[str, Any]:
        """What a run's state and report keep of the cache."""
        return {
            "folders": self.folders,
            "images": self.size,
            "forms": self.forms,
            "computed": self.computed,  # the rest were read from an earlier run's cache
        }

    def class_frequencies(self, task: str, num_classes: int) -> np.ndarray:
        """Pixel counts ``[num_classes]`` of each class in ``task``'s cached targets
        (a ``classes`` form: the teacher's argmax over the whole split)."""
        if self.forms.get(task) != CLASSES:
            raise ConfigError(
                f"the teacher-target cache holds {task} as {self.forms.get(task)!r}, not "
                f"as classes: class frequencies need a class task whose fine-tuning loss "
                f"is hard_ce."
            )
        array = self._arrays[task]
        counts = np.zeros(num_classes, np.int64)
        for start in range(0, array.shape[0], 256):  # memory-mapped: a chunk at a time
            chunk = np.asarray(array[start : start + 256]).ravel()
            counts += np.bincount(chunk[chunk < num_classes], minlength=num_classes)
        return counts

    def _rows(self, row: np.ndarray) -> list[np.ndarray]:
        index = int(row)
        if index < 0:
            raise ValueError(
                f"an image of the training pipeline is not in the teacher-target cache "
                f"{sorted(set(self.folders.values()))}: the split changed during the run. "
                f"Re-run to rebuild it."
            )
        return [np.asarray(self._arrays[task][index]) for task in self.forms]

    def attach(self, element: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """``element`` plus each task's cached targets under ``teacher_target/<task>``
        (a ``tf.data`` map function, applied before augmentation)."""
        row = self._table.lookup(image_fingerprints(element[IMAGE][None])[0])
        dtypes = [tf.as_dtype(self._arrays[task].dtype) for task in self.forms]
        values = tf.numpy_function(self._rows, [row], dtypes, stateful=False)
        out = dict(element)
        for task, value in zip(self.forms, values, strict=True):
            out[f"{TEACHER_TARGET}{task}"] = tf.ensure_shape(value, self._arrays[task].shape[1:])
        return out


def prepare_target_cache(
    images: Iterable[Any],
    compute_targets: Callable[[tf.Tensor, Sequence[str]], Mapping[str, tf.Tensor]],
    teacher_fingerprints: Mapping[str, str],
    forms: Mapping[str, str],
    flip_average: bool,
    root: str | None = None,
    target_scales: Sequence[float] = (1.0,),
) -> TargetCache:
    """The cache of these images' targets: each task's read from disk when its folder
    holds exactly them, the others computed (one pass of their teachers) and written.

    Args:
        images: Batches of uint8 ``[B, H, W, 3]`` images, the whole split, unaugmented,
            in a fixed order (the split read with ``training=False``).
        compute_targets: ``(batch, tasks)`` → task → the teacher target the train step
            would compute for it (the loss's target form), for those tasks only.
        teacher_fingerprints: Task → :func:`ka_tf.io_utils.path_sha256` of its teacher file.
        forms: Task → :func:`storage_form`.
        flip_average: Whether ``compute_targets`` averages over the mirror image.
        target_scales: The scales ``compute_targets`` averages over.
        root: The cache root (default :func:`default_cache_root`).

    Returns:
        The cache, its arrays memory-mapped.
    """
    batches = [np.asarray(batch) for batch in images]
    if not batches:
        raise ConfigError("amalgamate.cache_targets: the transfer split has no images.")
    fingerprints = np.concatenate([image_fingerprints(b).numpy() for b in batches])
    shared = {
        "format": FORMAT_VERSION,
        "flip_average": bool(flip_average),
        "target_scales": [float(x) for x in target_scales],
        "image_shape": list(batches[0].shape[1:]),
        "images": hashlib.sha256(fingerprints.tobytes()).hexdigest(),
    }
    keys, folders = {}, {}
    for task in forms:
        key = {**shared, "task": task, "teacher": teacher_fingerprints[task], "form": forms[task]}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        keys[task] = key
        folders[task] = os.path.join(root or default_cache_root(), digest)
    missing = [task for task in forms if not _intact(folders[task], keys[task])]
    for task in missing:
        if os.path.exists(folders[task]):
            logging.warning(
                "Teacher-target cache %s is incomplete or damaged: rebuilding it.", folders[task]
            )
            shutil.rmtree(folders[task])
    if missing:
        _build(folders, keys, batches, fingerprints, compute_targets, forms, missing)
    return TargetCache(folders, forms, computed=missing)


def _intact(folder: str, key: Mapping[str, Any]) -> bool:
    """Whether ``folder`` holds a complete cache for ``key`` whose arrays match their
    recorded sha256."""
    manifest_path = os.path.join(folder, MANIFEST)
    if not os.path.exists(manifest_path):
        return False
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        if manifest.get("key") != json.loads(json.dumps(key)):
            return False
        return all(
            file_sha256(os.path.join(folder, name)) == sha
            for name, sha in manifest["sha256"].items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def stored_target(form: str, target: Any) -> np.ndarray:
    """A batch of teacher targets as the cache stores them: ``classes`` → uint8 argmax,
    ``map`` → float16."""
    target = np.asarray(target)
    if form == CLASSES:
        return np.argmax(target, axis=-1).astype(np.uint8)
    return target.astype(np.float16)


def _build(folders, keys, batches, fingerprints, compute_targets, forms, tasks) -> None:
    """Runs the teachers of ``tasks`` over every batch and writes each task's array,
    then its manifest (last: a folder without it is incomplete)."""
    total = int(fingerprints.shape[0])
    print(
        f"\n== Caching teacher targets ({', '.join(tasks)}): {total} images -> "
        f"{', '.join(folders[task] for task in tasks)} ==",
        flush=True,
    )
    progress = keras.utils.Progbar(total, unit_name="image")
    arrays: dict[str, np.ndarray] = {}
    start = 0
    for batch in batches:
        targets = compute_targets(tf.constant(batch), tuple(tasks))
        for task in tasks:
            stored = stored_target(forms[task], targets[task])
            if task not in arrays:
                os.makedirs(folders[task], exist_ok=True)
                arrays[task] = np.lib.format.open_memmap(
                    os.path.join(folders[task], f"{task}.npy"),
                    mode="w+",
                    dtype=stored.dtype,
                    shape=(total, *stored.shape[1:]),
                )
            arrays[task][start : start + len(batch)] = stored
        start += len(batch)
        progress.update(start)
    for task in tasks:
        arrays[task].flush()
        del arrays[task]
        np.save(os.path.join(folders[task], FINGERPRINTS), fingerprints)
        names = [FINGERPRINTS, f"{task}.npy"]
        atomic_write_json(
            os.path.join(folders[task], MANIFEST),
            {
                "key": keys[task],
                "size": total,
                "sha256": {name: file_sha256(os.path.join(folders[task], name)) for name in names},
            },
        )
