"""The street background: a sky gradient with clouds, painted where nothing was drawn."""

from __future__ import annotations

import math

import numpy as np

from ka_tf.data.synth.camera import intrinsics


def _cloud_noise(
    rng: np.random.Generator, height: int, width: int, rows: slice = slice(None)
) -> np.ndarray:
    """Smooth noise in [0, 1] of the image rows ``rows`` [R, W] (bilinear octaves of
    random grids); the grids are drawn whole, so ``rng`` advances the same whatever
    ``rows`` is, and each row has the values it has in the whole [H, W] noise.
    """
    count = len(range(height)[rows])
    total = np.zeros((count, width))
    weight, norm = 1.0, 0.0
    for cells in (3, 6, 12):
        grid = rng.random((cells + 1, 2 * cells + 1))
        ys = np.linspace(0, cells, height)
        xs = np.linspace(0, 2 * cells, width)
        y0, x0 = np.minimum(ys.astype(int), cells - 1), np.minimum(xs.astype(int), 2 * cells - 1)
        fy, fx = (ys - y0)[rows, None], (xs - x0)[None, :]
        y0 = y0[rows]
        top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
        bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
        total += weight * (top * (1 - fy) + bottom * fy)
        norm += weight
        weight *= 0.5
    return total / norm


def sky_image(
    rng: np.random.Generator,
    height: int,
    width: int,
    fov_deg: float,
    pitch_deg: float,
    zenith: tuple[float, float, float],
    horizon: tuple[float, float, float],
    cloudiness: float,
    rows: slice = slice(None),
) -> np.ndarray:
    """A float RGB sky [H, W, 3] in [0, 1]: horizon-to-zenith gradient plus clouds.

    The gradient follows each row's elevation angle, so the horizon sits where the
    camera pitch puts it. ``rows`` (a slice of the image rows) limits the work to
    the rows that need sky; the result is then those rows only, with the values
    they have in the whole image, and ``rng`` advances the same.
    """
    focal, _, cy = intrinsics(height, width, fov_deg)
    offsets = np.arange(height) - cy
    elevation = math.radians(pitch_deg) - np.arctan(offsets / focal)
    t = np.clip(np.sin(np.clip(elevation, 0.0, None)) * 2.0, 0.0, 1.0) ** 0.7
    gradient = (
        np.asarray(horizon)[None, :] * (1 - t[:, None]) + np.asarray(zenith)[None, :] * t[:, None]
    )[rows, None, :]
    if not cloudiness > 0:
        return np.broadcast_to(gradient, (len(gradient), width, 3)).copy()
    noise = _cloud_noise(rng, height, width, rows)
    cover = np.clip((noise - (1.0 - cloudiness)) / 0.25, 0.0, 1.0)[..., None]
    cloud = 0.82 + 0.15 * noise[..., None]
    return gradient * (1 - cover) + cloud * cover
