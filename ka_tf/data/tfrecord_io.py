"""Sharded TFRecord datasets with a JSON spec, written atomically, verified on read.

A dataset directory holds shards ``data-00000-of-00004.tfrecord`` ... and a
``spec.json`` describing the features (dtype, shape, encoding), the shards (record
count, size, SHA-256) and free-form metadata. Writing is atomic at two levels:

* each shard is written under a temporary name and renamed when complete;
* the whole directory is built in a staging directory beside the target, the spec
  written last, then swapped in by renames. A generation killed at any point
  leaves either the previous complete dataset or no ``spec.json`` — never a
  half-written shard that a reader would take for valid.

Readers check every shard's size and checksum against the spec first, so a
truncated or corrupted file is reported as a :class:`~ka_tf.errors.DataError`
naming it, instead of failing somewhere inside a training loop.

Encodings: ``png`` (uint8 [H, W] or [H, W, C], lossless) and ``raw`` (the array's
bytes, optionally stored in a smaller ``storage_dtype`` such as float16).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ka_tf.errors import DataError
from ka_tf.io_utils import atomic_write_json, file_sha256

SPEC_NAME = "spec.json"
FORMAT = "ka_tf.tfrecord/1"
ENCODINGS = ("png", "raw")


def feature(dtype: str, shape: Sequence[int], encoding: str = "raw", storage_dtype=None) -> dict:
    """One feature's entry in a spec.

    Args:
        dtype: The decoded numpy/TF dtype name, e.g. ``"uint8"``, ``"float32"``.
        shape: The static shape of one element.
        encoding: ``"png"`` (uint8 only) or ``"raw"``.
        storage_dtype: For ``raw``, the dtype stored on disk (defaults to ``dtype``).
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}.")
    if encoding == "png" and dtype != "uint8":
        raise ValueError(f"png encoding needs dtype uint8, got {dtype}.")
    entry = {"dtype": dtype, "shape": [int(v) for v in shape], "encoding": encoding}
    if encoding == "raw":
        entry["storage_dtype"] = storage_dtype or dtype
    return entry


def _encode(value: np.ndarray, spec: dict, name: str) -> bytes:
    array = np.asarray(value)
    if list(array.shape) != spec["shape"]:
        raise ValueError(f"feature {name!r} has shape {array.shape}, spec says {spec['shape']}.")
    if spec["encoding"] == "png":
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
    return np.ascontiguousarray(array.astype(spec["storage_dtype"])).tobytes()


def serialize_example(record: dict[str, np.ndarray], features: dict[str, dict]) -> bytes:
    """One ``tf.train.Example`` (bytes) holding every feature of ``record``, encoded."""
    import tensorflow as tf

    feature_map = {
        name: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[_encode(record[name], spec, name)])
        )
        for name, spec in features.items()
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature_map))
    # The feature map is a protobuf map: without ``deterministic`` its key order, and so
    # the shard bytes, change from process to process.
    return example.SerializeToString(deterministic=True)


def shard_names(num_shards: int) -> list[str]:
    """File names of ``num_shards`` shards."""
    return [f"data-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]


def _write_shards(
    directory: str,
    records: Iterator[dict[str, np.ndarray]],
    features: dict[str, dict],
    num_records: int,
    records_per_shard: int,
) -> list[dict[str, Any]]:
    import tensorflow as tf

    num_shards = max(1, math.ceil(num_records / records_per_shard))
    shards = []
    for index, name in enumerate(shard_names(num_shards)):
        count = min(records_per_shard, num_records - index * records_per_shard)
        final = os.path.join(directory, name)
        tmp = os.path.join(directory, f".{name}.tmp")
        with tf.io.TFRecordWriter(tmp) as writer:
            for _ in range(count):
                try:
                    record = next(records)
                except StopIteration:
                    raise ValueError(
                        f"expected {num_records} records, the source ended early."
                    ) from None
                writer.write(serialize_example(record, features))
        os.replace(tmp, final)
        shards.append(
            {
                "file": name,
                "num_records": count,
                "num_bytes": os.path.getsize(final),
                "sha256": file_sha256(final),
            }
        )
    return shards


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _dead_writers_leftovers(parent: str, base: str) -> list[str]:
    """Staging/old directories of ``base`` left by writers that were killed."""
    leftovers = []
    for name in os.listdir(parent):
        for kind in ("staging", "old"):
            prefix = f".{base}.{kind}-"
            suffix = name[len(prefix) :]
            if name.startswith(prefix) and suffix.isdigit() and not _pid_alive(int(suffix)):
                leftovers.append(os.path.join(parent, name))
    return leftovers


def write_dataset(
    directory: str,
    records: Iterable[dict[str, np.ndarray]],
    features: dict[str, dict],
    num_records: int,
    metadata: dict[str, Any] | None = None,
    records_per_shard: int = 256,
) -> dict[str, Any]:
    """Writes ``records`` as a sharded TFRecord dataset in ``directory``, atomically.

    Builds everything in a staging directory beside ``directory`` and swaps it in
    only when complete (the spec last), replacing a previous dataset there.

    Args:
        directory: The dataset directory (created; replaced if it exists).
        records: Dicts of numpy arrays, one per record, keys as in ``features``.
        features: Feature name -> :func:`feature` entry.
        num_records: How many records ``records`` yields.
        metadata: JSON-able facts stored in the spec (e.g. how it was generated).
        records_per_shard: Records per shard file.

    Returns:
        The spec written.
    """
    if num_records < 1:
        raise ValueError(f"num_records must be >= 1, got {num_records}.")
    directory = os.path.abspath(directory)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(directory)
    staging = os.path.join(parent, f".{base}.staging-{os.getpid()}")
    old = os.path.join(parent, f".{base}.old-{os.getpid()}")
    for leftover in (staging, old, *_dead_writers_leftovers(parent, base)):
        shutil.rmtree(leftover, ignore_errors=True)
    os.makedirs(staging)
    try:
        shards = _write_shards(staging, iter(records), features, num_records, records_per_shard)
        spec = {
            "format": FORMAT,
            "num_records": num_records,
            "features": features,
            "shards": shards,
            "metadata": metadata or {},
        }
        atomic_write_json(os.path.join(staging, SPEC_NAME), spec)
        if os.path.exists(directory):
            os.replace(directory, old)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return spec


def read_spec(directory: str) -> dict[str, Any]:
    """Reads and checks ``directory/spec.json``.

    Raises:
        DataError: if it is missing (an incomplete or absent dataset) or malformed.
    """
    path = os.path.join(directory, SPEC_NAME)
    if not os.path.isfile(path):
        raise DataError(
            f"no complete dataset in {directory}: {SPEC_NAME} is missing (the dataset was never "
            f"written there, or its generation was interrupted). Generate it again."
        )
    try:
        with open(path, encoding="utf-8") as handle:
            spec = json.load(handle)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path}: {error}. Generate the dataset again.") from error
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise DataError(f"{path} is not a {FORMAT} spec. Generate the dataset again.")
    for key in ("features", "shards", "num_records"):
        if key not in spec:
            raise DataError(f"{path} lacks {key!r}. Generate the dataset again.")
    return spec


