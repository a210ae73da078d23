"""Procedural textures (numpy) and the ``pybullet_data`` images, as image files.

Each texture *family* (asphalt, brick, facade, foliage, wood, ...) has
``variants`` deterministic versions: variant ``k`` of family ``f`` is always the
same image, generated from a seed fixed by ``(f, k)``. Textures are mostly
neutral in hue; materials tint them (pybullet multiplies the texture by the
material colour), so a few images give many looks. Images tile seamlessly.

Texture names are ``"family/variant"``, e.g. ``"brick/2"``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

SIZE = 128

# Images shipped with pybullet (BSD/zlib licensed), used as pictures and clutter.
PYBULLET_DATA_IMAGES = ("checker_blue.png", "tex256.png", "checker_grid.jpg", "duckCM.png")


def _periodic_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth tileable value noise in [0, 1] with ``cells`` cells per side."""
    grid = rng.random((cells, cells))
    coords = np.arange(size) * cells / size
    i0 = np.floor(coords).astype(int)
    frac = coords - i0
    frac = frac * frac * (3 - 2 * frac)
    i1 = (i0 + 1) % cells
    rows = grid[i0] * (1 - frac)[:, None] + grid[i1] * frac[:, None]
    return rows[:, i0] * (1 - frac)[None, :] + rows[:, i1] * frac[None, :]


def _fractal(rng: np.random.Generator, size: int = SIZE, base: int = 4, octaves: int = 4):
    total, weight, norm = np.zeros((size, size)), 1.0, 0.0
    for octave in range(octaves):
        cells = min(base * 2**octave, size)
        total += weight * _periodic_noise(rng, size, cells)
        norm += weight
        weight *= 0.5
    return total / norm


def _rgb(gray: np.ndarray, color=(1.0, 1.0, 1.0)) -> np.ndarray:
    return np.clip(gray[..., None] * np.asarray(color), 0.0, 1.0)


def _asphalt(rng):
    grain = rng.random((SIZE, SIZE))
    blotch = _fractal(rng, base=3)
    gray = 0.42 + 0.16 * (blotch - 0.5) + 0.10 * (grain - 0.5)
    return _rgb(gray)


