"""Datasets: one entry point, :func:`load`, for every dataset ka_tf reads.

Every dataset yields dict elements with this contract (keys present where the
dataset has them; images-only datasets have ``image`` alone):

- ``image``: uint8 [H, W, 3] RGB.
- ``semseg``: uint8 [H, W] class ids, 255 = ignore.
- ``depth``: float32 [H, W] metres, 0 = invalid.
- ``normals``: float32 [H, W, 3] unit vectors in the camera frame, 0 = invalid.

Example:
    >>> ds = ka_tf.data.load("synth_street", data_dir="/tmp/synth", split="val")
    >>> next(iter(ds))["image"].shape
    TensorShape([128, 256, 3])
"""

from ka_tf.data.registry import available_datasets, load, register_dataset

__all__ = ["available_datasets", "load", "register_dataset"]
