"""The one scene-config factory: every knob of the synthetic scenes, gin-bindable.

All variation of the procedural street and indoor scenes (camera, lighting, object
counts, clutter, textures, sensor noise) is read from a :class:`SceneConfig`, and
the only way tools build one is :func:`scene_config`. Bind it in gin, optionally
scoped by scene name, e.g.::

    scene_config.fov_deg = (30.0, 40.0)
    street/scene_config.counts = {"car": (4, 12)}
    indoor/scene_config.shadows = False

Ranges are ``(low, high)`` pairs; every frame draws its own value uniformly from
them. ``counts`` maps an object kind of the scene (see :data:`STREET_COUNTS` and
:data:`INDOOR_COUNTS`) to an inclusive ``(min, max)`` count and is merged over the
scene's defaults, so a binding only names the kinds it changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import gin

from ka_tf.errors import ConfigError

SCENES = ("street", "indoor")

Range = tuple[float, float]

# Object kind -> inclusive (min, max) number per frame.
STREET_COUNTS: dict[str, tuple[int, int]] = {
    "parked_car": (2, 8),
    "moving_car": (0, 4),
    "truck": (0, 1),
    "bus": (0, 1),
    "train": (0, 1),
    "person": (2, 9),
    "cyclist": (0, 2),
    "motorcyclist": (0, 1),
    "parked_bicycle": (0, 3),
    "parked_motorcycle": (0, 2),
    "tree": (3, 10),
    "hedge": (0, 3),
    "pole": (3, 9),
    "traffic_sign": (1, 5),
    "traffic_light": (0, 3),
    "wall": (0, 3),
    "fence": (0, 3),
    "clutter": (0, 6),
}

INDOOR_COUNTS: dict[str, tuple[int, int]] = {
    "bed": (0, 1),
    "sofa": (0, 1),
    "table": (0, 2),
    "chair": (1, 5),
    "cabinet": (1, 3),
    "bookshelf": (0, 2),
    "picture": (0, 4),
    "window": (0, 2),
    "tv": (0, 1),
    "books_on_table": (0, 3),
    "clutter": (2, 10),
}

_COUNTS = {"street": STREET_COUNTS, "indoor": INDOOR_COUNTS}


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Everything that varies between synthetic frames, as per-frame ranges.

    Build it with :func:`scene_config` (which fills the scene's defaults) rather
    than directly.

    Attributes:
        scene: ``"street"`` or ``"indoor"``.
        camera_height_m: Camera height above the ground/floor, metres.
        camera_pitch_deg: Camera pitch, degrees; negative looks down.
        camera_yaw_deg: Camera yaw about the vertical, degrees, relative to the
            street direction (street) or to a random room direction (indoor).
        fov_deg: Vertical field of view, degrees.
        near_m: Near clipping plane, metres (closest valid depth).
        far_m: Far clipping plane, metres (farthest valid depth).
        sun_elevation_deg: Elevation of the directional light above the horizon.
        sun_azimuth_deg: Azimuth of the directional light, degrees.
        ambient: Ambient light coefficient range.
        diffuse: Diffuse light coefficient range.
        specular: Specular light coefficient range.
        light_color_jitter: Max per-channel deviation of the light colour from white.
        shadows: Whether the renderer casts shadows.
        counts: Object kind -> inclusive (min, max) count per frame.
        density: Multiplies every ``counts`` range (rounded), for denser or
            sparser scenes.
        tint_jitter: Max per-channel random tint applied to material colours.
        texture_variants: Procedural variants generated per texture family.
        exposure: Multiplicative exposure range applied to the final image.
        sensor_noise_std: Std of Gaussian pixel noise (0-255 scale) added to the image.
    """

    scene: str
    camera_height_m: Range
    camera_pitch_deg: Range
    camera_yaw_deg: Range
    fov_deg: Range
    near_m: float
    far_m: float
    sun_elevation_deg: Range
    sun_azimuth_deg: Range
    ambient: Range
    diffuse: Range
    specular: Range
    light_color_jitter: float
    shadows: bool
    counts: dict[str, tuple[int, int]]
    density: float
    tint_jitter: float
    texture_variants: int
    exposure: Range
    sensor_noise_std: float

    def count_range(self, kind: str) -> tuple[int, int]:
        """The (min, max) count of ``kind``, scaled by :attr:`density`."""
        low, high = self.counts[kind]
        return round(low * self.density), round(high * self.density)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of every field (stored in the dataset spec)."""
        payload = dataclasses.asdict(self)
        payload["counts"] = {key: list(value) for key, value in sorted(self.counts.items())}
        return json.loads(json.dumps(payload))

    def fingerprint(self) -> str:
        """A short hash of :meth:`to_json`; two configs render alike iff it matches."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


