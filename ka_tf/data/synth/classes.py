"""Class ids of the two synthetic scenes, taken from the real datasets' class sets.

Street frames use the 19 Cityscapes train ids (:data:`ka_tf.constants.CITYSCAPES_CLASSES`),
indoor frames the NYUv2 13-class set (:data:`ka_tf.constants.NYU13_CLASSES`); the
ignore label is :data:`ka_tf.constants.IGNORE_LABEL`.
"""

from __future__ import annotations

from ka_tf.constants import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    IGNORE_LABEL,
    NYU13_CLASSES,
    NYU13_PALETTE,
)
from ka_tf.errors import ConfigError

SCENE_CLASSES: dict[str, tuple[str, ...]] = {
    "street": tuple(CITYSCAPES_CLASSES),
    "indoor": tuple(NYU13_CLASSES),
}
SCENE_PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "street": tuple(CITYSCAPES_PALETTE),
    "indoor": tuple(NYU13_PALETTE),
}


def class_id(scene: str, name: str) -> int:
    """The id of class ``name`` in ``scene``'s class set.

    Raises:
        ConfigError: if the scene or the class is unknown.
    """
    if scene not in SCENE_CLASSES:
        raise ConfigError(
            f"unknown scene. Received: scene={scene!r}. Expected one of {sorted(SCENE_CLASSES)}."
        )
    names = SCENE_CLASSES[scene]
    if name not in names:
        raise ConfigError(f"unknown {scene} class {name!r}. Expected one of {names}.")
    return names.index(name)


# Background (pixels no object covers): sky in the street, ignore indoors.
BACKGROUND_CLASS: dict[str, int] = {
    "street": CITYSCAPES_CLASSES.index("sky"),
    "indoor": IGNORE_LABEL,
}
