"""Helpers shared by the scene layouts: drawing from config ranges, materials, light."""

from __future__ import annotations

import math

import numpy as np

from ka_tf.data.synth.config import SceneConfig
from ka_tf.data.synth.primitives import Lighting, Material
from ka_tf.data.synth.textures import PYBULLET_DATA_IMAGES, PYBULLET_FAMILY, texture_name


def draw(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A uniform draw from ``(low, high)``.

    The same number, from the same stream, as ``rng.uniform(low, high)`` (which
    computes ``low + (high - low) * rng.random()``), at a third of its call cost.
    """
    low, high = float(bounds[0]), float(bounds[1])
    return low + (high - low) * rng.random()


def draw_count(rng: np.random.Generator, config: SceneConfig, kind: str) -> int:
    """How many objects of ``kind`` this frame has (inclusive range, scaled by density)."""
    low, high = config.count_range(kind)
    return int(rng.integers(low, high + 1))


class Materials:
    """Makes materials for one frame: a texture variant and a jittered tint.

    Args:
        rng: The frame's generator.
        config: The scene config (texture variants, tint jitter).
    """

    def __init__(self, rng: np.random.Generator, config: SceneConfig) -> None:
        self._rng = rng
        self._config = config

    def tint(self, color, jitter: bool = True) -> tuple[float, float, float]:
        """``color`` with a random per-channel jitter, clipped to [0, 1].

        Colours are rounded to steps of 0.05 so that similar materials coincide and
        merge into one mesh (fewer bodies to build).
        """
        values = [float(c) for c in color]
        if jitter:
            amount = self._config.tint_jitter
            # rng.uniform(-1, 1, 3), drawn as -1 + 2 * rng.random(3) (the same numbers).
            offsets = [-1.0 + 2.0 * u for u in self._rng.random(3).tolist()]
            values = [v + amount * j for v, j in zip(values, offsets, strict=True)]
        r, g, b = (round(min(max(v, 0.0), 1.0) * 20) / 20 for v in values)
        return (r, g, b)

    def textured(
        self,
        family: str,
        color=(1.0, 1.0, 1.0),
        tile_m=None,
        jitter: bool = True,
        variant: int | None = None,
    ) -> Material:
        """A material of a random variant of texture ``family``, tinted ``color``.

        ``jitter=False`` keeps ``color`` as given (small objects drawn from palettes);
        ``variant`` fixes the texture variant (fewer distinct materials to build).
        """
        if variant is None:
            variant = int(self._rng.integers(0, self._config.texture_variants))
        if family == PYBULLET_FAMILY:
            variant = int(self._rng.integers(0, len(PYBULLET_DATA_IMAGES)))
        tile = None if tile_m is None else (float(tile_m[0]), float(tile_m[1]))
        return Material(texture_name(family, variant), self.tint(color, jitter), tile)

    def plain(self, color, jitter: bool = False) -> Material:
        """An untextured material of ``color`` (jittered if ``jitter``)."""
        return Material(None, self.tint(color, jitter), None)

    def choice(self, options):
        """One of ``options`` (a sequence), uniformly."""
        return options[int(self._rng.integers(0, len(options)))]


def draw_lighting(rng: np.random.Generator, config: SceneConfig) -> Lighting:
    """The frame's light from the config ranges."""
    jitter = rng.uniform(-1.0, 1.0, 3) * config.light_color_jitter
    return Lighting(
        direction=sun_direction(
            draw(rng, config.sun_elevation_deg), draw(rng, config.sun_azimuth_deg)
        ),
        color=tuple(float(v) for v in np.clip(1.0 + jitter, 0.0, 1.5)),
        ambient=draw(rng, config.ambient),
        diffuse=draw(rng, config.diffuse),
        specular=draw(rng, config.specular),
        shadows=config.shadows,
        exposure=draw(rng, config.exposure),
        noise_std=config.sensor_noise_std,
    )


def sun_direction(elevation_deg: float, azimuth_deg: float) -> tuple[float, float, float]:
    """Unit vector towards a light at the given elevation and azimuth (z up)."""
    elevation, azimuth = math.radians(elevation_deg), math.radians(azimuth_deg)
    return (
        math.cos(elevation) * math.cos(azimuth),
        math.cos(elevation) * math.sin(azimuth),
        math.sin(elevation),
    )
