"""A teacher run keeps the weights of its best validation epoch, not its last."""

import json

import keras
import numpy as np

from ka_tf.training.teacher import KeepBest


def _model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))


def test_keep_best_writes_the_lowest_val_loss_epoch_and_resumes_its_record(tmp_path):
    model = _model()
    path = str(tmp_path / "best.weights.h5")
    callback = KeepBest(path)
    callback.set_model(model)
    epochs = []
    for epoch, val_loss in enumerate([2.0, 0.5, 1.5, None]):
        weights = [np.full_like(w, epoch + 1.0) for w in model.get_weights()]
        model.set_weights(weights)
        epochs.append(weights)
        callback.on_epoch_end(epoch, {"loss": 1.0} if val_loss is None else {"val_loss": val_loss})
    with open(path + ".json") as handle:
        assert json.load(handle) == {"val_loss": 0.5, "epoch": 2}
    restored = _model()
    restored.load_weights(path)
    for got, want in zip(restored.get_weights(), epochs[1], strict=True):
        np.testing.assert_array_equal(got, want)

    # A resumed run reads the record: a worse epoch does not replace the best.
    resumed = KeepBest(path)
    resumed.set_model(model)
    assert resumed.best == 0.5
    resumed.on_epoch_end(4, {"val_loss": 0.7})
    restored.load_weights(path)
    np.testing.assert_array_equal(restored.get_weights()[0], epochs[1][0])
    resumed.on_epoch_end(5, {"val_loss": 0.25})
    with open(path + ".json") as handle:
        assert json.load(handle) == {"val_loss": 0.25, "epoch": 6}
