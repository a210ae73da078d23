"""Checkpoint optimizer state is keyed by variable path, not by creation order."""

import keras
import numpy as np
import pytest

from ka_tf.errors import ModelFileError
from ka_tf.training.checkpoint import TrainingCheckpoint


def _model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden), name="net")


def _optimizer(model, reverse=False, kind=keras.optimizers.Adam):
    optimizer = kind()  # auto-named adam, adam_1, ...: a resumed run's names differ
    variables = list(model.trainable_variables)
    optimizer.build(variables[::-1] if reverse else variables)
    return optimizer


def _fill(optimizer, seed):
    rng = np.random.default_rng(seed)
    for variable in optimizer.variables:
        variable.assign(rng.normal(size=variable.shape).astype(variable.dtype))
    return {_slot(variable): np.asarray(variable.numpy()) for variable in optimizer.variables}


def _slot(variable):
    """The variable's path without its optimizer's (auto-numbered) name."""
    return variable.path.split("/", 1)[1]


def test_optimizer_state_follows_variable_paths_not_order(tmp_path):
    model = _model()
    optimizer = _optimizer(model)
    saved = _fill(optimizer, seed=0)
    TrainingCheckpoint(str(tmp_path), {"model": model}, optimizer).save(1)

    # A resumed run whose optimizer created its slots in another order.
    resumed = _optimizer(model, reverse=True)
    order = [_slot(v) for v in resumed.variables]
    assert order != [_slot(v) for v in optimizer.variables]  # the order really differs
    assert resumed.name != optimizer.name  # and so does the optimizer's name
    TrainingCheckpoint(str(tmp_path), {"model": model}, resumed).restore_latest()
    for variable in resumed.variables:
        np.testing.assert_array_equal(variable.numpy(), saved[_slot(variable)])


def test_checkpoint_of_another_optimizer_is_refused(tmp_path):
    model = _model()
    TrainingCheckpoint(str(tmp_path), {"model": model}, _optimizer(model)).save(1)
    other = _optimizer(model, kind=lambda: keras.optimizers.SGD(momentum=0.9))
    with pytest.raises(ModelFileError, match="does not match the optimizer"):
        TrainingCheckpoint(str(tmp_path), {"model": model}, other).restore_latest()


def test_position_keyed_checkpoint_of_an_earlier_version_still_restores(tmp_path):
    model = _model()
    optimizer = _optimizer(model)
    saved = _fill(optimizer, seed=1)
    checkpoint = TrainingCheckpoint(str(tmp_path), {"model": model}, optimizer)
    path = checkpoint.save(1)
    # Rewrite it as the earlier format did: optimizer/<index> in creation order.
    with np.load(f"{path}/state.npz") as state:
        arrays = {k: state[k] for k in state.files if not k.startswith("optimizer/")}
    for index, variable in enumerate(optimizer.variables):
        arrays[f"optimizer/{index:05d}"] = saved[_slot(variable)]
    with open(f"{path}/state.npz", "wb") as handle:
        np.savez(handle, **arrays)
    fresh = _optimizer(model)
    TrainingCheckpoint(str(tmp_path), {"model": model}, fresh).restore_latest()
    for variable in fresh.variables:
        np.testing.assert_array_equal(variable.numpy(), saved[_slot(variable)])