def _paving(rng):
    tiles = int(rng.choice([2, 4]))
    step = SIZE // tiles
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    row = y // step
    shifted = (x + (row % 2) * (step // 2) * int(rng.integers(0, 2))) % SIZE
    tile_id = row * tiles + shifted // step
    shade = rng.uniform(0.8, 1.0, tiles * tiles)[tile_id]
    grout = ((y % step) < 2) | ((shifted % step) < 2)
    gray = shade * (0.75 + 0.15 * _fractal(rng, base=8)) - 0.35 * grout
    return _rgb(gray)


def _grass(rng):
    fine = rng.random((SIZE, SIZE))
    patches = _fractal(rng, base=4)
    gray = 0.45 + 0.35 * patches + 0.25 * (fine - 0.5)
    hue = np.array([0.45, 0.75, 0.25]) * rng.uniform(0.85, 1.15, 3)
    return _rgb(gray, hue)


def _gravel(rng):
    fine = rng.random((SIZE, SIZE))
    blobs = _fractal(rng, base=16, octaves=2)
    gray = 0.55 + 0.25 * (blobs - 0.5) + 0.25 * (fine - 0.5)
    return _rgb(gray, (0.8, 0.7, 0.55))


def _brick(rng):
    rows = int(rng.choice([8, 16]))
    bricks = int(rng.choice([2, 4]))
    h, w = SIZE // rows, SIZE // bricks
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    row = y // h
    shifted = (x + (row % 2) * (w // 2)) % SIZE
    brick_id = row * (bricks + 1) + shifted // w
    shade = rng.uniform(0.7, 1.0, (rows + 1) * (bricks + 1))[brick_id]
    mortar = ((y % h) < 2) | ((shifted % w) < 2)
    color = np.array([0.75, 0.4, 0.3]) * rng.uniform(0.8, 1.2, 3)
    out = _rgb(shade * (0.85 + 0.15 * _fractal(rng, base=16)), color)
    out[mortar] = 0.72
    return out


def _concrete(rng):
    return _rgb(0.7 + 0.2 * (_fractal(rng, base=3) - 0.5) + 0.06 * (rng.random((SIZE, SIZE)) - 0.5))


def _facade(rng):
    """One bay of a building: wall with a window (and sometimes a ledge)."""
    wall = 0.75 + 0.15 * (_fractal(rng, base=4) - 0.5)
    out = _rgb(wall)
    x0, x1 = (int(v * SIZE) for v in (rng.uniform(0.12, 0.3), rng.uniform(0.7, 0.88)))
    y0, y1 = (int(v * SIZE) for v in (rng.uniform(0.15, 0.35), rng.uniform(0.72, 0.9)))
    frame = 3
    out[y0 - frame : y1 + frame, x0 - frame : x1 + frame] = rng.uniform(0.85, 1.0)
    glass_top = np.array([0.35, 0.45, 0.55]) * rng.uniform(0.6, 1.1)
    ramp = np.linspace(1.0, 0.55, y1 - y0)[:, None, None]
    out[y0:y1, x0:x1] = glass_top * ramp
    if rng.random() < 0.5:  # mullion
        mid = (x0 + x1) // 2
        out[y0:y1, mid - 1 : mid + 2] = 0.9
    if rng.random() < 0.5:  # ledge
        out[-8:-3] = 0.6
    return out


def _shopfront(rng):
    out = _rgb(0.6 + 0.2 * _fractal(rng, base=2))
    y0 = int(SIZE * rng.uniform(0.15, 0.3))
    out[y0:, 6:-6] = np.array([0.2, 0.25, 0.3]) * np.linspace(1.2, 0.6, SIZE - y0)[:, None, None]
    out[: y0 - 4] = rng.uniform(0.2, 1.0, 3)  # sign band
    return out


def _fence(rng):
    bars = int(rng.choice([8, 16, 32]))
    x = np.arange(SIZE)
    bar = ((x * bars // SIZE) % 2 == 0)[None, :].repeat(SIZE, 0)
    y = np.arange(SIZE)[:, None]
    rail = (y % (SIZE // 2) < 6).repeat(SIZE, 1)
    gray = np.where(bar | rail, 0.85, 0.35) * (0.9 + 0.1 * _fractal(rng, base=8))
    return _rgb(gray)


def _foliage(rng):
    leaves = _fractal(rng, base=8, octaves=3)
    fine = rng.random((SIZE, SIZE))
    gray = 0.3 + 0.6 * leaves + 0.2 * (fine - 0.5)
    gray[leaves < 0.32] *= 0.45
    hue = np.array([0.35, 0.65, 0.2]) * rng.uniform(0.8, 1.2, 3)
    return _rgb(gray, hue)


def _bark(rng):
    stripes = _periodic_noise(rng, SIZE, 16)[:, :1].repeat(SIZE, 1).T
    gray = 0.45 + 0.3 * stripes + 0.15 * (rng.random((SIZE, SIZE)) - 0.5)
    return _rgb(gray, (0.55, 0.4, 0.3))


def _metal(rng):
    return _rgb(0.65 + 0.15 * (_fractal(rng, base=2) - 0.5))


def _disc(value_inside, value_outside, radius, size=SIZE):
    y, x = np.mgrid[0:size, 0:size]
    r = np.hypot(x - size / 2 + 0.5, y - size / 2 + 0.5) / (size / 2)
    return np.where((r <= radius)[..., None], value_inside, value_outside), r


def _sign(rng):
    kind = int(rng.integers(0, 4))
    white, red, blue = np.array([0.95] * 3), np.array([0.85, 0.1, 0.1]), np.array([0.1, 0.3, 0.8])
    if kind == 0:  # prohibitory: red ring
        out, r = _disc(white, red, 0.7)
        out[r > 0.98] = white
    elif kind == 1:  # mandatory: blue with white arrow
        out = np.broadcast_to(blue, (SIZE, SIZE, 3)).copy()
        out[40:100, 56:72] = white
        for i in range(24):
            out[40 - i // 2 + 6, 64 - i : 64 + i] = white
    elif kind == 2:  # warning: white with red border and black mark
        out = np.broadcast_to(white, (SIZE, SIZE, 3)).copy()
        out[:12], out[-12:], out[:, :12], out[:, -12:] = red, red, red, red
        out[40:90, 58:70] = 0.05
    else:  # information: blue with white panel
        out = np.broadcast_to(blue, (SIZE, SIZE, 3)).copy()
        out[30:98, 30:98] = white
        out[50:80, 50:78] = blue
    return out


def _traffic_light(rng):
    out = np.full((SIZE, SIZE, 3), 0.12)
    lit = int(rng.integers(0, 3))
    colors = [(1.0, 0.15, 0.1), (1.0, 0.8, 0.1), (0.1, 1.0, 0.4)]
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    for i, color in enumerate(colors):
        cy = SIZE * (i + 0.5) / 3
        mask = np.hypot(x - SIZE / 2, y - cy) < SIZE * 0.14
        out[mask] = np.asarray(color) * (1.0 if i == lit else 0.25)
    return out


def _car_cabin(rng):
    out = np.full((SIZE, SIZE, 3), 0.9)
    y0, y1 = int(SIZE * rng.uniform(0.08, 0.2)), int(SIZE * rng.uniform(0.75, 0.9))
    out[y0:y1, 6:-6] = np.array([0.15, 0.18, 0.22]) * np.linspace(1.3, 0.7, y1 - y0)[:, None, None]
    pillar = int(SIZE * rng.uniform(0.4, 0.6))
    out[y0:y1, pillar - 3 : pillar + 3] = 0.9
    return out


def _bus_side(rng):
    out = np.full((SIZE, SIZE, 3), 0.9)
    y0, y1 = int(SIZE * 0.45), int(SIZE * rng.uniform(0.8, 0.9))
    out[y0:y1] = np.array([0.12, 0.15, 0.2])
    for x in range(0, SIZE, SIZE // int(rng.integers(2, 5))):
        out[y0:y1, x : x + 4] = 0.9
    out[: int(SIZE * 0.12)] = 0.5
    return out


def _cloth(rng):
    weave = ((np.arange(SIZE)[:, None] + np.arange(SIZE)[None, :]) % 4 < 2) * 0.06
    return _rgb(0.8 + 0.1 * (_fractal(rng, base=4) - 0.5) + weave)


def _wood(rng):
    y = np.mgrid[0:SIZE, 0:SIZE][0] / SIZE
    warp = _fractal(rng, base=2, octaves=3)
    rings = np.sin(2 * np.pi * (y * int(rng.integers(4, 10)) + 1.5 * warp))
    gray = 0.7 + 0.12 * rings + 0.08 * (rng.random((SIZE, SIZE)) - 0.5)
    return _rgb(gray, (0.75, 0.52, 0.32))


def _parquet(rng):
    planks = int(rng.choice([4, 8]))
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    plank = y * planks // SIZE
    shade = rng.uniform(0.75, 1.0, planks)[plank]
    seam = (y % (SIZE // planks) < 1) | ((x + plank * 37) % SIZE < 1)
    out = _wood(rng) * shade[..., None]
    out[seam] *= 0.5
    return out


def _carpet(rng):
    return _rgb(
        0.65 + 0.15 * (_fractal(rng, base=8) - 0.5) + 0.2 * (rng.random((SIZE, SIZE)) - 0.5)
    )


def _tiles(rng):
    tiles = int(rng.choice([2, 4, 8]))
    step = SIZE // tiles
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    grout = ((y % step) < 2) | ((x % step) < 2)
    gray = 0.85 + 0.08 * (_fractal(rng, base=4) - 0.5) - 0.3 * grout
    return _rgb(gray)


def _plaster(rng):
    return _rgb(0.88 + 0.08 * (_fractal(rng, base=4) - 0.5))


def _wallpaper(rng):
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    period = int(rng.choice([8, 16, 32]))
    if rng.random() < 0.5:
        pattern = (x % period) < period // 2
    else:
        pattern = (np.hypot(x % period - period / 2, y % period - period / 2)) < period / 4
    return _rgb(0.85 - 0.12 * pattern + 0.04 * (_fractal(rng, base=4) - 0.5))


def _book_spines(rng):
    out = np.zeros((SIZE, SIZE, 3))
    x = 0
    while x < SIZE:
        width = int(rng.integers(4, 12))
        color = rng.uniform(0.15, 0.95, 3)
        top = int(rng.integers(0, 30))
        out[top:, x : x + width - 1] = color
        out[top + 10 : top + 14, x : x + width - 1] = color * 0.5 + 0.4
        out[:top, x : x + width] = 0.1
        x += width
    return out


def _painting(rng):
    y = np.linspace(0, 1, SIZE)[:, None, None]
    sky = rng.uniform(0.3, 1.0, 3) * (1 - y) + rng.uniform(0.3, 1.0, 3) * y
    out = np.broadcast_to(sky, (SIZE, SIZE, 3)).copy()
    hills = 0.5 + 0.3 * _periodic_noise(rng, SIZE, 4)[0]
    yy = np.arange(SIZE)[:, None] / SIZE
    out[yy > hills[None, :]] = rng.uniform(0.1, 0.7, 3)
    for _ in range(int(rng.integers(1, 5))):
        cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
        yy2, xx2 = np.mgrid[0:SIZE, 0:SIZE] / SIZE
        out[np.hypot(yy2 - cy, xx2 - cx) < r] = rng.uniform(0.0, 1.0, 3)
    out[:6], out[-6:], out[:, :6], out[:, -6:] = 0.2, 0.2, 0.2, 0.2  # frame
    return out


def _tv_screen(rng):
    out = np.full((SIZE, SIZE, 3), 0.05)
    if rng.random() < 0.6:
        inner = _painting(rng)[10:-10, 10:-10] * rng.uniform(0.3, 0.8)
        out[10:-10, 10:-10] = inner
    out[:5], out[-5:], out[:, :5], out[:, -5:] = 0.02, 0.02, 0.02, 0.02
    return out


def _window_view(rng):
    y = np.linspace(0, 1, SIZE)[:, None, None]
    out = np.broadcast_to(np.array([0.75, 0.88, 1.0]) * (1 - 0.3 * y), (SIZE, SIZE, 3)).copy()
    out += 0.1 * (_fractal(rng, base=4)[..., None] - 0.5)
    frame = 0.92
    out[:6], out[-6:], out[:, :6], out[:, -6:] = frame, frame, frame, frame
    if rng.random() < 0.7:
        out[:, SIZE // 2 - 3 : SIZE // 2 + 3] = frame
    if rng.random() < 0.5:
        out[SIZE // 2 - 3 : SIZE // 2 + 3] = frame
    return out


FAMILIES: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "asphalt": _asphalt,
    "paving": _paving,
    "grass": _grass,
    "gravel": _gravel,
    "brick": _brick,
    "concrete": _concrete,
    "facade": _facade,
    "shopfront": _shopfront,
    "fence": _fence,
    "foliage": _foliage,
    "bark": _bark,
    "metal": _metal,
    "sign": _sign,
    "traffic_light": _traffic_light,
    "car_cabin": _car_cabin,
    "bus_side": _bus_side,
    "cloth": _cloth,
    "wood": _wood,
    "parquet": _parquet,
    "carpet": _carpet,
    "tiles": _tiles,
    "plaster": _plaster,
    "wallpaper": _wallpaper,
    "book_spines": _book_spines,
    "painting": _painting,
    "tv_screen": _tv_screen,
    "window_view": _window_view,
}
# pybullet_data images are one more family; their variants index the file list.
PYBULLET_FAMILY = "pybullet"


def texture_name(family: str, variant: int) -> str:
    """``"family/variant"``."""
    return f"{family}/{int(variant)}"


def make_texture(family: str, variant: int) -> np.ndarray:
    """The uint8 [SIZE, SIZE, 3] image of one procedural texture (deterministic)."""
    if family not in FAMILIES:
        raise KeyError(f"unknown texture family {family!r}; expected one of {sorted(FAMILIES)}.")
    seed = [zlib.crc32(family.encode("utf-8")), int(variant)]
    image = FAMILIES[family](np.random.default_rng(seed))
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def default_texture_dir() -> str:
    """``<tmp>/ka_tf_textures_<hash of this module's source>``."""
    with open(__file__, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"ka_tf_textures_{digest}")


class TextureFiles:
    """Writes textures as image files on first use and returns their paths.

    The files are uncompressed BMPs: lossless like PNG, and pybullet decodes them
    in under half the time (renderers reload every texture after each reset).

    Args:
        directory: Where to write them. If None: one directory in the system's temp
            folder per version of this module's source (textures are a pure function
            of it), shared by every process and run, so rendering workers that are
            terminated leave nothing new behind. Writes are atomic.
    """

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or default_texture_dir()
        os.makedirs(self.directory, exist_ok=True)
        self._paths: dict[str, str] = {}

    def path(self, name: str) -> str:
        """The image path of texture ``name`` (``family/variant``)."""
        if name in self._paths:
            return self._paths[name]
        family, variant = name.split("/")
        if family == PYBULLET_FAMILY:
            from ka_tf import extras

            pybullet_data = extras.require("pybullet_data", "the synthetic scenes' textures")
            file = PYBULLET_DATA_IMAGES[int(variant) % len(PYBULLET_DATA_IMAGES)]
            path = os.path.join(pybullet_data.getDataPath(), file)
        else:
            path = os.path.join(self.directory, f"{family}_{int(variant)}.bmp")
            if not os.path.exists(path):
                tmp = f"{path}.{os.getpid()}.tmp.bmp"
                Image.fromarray(make_texture(family, int(variant))).save(tmp)
                os.replace(tmp, path)
        self._paths[name] = path
        return path