_DEFAULTS: dict[str, dict[str, Any]] = {
    "street": dict(
        camera_height_m=(1.2, 2.2),
        camera_pitch_deg=(-9.0, 1.0),
        camera_yaw_deg=(-12.0, 12.0),
        fov_deg=(26.0, 42.0),
        near_m=0.3,
        far_m=160.0,
        sun_elevation_deg=(20.0, 75.0),
        sun_azimuth_deg=(0.0, 360.0),
        ambient=(0.45, 0.75),
        diffuse=(0.3, 0.6),
        specular=(0.0, 0.15),
        light_color_jitter=0.12,
        shadows=False,
        density=1.0,
        tint_jitter=0.18,
        texture_variants=4,
        exposure=(0.8, 1.15),
        sensor_noise_std=2.0,
    ),
    "indoor": dict(
        camera_height_m=(1.0, 1.8),
        camera_pitch_deg=(-28.0, -4.0),
        camera_yaw_deg=(-35.0, 35.0),
        fov_deg=(42.0, 55.0),
        near_m=0.1,
        far_m=20.0,
        sun_elevation_deg=(35.0, 85.0),
        sun_azimuth_deg=(0.0, 360.0),
        ambient=(0.5, 0.8),
        diffuse=(0.25, 0.5),
        specular=(0.0, 0.2),
        light_color_jitter=0.12,
        shadows=False,
        density=1.0,
        tint_jitter=0.2,
        texture_variants=4,
        exposure=(0.75, 1.15),
        sensor_noise_std=2.0,
    ),
}


def _check_range(name: str, value: Any, low_bound: float | None = None) -> Range:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"scene_config.{name} must be a (low, high) pair. Received: {name}={value!r}."
        ) from error
    if low > high or (low_bound is not None and low < low_bound):
        bound = f" and low >= {low_bound}" if low_bound is not None else ""
        raise ConfigError(
            f"scene_config.{name} needs low <= high{bound}. Received: {name}={value!r}."
        )
    return (low, high)


