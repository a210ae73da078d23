"""Where the exporter gets images: calibration (int8), parity checks and metrics.

An image source is written as one string (``--representative_data``,
``--eval_data``):

- ``DATASET:DATA_DIR:SPLIT`` — a split of any dataset ``ka_tf.data.load`` reads, e.g.
  ``synth_street:/data/synth:train``. ``DATA_DIR`` may itself contain ``:`` (the name
  is before the first ``:``, the split after the last).
- an existing folder — every image under it, recursively (the ``image_folder``
  dataset), e.g. the unlabelled images a student was amalgamated on.

Images are resized (bilinear, antialiased) to the model's size; labels are kept at
their own size (predictions are resized to them for metrics).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence

import numpy as np

from ka_tf.constants import IMAGE
from ka_tf.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """A parsed image source.

    Attributes:
        dataset: Dataset name for ``ka_tf.data.load`` (``image_folder`` for a folder).
        data_dir: The dataset's root directory.
        split: The split (``all`` for a folder).
        text: The source as the user wrote it.
    """

    dataset: str
    data_dir: str
    split: str
    text: str

    def load(self):
        """The ``tf.data.Dataset`` of example dicts (unbatched, images at their own size)."""
        import ka_tf.data

        return ka_tf.data.load(self.dataset, data_dir=self.data_dir, split=self.split)

    def examples(self, limit: int | None = None, skip: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Yields up to ``limit`` example dicts as numpy arrays, after ``skip`` examples."""
        dataset = self.load().skip(skip)
        if limit is not None:
            dataset = dataset.take(limit)
        yield from dataset.as_numpy_iterator()

    def images(
        self, size: Sequence[int], limit: int | None = None, skip: int = 0
    ) -> Iterator[np.ndarray]:
        """Yields float32 ``[H, W, 3]`` images in 0..255 resized to ``size``."""
        from ka_tf.export.runtimes import resize_images

        for example in self.examples(limit, skip):
            yield resize_images(example[IMAGE][None], size)[0]


def parse_image_source(text: str, flag: str) -> ImageSource:
    """Parses ``DATASET:DATA_DIR:SPLIT`` or a folder path (see the module docstring).

    Raises:
        ConfigError: if ``text`` is neither, naming ``flag``.
    """
    if os.path.isdir(text):
        return ImageSource("image_folder", text, "all", text)
    parts = text.split(":")
    if len(parts) >= 3 and parts[0] and parts[-1]:
        name, split = parts[0], parts[-1]
        data_dir = ":".join(parts[1:-1])
        if not os.path.isdir(data_dir):
            raise ConfigError(
                f"{flag}={text}: data directory {data_dir!r} does not exist. Expected "
                f"DATASET:DATA_DIR:SPLIT (e.g. synth_street:/data/synth:train) or an image "
                f"folder."
            )
        from ka_tf.data import available_datasets

        if name not in available_datasets():
            raise ConfigError(
                f"{flag}={text}: unknown dataset {name!r}. Expected one of {available_datasets()}."
            )
        return ImageSource(name, data_dir, split, text)
    raise ConfigError(
        f"{flag}={text} is neither an existing image folder nor DATASET:DATA_DIR:SPLIT "
        f"(e.g. synth_street:/data/synth:train)."
    )
