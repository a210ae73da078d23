"""The name → loader table behind :func:`ka_tf.data.load`.

Loaders live in their own modules and are imported only when their dataset is
asked for, so that reading NYUv2 never imports the synthetic renderer. A loader is
a function ``(data_dir: str, split: str, **options) -> tf.data.Dataset``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import gin

from ka_tf.errors import ConfigError

# Dataset name -> "module:function". Modules register by being listed here.
_LOADERS: dict[str, str] = {
    "synth_street": "ka_tf.data.synth_dataset:load_synth_street",
    "synth_indoor": "ka_tf.data.synth_dataset:load_synth_indoor",
    "nyuv2": "ka_tf.data.nyuv2:load_nyuv2",
    "cityscapes": "ka_tf.data.cityscapes:load_cityscapes",
    "image_folder": "ka_tf.data.image_folder:load_image_folder",
}

_EXTRA_LOADERS: dict[str, Callable[..., Any]] = {}

# How the workers of a multi-worker run share each dataset's batches, chosen here and
# recorded in every amalgamation report (not left to TensorFlow's default, FILE, which
# fails on a split stored as one TFRecord file and, where it works, gives each worker
# other images than a one-machine run). DATA: every worker runs the whole pipeline and
# keeps its replicas' rows of each global batch (ka_tf.training.phase._worker_slices),
# so N workers train on exactly the batches of one machine, which is what makes
# --deterministic runs and resumed runs agree across cluster sizes. Why no dataset
# here uses FILE: the synthetic splits are a few TFRecord shards (one at the demo's
# sizes); image folders, NYUv2 (one .mat file) and Cityscapes are read from a frame
# list checked up front (ka_tf.data.frame_dataset), which has no files for tf.data to
# split. The cost of DATA: each worker
# decodes every image of the batch, not 1/N of them (the synthetic input pipeline
# alone runs ~39x faster than an amalgamation step: BUILD.md, Input sharding).
SHARDING: dict[str, str] = {
    "synth_street": "DATA",
    "synth_indoor": "DATA",
    "nyuv2": "DATA",
    "cityscapes": "DATA",
    "image_folder": "DATA",
}
SHARD_POLICIES = ("DATA", "FILE", "OFF")  # names of tf.data's AutoShardPolicy


def sharding_policy(name: str) -> str:
    """The multi-worker sharding policy of dataset ``name`` (``SHARDING``; DATA for
    datasets registered with :func:`register_dataset` unless they say otherwise)."""
    _resolve(name)  # an unknown name is a ConfigError
    return SHARDING.get(name, "DATA")


def with_sharding(dataset, name: str):
    """``dataset`` with its :func:`sharding_policy` set as tf.data's auto-shard policy.

    ka_tf's own training and evaluation inputs shard by rows themselves under a
    multi-worker strategy; the option is for any other path that distributes the
    dataset (``strategy.experimental_distribute_dataset``, a user's own loop).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(
        tf.data.experimental.AutoShardPolicy, sharding_policy(name)
    )
    return dataset.with_options(options)


def register_dataset(name: str, loader: Callable[..., Any], sharding: str = "DATA") -> None:
    """Registers an extra loader under ``name`` (for users' own datasets).

    Args:
        name: The dataset name (``make_dataset.name``).
        loader: ``(data_dir, split, **options) -> tf.data.Dataset``.
        sharding: Its multi-worker sharding policy (see ``SHARDING``): ``DATA``, or
            ``FILE``/``OFF`` for a dataset that shards itself.
    """
    if name in _LOADERS or name in _EXTRA_LOADERS:
        raise ConfigError(f"dataset {name!r} is already registered.")
    if sharding not in SHARD_POLICIES:
        raise ConfigError(
            f"unknown sharding policy. Received: sharding={sharding!r}. Expected one of "
            f"{SHARD_POLICIES}."
        )
    _EXTRA_LOADERS[name] = loader
    SHARDING[name] = sharding


def available_datasets() -> list[str]:
    """Names accepted by :func:`load`."""
    return sorted([*_LOADERS, *_EXTRA_LOADERS])


def _resolve(name: str) -> Callable[..., Any]:
    if name in _EXTRA_LOADERS:
        return _EXTRA_LOADERS[name]
    if name not in _LOADERS:
        raise ConfigError(
            f"unknown dataset. Received: dataset={name!r}. Expected one of {available_datasets()}."
        )
    module_name, function_name = _LOADERS[name].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def accepts_option(name: str, option: str) -> bool:
    """Whether dataset ``name``'s loader takes ``option`` (e.g. ``images_only``)."""
    import inspect

    return option in inspect.signature(_resolve(name)).parameters


@gin.configurable
def load(name: str, data_dir: str, split: str, **options: Any):
    """Loads dataset ``name`` from ``data_dir`` as a ``tf.data.Dataset`` of dicts.

    Args:
        name: A name from :func:`available_datasets`.
        data_dir: The dataset's root directory; a leading ``~`` is the user's home (a
            shell does not expand it inside ``--data_dir=~/...``).
        split: The split to read (dataset-specific names, e.g. ``train``/``test``), or
            several joined by ``+`` (e.g. ``"teacher+transfer"``): their elements one
            split after the other, each split in its own order.
        **options: Loader-specific options (resizing, label sets, shuffling, ...).

    Returns:
        A dataset of dicts following the contract in :mod:`ka_tf.data`.

    Raises:
        ConfigError: On an empty split name in ``split``, or splits whose elements
            differ (e.g. a labelled and an images-only split without ``images_only``).
    """
    loader = _resolve(name)
    data_dir = os.path.expanduser(data_dir)
    parts = [part.strip() for part in split.split("+")]
    if len(parts) == 1:
        return loader(data_dir=data_dir, split=split, **options)
    if not all(parts):
        raise ConfigError(
            f"empty split name in split={split!r}: join split names with '+', "
            f"e.g. 'teacher+transfer'."
        )
    datasets = [loader(data_dir=data_dir, split=part, **options) for part in parts]
    joined = datasets[0]
    for part, dataset in zip(parts[1:], datasets[1:], strict=True):
        if dataset.element_spec != joined.element_spec:
            raise ConfigError(
                f"split={split!r}: split {part!r} of {name!r} has elements "
                f"{sorted(dataset.element_spec)} but {parts[0]!r} has "
                f"{sorted(joined.element_spec)}; join splits with the same keys, or read "
                f"images only (make_dataset.images_only = True)."
            )
        joined = joined.concatenate(dataset)
    return joined
