"""What a scene layout is made of: coloured, textured, labelled primitives.

Layout modules (:mod:`.street`, :mod:`.indoor`) produce a :class:`SceneLayout` —
plain data, no renderer — which :mod:`.renderer` turns into meshes. Keeping them
apart lets the layouts be tested and inspected without pybullet.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

BOX = "box"
CYLINDER = "cylinder"  # axis along the local z axis
SPHERE = "sphere"  # an ellipsoid with semi-axes ``half_size``
KINDS = (BOX, CYLINDER, SPHERE)


@dataclasses.dataclass(frozen=True)
class Material:
    """How a primitive looks.

    Attributes:
        texture: Name of a texture in :mod:`.textures` (``family/variant``), or None
            for a plain colour.
        color: RGB multiplier in [0, 1] applied to the texture (or the plain colour).
        tile_m: Metres covered by one texture tile along (u, v); None stretches one
            tile over each face.
    """

    texture: str | None
    color: tuple[float, float, float]
    tile_m: tuple[float, float] | None = None


@dataclasses.dataclass(frozen=True)
class Primitive:
    """One labelled solid in world coordinates (metres, z up).

    Attributes:
        kind: ``"box"``, ``"cylinder"`` or ``"sphere"``.
        center: Centre position [3].
        half_size: Half extents [3] (box), (radius x, radius y, half length)
            (cylinder) or semi-axes (sphere).
        rotation: 3x3 rotation matrix from the local to the world frame.
        class_id: Semantic class id of every pixel it covers.
        material: Its :class:`Material`.
    """

    kind: str
    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    rotation: tuple[tuple[float, float, float], ...]
    class_id: int
    material: Material


@dataclasses.dataclass(frozen=True)
class Camera:
    """A pinhole camera looking from ``eye`` along yaw/pitch (z up, yaw 0 = +y).

    Attributes:
        eye: Camera position [3], metres.
        yaw_deg: Heading about +z; 0 looks along +y, positive turns left (towards -x).
        pitch_deg: Elevation; negative looks down.
        fov_deg: Vertical field of view.
        near_m: Near clipping plane.
        far_m: Far clipping plane.
    """

    eye: tuple[float, float, float]
    yaw_deg: float
    pitch_deg: float
    fov_deg: float
    near_m: float
    far_m: float

    def forward(self) -> np.ndarray:
        """Unit viewing direction in world coordinates."""
        yaw, pitch = math.radians(self.yaw_deg), math.radians(self.pitch_deg)
        return np.array(
            [-math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), math.sin(pitch)]
        )


@dataclasses.dataclass(frozen=True)
class Lighting:
    """The directional light and colour/exposure of a frame."""

    direction: tuple[float, float, float]
    color: tuple[float, float, float]
    ambient: float
    diffuse: float
    specular: float
    shadows: bool
    exposure: float
    noise_std: float


@dataclasses.dataclass(frozen=True)
class SceneLayout:
    """Everything the renderer needs for one frame.

    Attributes:
        primitives: The solids.
        camera: The camera.
        lighting: The light.
        background_class: Class of pixels no primitive covers (sky or ignore).
        sky: Sky colours (zenith RGB, horizon RGB, cloudiness in [0, 1]) for the
            background, or None for a plain black background.
    """

    primitives: tuple[Primitive, ...]
    camera: Camera
    lighting: Lighting
    background_class: int
    sky: tuple[tuple[float, float, float], tuple[float, float, float], float] | None

    def class_ids(self) -> set[int]:
        """The classes of all primitives (what the frame can show, before occlusion)."""
        return {primitive.class_id for primitive in self.primitives}


IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def rotation(yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> tuple:
    """Rotation matrix Rz(yaw) @ Ry(roll) @ Rx(pitch), as nested tuples.

    ``pitch`` turns about the local x axis, ``roll`` about the local y axis.
    """
    yaw, pitch, roll = (math.radians(v) for v in (yaw_deg, pitch_deg, roll_deg))
    cz, sz = math.cos(yaw), math.sin(yaw)
    cx, sx = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(roll), math.sin(roll)
    # Ry @ Rx, then Rz @ that (written out: this runs for every primitive).
    m = (
        (cy, sy * sx, sy * cx),
        (0.0, cx, -sx),
        (-sy, cy * sx, cy * cx),
    )
    return (
        (cz * m[0][0] - sz * m[1][0], cz * m[0][1] - sz * m[1][1], cz * m[0][2] - sz * m[1][2]),
        (sz * m[0][0] + cz * m[1][0], sz * m[0][1] + cz * m[1][1], sz * m[0][2] + cz * m[1][2]),
        m[2],
    )


class LayoutBuilder:
    """Collects primitives; layouts call :meth:`box`, :meth:`cylinder`, :meth:`sphere`."""

    def __init__(self) -> None:
        self._primitives: list[Primitive] = []

    def add(
        self,
        kind: str,
        center,
        half_size,
        class_id: int,
        material: Material,
        yaw_deg: float = 0.0,
        pitch_deg: float = 0.0,
        roll_deg: float = 0.0,
    ) -> None:
        """Adds one primitive (see :class:`Primitive`); angles build its rotation."""
        if kind not in KINDS:
            raise ValueError(f"unknown primitive kind {kind!r}; expected one of {KINDS}.")
        half = tuple(map(float, half_size))
        if min(half) <= 0:
            raise ValueError(f"primitive half sizes must be > 0, got {half}.")
        rot = (
            IDENTITY
            if not (yaw_deg or pitch_deg or roll_deg)
            else rotation(yaw_deg, pitch_deg, roll_deg)
        )
        self._primitives.append(
            Primitive(kind, tuple(map(float, center)), half, rot, int(class_id), material)
        )

    def box(self, center, half_size, class_id: int, material: Material, **angles) -> None:
        """Adds a box."""
        self.add(BOX, center, half_size, class_id, material, **angles)

    def cylinder(self, center, radius, half_length, class_id, material, **angles) -> None:
        """Adds a cylinder (axis along local z)."""
        self.add(CYLINDER, center, (radius, radius, half_length), class_id, material, **angles)

    def sphere(self, center, semi_axes, class_id: int, material: Material, **angles) -> None:
        """Adds an ellipsoid."""
        self.add(SPHERE, center, semi_axes, class_id, material, **angles)

    def primitives(self) -> tuple[Primitive, ...]:
        """Everything added so far, in order."""
        return tuple(self._primitives)
