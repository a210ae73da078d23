"""Names and fixed values shared by every module: task keys, ignore label, classes.

Model outputs, losses, metrics and exports are all dicts keyed by the task names
defined here, so that they line up by key.
"""

from typing import Final

SEMSEG: Final = "semseg"
DEPTH: Final = "depth"
NORMALS: Final = "normals"
TASKS: Final = (SEMSEG, DEPTH, NORMALS)

IMAGE: Final = "image"

# Key prefix of a teacher's cached fine-tuning target in an input element
# ("teacher_target/semseg"): augmented like that task's label, never read as one.
TEACHER_TARGET: Final = "teacher_target/"

# Label value that marks pixels without a class; ignored by losses and metrics.
IGNORE_LABEL: Final = 255

# Every model downsamples 5 times by 2, so image sides must be multiples of this.
SIZE_DIVISOR: Final = 32

CITYSCAPES_CLASSES: Final = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

# The official Cityscapes colours of the 19 train ids.
CITYSCAPES_PALETTE: Final = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
)

# The NYUv2 13-class set (Couprie et al. 2013 / Eigen & Fergus 2015 ordering).
NYU13_CLASSES: Final = (
    "bed",
    "books",
    "ceiling",
    "chair",
    "floor",
    "furniture",
    "objects",
    "picture",
    "sofa",
    "table",
    "tv",
    "wall",
    "window",
)

NYU13_PALETTE: Final = (
    (0, 0, 255),
    (232, 88, 47),
    (0, 217, 0),
    (148, 0, 240),
    (222, 241, 23),
    (255, 205, 205),
    (0, 223, 228),
    (106, 135, 204),
    (116, 28, 41),
    (240, 35, 235),
    (0, 166, 156),
    (249, 139, 0),
    (225, 228, 194),
)