@gin.configurable
def scene_config(
    scene: str,
    *,
    camera_height_m: Range | None = None,
    camera_pitch_deg: Range | None = None,
    camera_yaw_deg: Range | None = None,
    fov_deg: Range | None = None,
    near_m: float | None = None,
    far_m: float | None = None,
    sun_elevation_deg: Range | None = None,
    sun_azimuth_deg: Range | None = None,
    ambient: Range | None = None,
    diffuse: Range | None = None,
    specular: Range | None = None,
    light_color_jitter: float | None = None,
    shadows: bool | None = None,
    counts: dict[str, tuple[int, int]] | None = None,
    density: float | None = None,
    tint_jitter: float | None = None,
    texture_variants: int | None = None,
    exposure: Range | None = None,
    sensor_noise_std: float | None = None,
) -> SceneConfig:
    """Builds the :class:`SceneConfig` of ``scene``: its defaults, then any overrides.

    Every argument but ``scene`` defaults to ``None`` = "the scene's default"; see
    :class:`SceneConfig` for their meaning. Call it inside
    ``gin.config_scope(scene)`` (as the generator does) so that bindings can be
    scoped per scene.

    Args:
        scene: ``"street"`` or ``"indoor"``.

    Returns:
        The validated config.

    Raises:
        ConfigError: on an unknown scene, an unknown object kind in ``counts`` or
            an invalid range.

    Example:
        >>> scene_config("street", fov_deg=(30, 35)).fov_deg
        (30.0, 35.0)
    """
    if scene not in SCENES:
        raise ConfigError(f"unknown scene. Received: scene={scene!r}. Expected one of {SCENES}.")
    overrides = {
        key: value
        for key, value in dict(
            camera_height_m=camera_height_m,
            camera_pitch_deg=camera_pitch_deg,
            camera_yaw_deg=camera_yaw_deg,
            fov_deg=fov_deg,
            near_m=near_m,
            far_m=far_m,
            sun_elevation_deg=sun_elevation_deg,
            sun_azimuth_deg=sun_azimuth_deg,
            ambient=ambient,
            diffuse=diffuse,
            specular=specular,
            light_color_jitter=light_color_jitter,
            shadows=shadows,
            density=density,
            tint_jitter=tint_jitter,
            texture_variants=texture_variants,
            exposure=exposure,
            sensor_noise_std=sensor_noise_std,
        ).items()
        if value is not None
    }
    fields = {**_DEFAULTS[scene], **overrides}
    merged_counts = dict(_COUNTS[scene])
    for kind, value in (counts or {}).items():
        if kind not in merged_counts:
            raise ConfigError(
                f"unknown object kind in scene_config.counts for scene {scene!r}. Received: "
                f"{kind!r}. Expected one of {sorted(merged_counts)}."
            )
        low, high = _check_range(f"counts[{kind!r}]", value, low_bound=0)
        merged_counts[kind] = (int(low), int(high))
    for name in (
        "camera_height_m",
        "camera_pitch_deg",
        "camera_yaw_deg",
        "fov_deg",
        "sun_elevation_deg",
        "sun_azimuth_deg",
        "exposure",
    ):
        fields[name] = _check_range(name, fields[name])
    for name in ("ambient", "diffuse", "specular"):
        fields[name] = _check_range(name, fields[name], low_bound=0.0)
    if not (1.0 <= fields["fov_deg"][0] and fields["fov_deg"][1] < 170.0):
        raise ConfigError(
            f"scene_config.fov_deg must lie in [1, 170) degrees. Received: {fields['fov_deg']!r}."
        )
    if not 0.0 < float(fields["near_m"]) < float(fields["far_m"]):
        raise ConfigError(
            f"scene_config needs 0 < near_m < far_m. Received: near_m={fields['near_m']}, "
            f"far_m={fields['far_m']}."
        )
    if float(fields["density"]) < 0 or int(fields["texture_variants"]) < 1:
        raise ConfigError(
            f"scene_config needs density >= 0 and texture_variants >= 1. Received: "
            f"density={fields['density']}, texture_variants={fields['texture_variants']}."
        )
    return SceneConfig(
        scene=scene,
        camera_height_m=fields["camera_height_m"],
        camera_pitch_deg=fields["camera_pitch_deg"],
        camera_yaw_deg=fields["camera_yaw_deg"],
        fov_deg=fields["fov_deg"],
        near_m=float(fields["near_m"]),
        far_m=float(fields["far_m"]),
        sun_elevation_deg=fields["sun_elevation_deg"],
        sun_azimuth_deg=fields["sun_azimuth_deg"],
        ambient=fields["ambient"],
        diffuse=fields["diffuse"],
        specular=fields["specular"],
        light_color_jitter=float(fields["light_color_jitter"]),
        shadows=bool(fields["shadows"]),
        counts=merged_counts,
        density=float(fields["density"]),
        tint_jitter=float(fields["tint_jitter"]),
        texture_variants=int(fields["texture_variants"]),
        exposure=fields["exposure"],
        sensor_noise_std=float(fields["sensor_noise_std"]),
    )


def resolve_scene_config(scene: str) -> SceneConfig:
    """Calls :func:`scene_config` inside ``gin.config_scope(scene)`` (scoped bindings apply)."""
    if scene not in SCENES:
        raise ConfigError(f"unknown scene. Received: scene={scene!r}. Expected one of {SCENES}.")
    with gin.config_scope(scene):
        return scene_config(scene)
