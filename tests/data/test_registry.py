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


def test_a_leading_tilde_in_data_dir_is_the_home_directory(monkeypatch, tmp_path):
    # `--data_dir=~/x` reaches the tool unexpanded: bash expands `~` only at a word's start.
    seen = []

    def loader(data_dir: str, split: str):
        seen.append(data_dir)
        return tf.data.Dataset.from_tensor_slices({"image": np.zeros((1, 2, 2, 3), np.uint8)})

    monkeypatch.setitem(registry._EXTRA_LOADERS, "where", loader)
    monkeypatch.setenv("HOME", str(tmp_path))
    registry.load("where", "~/synth/128x256_seed0", "test")
    registry.load("where", "/abs/dir", "test")
    assert seen == [f"{tmp_path}/synth/128x256_seed0", "/abs/dir"]


def test_every_dataset_states_its_multi_worker_sharding():
    from ka_tf.data import registry

    assert set(registry.SHARDING) >= set(registry.available_datasets())
    assert all(policy in registry.SHARD_POLICIES for policy in registry.SHARDING.values())


def test_make_dataset_carries_its_sharding_policy(tmp_path):
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from ka_tf.data.pipeline import make_dataset

    for i in range(2):
        Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(tmp_path / f"{i}.png")
    dataset = make_dataset(
        "image_folder", str(tmp_path), "all", 2, training=False, load_options={"size": (32, 64)}
    )
    policy = dataset.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA


def test_register_dataset_rejects_an_unknown_sharding_policy():
    from ka_tf.data import registry

    with pytest.raises(ConfigError, match=r"sharding='ROWS'.*'DATA'"):
        registry.register_dataset("my_set_bad_policy", lambda **_: None, sharding="ROWS")
    assert "my_set_bad_policy" not in registry.available_datasets()
