"""Label tables of the real datasets, as data: Cityscapes ids and NYUv2 class mappings.

Sources:

- Cityscapes: the official label table, ``cityscapesscripts/helpers/labels.py`` of
  the Cityscapes scripts (https://github.com/mcordts/cityscapesScripts, package
  ``cityscapesscripts`` 2.3.0 on PyPI). ``labelIds`` PNGs hold the ``id`` column; the
  19 evaluated classes are the ``trainId`` column; every other id is ignored (255).
- NYUv2 894 -> 40: ``mapClass`` of ``classMapping40.mat`` from Gupta, Arbelaez and
  Malik, "Perceptual Organization and Recognition of Indoor Scenes from RGB-D
  Images", CVPR 2013 (distributed with their code and with
  https://github.com/ankurhanda/nyuv2-meta-data). Entry ``k - 1`` is the 40-class id
  (1-based) of raw NYUv2 label ``k`` (1..894); raw 0 means unlabelled. The table
  below was cross-checked entry by entry against two independent public copies
  (894 entries; each of the 37 specific classes 1..37 is the image of exactly one
  raw id, the rest go to 38/39/40 = other structure/furniture/prop).
- NYUv2 40 -> 13: ``class13Mapping.mat`` of the same nyuv2-meta-data repository, the
  13-class set of Couprie et al., "Indoor Semantic Segmentation using depth
  information", ICLR 2013 workshop, as used by Eigen & Fergus (ICCV 2015). Its 1-based
  class order is the alphabetical order of :data:`ka_tf.constants.NYU13_CLASSES`.

The lookup tables built here are 0-based with 255 = ignore, ready for ``table[raw]``.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from ka_tf.constants import IGNORE_LABEL, NYU13_CLASSES

# (name, id, trainId) of every Cityscapes label with id >= 0 (cityscapesscripts labels.py).
CITYSCAPES_LABELS: Final = (
    ("unlabeled", 0, 255),
    ("ego vehicle", 1, 255),
    ("rectification border", 2, 255),
    ("out of roi", 3, 255),
    ("static", 4, 255),
    ("dynamic", 5, 255),
    ("ground", 6, 255),
    ("road", 7, 0),
    ("sidewalk", 8, 1),
    ("parking", 9, 255),
    ("rail track", 10, 255),
    ("building", 11, 2),
    ("wall", 12, 3),
    ("fence", 13, 4),
    ("guard rail", 14, 255),
    ("bridge", 15, 255),
    ("tunnel", 16, 255),
    ("pole", 17, 5),
    ("polegroup", 18, 255),
    ("traffic light", 19, 6),
    ("traffic sign", 20, 7),
    ("vegetation", 21, 8),
    ("terrain", 22, 9),
    ("sky", 23, 10),
    ("person", 24, 11),
    ("rider", 25, 12),
    ("car", 26, 13),
    ("truck", 27, 14),
    ("bus", 28, 15),
    ("caravan", 29, 255),
    ("trailer", 30, 255),
    ("train", 31, 16),
    ("motorcycle", 32, 17),
    ("bicycle", 33, 18),
)

# The 40 classes of Gupta et al. (className of classMapping40.mat), 1-based ids 1..40.
NYU40_CLASSES: Final = (
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "blinds",
    "desk",
    "shelves",
    "curtain",
    "dresser",
    "pillow",
    "mirror",
    "floor mat",
    "clothes",
    "ceiling",
    "books",
    "refrigerator",
    "television",
    "paper",
    "towel",
    "shower curtain",
    "box",
    "whiteboard",
    "person",
    "night stand",
    "toilet",
    "sink",
    "lamp",
    "bathtub",
    "bag",
    "otherstructure",
    "otherfurniture",
    "otherprop",
)

NUM_NYU_RAW_CLASSES: Final = 894

# classMapping40.mat `mapClass`: raw id k (1..894) -> NYU40 id NYU894_TO_40[k - 1] (1..40).
# fmt: off
NYU894_TO_40: Final = (
    40, 40, 3, 22, 5, 40, 12, 38, 40, 40, 2, 39, 40, 40, 26, 40, 24, 40, 7, 40, 1, 40, 40, 34,
    38, 29, 40, 8, 40, 40, 40, 40, 38, 40, 40, 14, 40, 38, 40, 40, 40, 15, 39, 40, 30, 40, 40, 39,
    40, 39, 38, 40, 38, 40, 37, 40, 38, 38, 9, 40, 40, 38, 40, 11, 38, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 38, 13, 40, 40, 6, 40, 23, 40, 39, 10, 16, 40, 40, 40, 40, 38, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 38, 40, 39, 40, 40, 40, 40, 39, 38, 40, 40, 40, 40, 40, 40, 18, 40,
    40, 19, 28, 33, 40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 27, 36, 40, 40, 40, 40, 21, 40, 20, 35,
    40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 4, 32, 40, 40, 39, 40, 39, 40, 40, 40, 40, 40,
    17, 40, 40, 25, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 38, 38,
    40, 40, 39, 40, 39, 40, 38, 39, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 38, 40, 40,
    38, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 39, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 39, 40, 40, 40, 38, 40, 40, 39, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 31, 40, 40, 40, 40, 40,
    40, 40, 38, 40, 40, 38, 39, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 39, 40, 40, 39, 40,
    40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 38, 39, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 38, 39, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 38,
    40, 40, 40, 38, 40, 39, 40, 40, 40, 39, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 39, 40, 40, 39, 39, 40, 40, 40, 40, 38, 40, 40, 38,
    39, 39, 40, 39, 40, 39, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 38, 40, 39, 40,
    40, 40, 40, 40, 39, 39, 40, 40, 40, 40, 40, 40, 39, 39, 40, 40, 38, 39, 39, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 39, 39, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 39, 40, 40, 39, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 38, 40, 40, 40, 40, 40, 40, 40, 39, 38, 39, 40,
    38, 39, 40, 39, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 38, 40, 40, 39,
    40, 40, 40, 39, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 39, 38, 40, 40, 38, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 38, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 38, 38, 38, 40, 40, 40, 38, 40, 40, 40, 38, 38, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 38, 40, 38, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 39, 40, 39, 40, 40, 40, 40, 38, 38, 40, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 39, 40, 40, 39, 40, 40, 39, 39, 40, 40, 40, 40, 40, 40, 40, 40, 39, 39, 39, 40,
    40, 40, 40, 39, 40, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40,
    40, 40, 40, 40, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 38, 40, 39, 40,
    40, 40, 40, 38, 40, 40, 40, 40, 40, 38, 40, 40, 40, 40, 40, 40, 40, 39, 40, 40, 40, 40, 40, 40,
    40, 40, 40, 39, 40, 40,
)
# fmt: on

# class13Mapping.mat: NYU40 id c (1..40) -> NYU13 id NYU40_TO_13[c - 1] (1..13).
NYU40_TO_13: Final = (
    12, 5, 6, 1, 4, 9, 10, 12, 13, 6, 8, 6, 13, 10, 6, 13, 6, 7, 7, 5,
    7, 3, 2, 6, 11, 7, 7, 7, 7, 7, 7, 6, 7, 7, 7, 7, 7, 7, 6, 7,
)  # fmt: skip

# The label sets a NYUv2 loader can produce.
NYU_LABEL_SETS: Final = ("nyu40", "nyu13")


def cityscapes_id_to_train_id() -> np.ndarray:
    """A 256-entry uint8 table: Cityscapes ``labelIds`` value -> train id (255 = ignore)."""
    table = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    for _, label_id, train_id in CITYSCAPES_LABELS:
        table[label_id] = train_id
    return table


def nyu_raw_to_label_set(label_set: str, map_894_to_40: np.ndarray | None = None) -> np.ndarray:
    """A uint8 table: raw NYUv2 label (0..894) -> 0-based class of ``label_set``, 255 = ignore.

    Args:
        label_set: ``"nyu40"`` or ``"nyu13"``.
        map_894_to_40: Optional 894-entry 1-based 894 -> 40 table (e.g. read from
            ``classMapping40.mat``) used instead of :data:`NYU894_TO_40`.

    Returns:
        An array of length 895; index 0 (unlabelled) maps to 255.

    Raises:
        ValueError: if ``label_set`` is unknown or the table is malformed.
    """
    if label_set not in NYU_LABEL_SETS:
        raise ValueError(
            f"unknown NYUv2 label set. Received: label_set={label_set!r}. "
            f"Expected one of {NYU_LABEL_SETS}."
        )
    to40 = np.asarray(NYU894_TO_40 if map_894_to_40 is None else map_894_to_40, dtype=np.int64)
    if to40.shape != (NUM_NYU_RAW_CLASSES,) or to40.min() < 1 or to40.max() > 40:
        raise ValueError(
            f"an 894 -> 40 table needs {NUM_NYU_RAW_CLASSES} entries in 1..40; received shape "
            f"{to40.shape} with values in [{to40.min()}, {to40.max()}]."
        )
    if label_set == "nyu13":
        classes = np.asarray(NYU40_TO_13, dtype=np.int64)[to40 - 1]
    else:
        classes = to40
    table = np.full(NUM_NYU_RAW_CLASSES + 1, IGNORE_LABEL, dtype=np.uint8)
    table[1:] = classes - 1
    return table


def nyu_class_names(label_set: str) -> tuple[str, ...]:
    """Class names of ``label_set`` in the order of its 0-based ids."""
    if label_set == "nyu13":
        return tuple(NYU13_CLASSES)
    if label_set == "nyu40":
        return NYU40_CLASSES
    raise ValueError(
        f"unknown NYUv2 label set. Received: label_set={label_set!r}. "
        f"Expected one of {NYU_LABEL_SETS}."
    )