def verify_shards(directory: str, spec: dict[str, Any], checksums: bool = True) -> None:
    """Checks that every shard exists with the size (and SHA-256) the spec records.

    Raises:
        DataError: naming the first missing, truncated or corrupted shard.
    """
    for shard in spec["shards"]:
        path = os.path.join(directory, shard["file"])
        if not os.path.isfile(path):
            raise DataError(f"shard {path} is missing. Generate the dataset again.")
        size = os.path.getsize(path)
        if size != shard["num_bytes"]:
            raise DataError(
                f"shard {path} is truncated or corrupt: {size} bytes, the spec records "
                f"{shard['num_bytes']}. Delete {directory} and generate the dataset again."
            )
        if checksums and file_sha256(path) != shard["sha256"]:
            raise DataError(
                f"shard {path} is corrupt: its SHA-256 does not match the spec. Delete "
                f"{directory} and generate the dataset again."
            )


def _decoder(features: dict[str, dict]):
    import tensorflow as tf

    description = {name: tf.io.FixedLenFeature([], tf.string) for name in features}

    def decode(serialized):
        parsed = tf.io.parse_single_example(serialized, description)
        out = {}
        for name, spec in features.items():
            shape = spec["shape"]
            if spec["encoding"] == "png":
                channels = shape[2] if len(shape) == 3 else 1
                value = tf.io.decode_png(parsed[name], channels=channels, dtype=tf.uint8)
                if len(shape) == 2:
                    value = value[..., 0]
            else:
                value = tf.io.decode_raw(parsed[name], tf.dtypes.as_dtype(spec["storage_dtype"]))
                value = tf.cast(value, tf.dtypes.as_dtype(spec["dtype"]))
            out[name] = tf.ensure_shape(tf.reshape(value, shape), shape)
        return out

    return decode


def load_dataset(
    directory: str,
    keys: Sequence[str] | None = None,
    shuffle: bool = False,
    seed: int = 0,
    verify: bool = True,
):
    """Reads a dataset written by :func:`write_dataset` as a ``tf.data.Dataset`` of dicts.

    Args:
        directory: The dataset directory.
        keys: Features to decode (default: all); others are not parsed.
        shuffle: Shuffle shard order and records (seeded, reshuffled each epoch).
        seed: Shuffle seed.
        verify: Check shard sizes and checksums first (see :func:`verify_shards`).

    Returns:
        Dicts of tensors with static shapes from the spec.

    Raises:
        DataError: on a missing/incomplete dataset, a truncated or corrupt shard,
            or an unknown key.
    """
    import tensorflow as tf

    spec = read_spec(directory)
    if verify:
        verify_shards(directory, spec)
    features = spec["features"]
    if keys is not None:
        unknown = sorted(set(keys) - set(features))
        if unknown:
            raise DataError(f"{directory} has no feature(s) {unknown}; it has {sorted(features)}.")
        features = {name: features[name] for name in keys}
    files = [os.path.join(directory, shard["file"]) for shard in spec["shards"]]
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if shuffle:
        dataset = dataset.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(4, len(files)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        dataset = dataset.shuffle(min(1024, spec["num_records"]), seed=seed)
    else:  # records in written order
        dataset = dataset.flat_map(tf.data.TFRecordDataset)
    dataset = dataset.map(_decoder(features), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.apply(tf.data.experimental.assert_cardinality(spec["num_records"]))
