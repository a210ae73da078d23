"""``ka_tf.data.load``: the loader table and splits joined with '+'."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ka_tf.data import registry
from ka_tf.errors import ConfigError

SPLIT_SIZES = {"teacher": 3, "transfer": 2}


def _two_split_loader(data_dir: str, split: str, images_only: bool = False):
    """A dataset whose images are filled with a split-specific value per element."""
    del data_dir
    if split not in SPLIT_SIZES:
        raise ConfigError(f"no split {split!r}")
    offset = 100 if split == "transfer" else 0
    values = np.arange(SPLIT_SIZES[split], dtype=np.uint8) + offset
    images = np.broadcast_to(values[:, None, None, None], (len(values), 2, 2, 3)).copy()
    element = {"image": images}
    if split == "teacher" and not images_only:
        element["semseg"] = np.zeros((len(values), 2, 2), np.uint8)
    return tf.data.Dataset.from_tensor_slices(element)


@pytest.fixture
def two_splits(monkeypatch):
    monkeypatch.setitem(registry._EXTRA_LOADERS, "two_splits", _two_split_loader)
    return "two_splits"


def test_joined_splits_yield_each_split_in_turn(two_splits):
    joined = registry.load(two_splits, "unused", "teacher + transfer", images_only=True)
    firsts = [int(element["image"][0, 0, 0]) for element in joined]
    assert firsts == [0, 1, 2, 100, 101]


def test_joined_splits_must_have_the_same_keys(two_splits):
    with pytest.raises(ConfigError, match=r"'transfer'.*images_only = True"):
        registry.load(two_splits, "unused", "teacher+transfer")


def test_empty_split_name_in_a_join(two_splits):
    with pytest.raises(ConfigError, match=r"empty split name in split='teacher\+'"):
        registry.load(two_splits, "unused", "teacher+")


def test_unknown_split_in_a_join_is_the_loaders_error(two_splits):
    with pytest.raises(ConfigError, match="no split 'val'"):
        registry.load(two_splits, "unused", "teacher+val", images_only=True)
