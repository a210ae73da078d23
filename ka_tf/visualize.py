"""Colourising dense predictions and laying them out as PNG panels.

Used by every tool that shows data to a person: the synthetic-data contact sheet,
``inspect_dataset.py``, the demo's prediction panels and ``predict.py``.
All functions take and return numpy arrays; images are uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ka_tf.constants import IGNORE_LABEL

IGNORE_COLOR = (0, 0, 0)

#: The tools' ``--class_names`` choices (:func:`class_names_and_palette`).
CLASS_NAME_SETS = ("auto", "cityscapes", "nyu13", "none")

# A perceptually ordered colour map (viridis-like), 9 anchors interpolated to 256.
_MAP_ANCHORS = np.array(
    [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ],
    dtype=np.float32,
)


def _colour_map() -> np.ndarray:
    positions = np.linspace(0.0, 1.0, len(_MAP_ANCHORS))
    grid = np.linspace(0.0, 1.0, 256)
    return np.stack(
        [np.interp(grid, positions, _MAP_ANCHORS[:, c]) for c in range(3)], axis=-1
    ).astype(np.uint8)


COLOUR_MAP = _colour_map()


def default_palette(num_classes: int) -> np.ndarray:
    """A deterministic, well-spread palette for ``num_classes`` classes, [C, 3] uint8."""
    rng = np.random.default_rng(1234)
    return rng.integers(40, 256, size=(num_classes, 3)).astype(np.uint8)


def colorize_labels(
    labels: np.ndarray, palette: Sequence[Sequence[int]] | np.ndarray
) -> np.ndarray:
    """Maps class ids [H, W] to colours [H, W, 3]; the ignore label becomes black.

    Raises:
        ValueError: if a label is neither a palette index nor the ignore label.
    """
    palette = np.asarray(palette, dtype=np.uint8)
    labels = np.asarray(labels)
    valid = labels != IGNORE_LABEL
    if valid.any() and labels[valid].max() >= len(palette):
        raise ValueError(
            f"label {int(labels[valid].max())} has no colour: the palette has {len(palette)} "
            f"classes (and {IGNORE_LABEL} = ignore)."
        )
    out = np.zeros((*labels.shape, 3), dtype=np.uint8)
    out[:] = IGNORE_COLOR
    out[valid] = palette[labels[valid].astype(np.int64)]
    return out


def colorize_depth(
    depth: np.ndarray, vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """Colours metric depth [H, W] (near = dark, far = bright); 0/invalid is black.

    Uses inverse depth, which spreads near structure over more colours. ``vmin`` and
    ``vmax`` fix the range (in metres) so that several maps share one scale.
    """
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    out = np.zeros((*depth.shape, 3), dtype=np.uint8)
    if not valid.any():
        return out
    lo = float(vmin) if vmin is not None else float(depth[valid].min())
    hi = float(vmax) if vmax is not None else float(depth[valid].max())
    lo, hi = max(lo, 1e-3), max(hi, lo * 1.0001 + 1e-6)
    inv = 1.0 / np.clip(depth[valid], lo, hi)
    t = (inv - 1.0 / hi) / (1.0 / lo - 1.0 / hi)
    out[valid] = COLOUR_MAP[np.round((1.0 - t) * 255).astype(np.int64)]
    return out


def colorize_normals(normals: np.ndarray) -> np.ndarray:
    """Maps unit normals [H, W, 3] in [-1, 1] to RGB; zero vectors become black."""
    normals = np.asarray(normals, dtype=np.float32)
    valid = np.linalg.norm(normals, axis=-1) > 0.5
    out = np.round((np.clip(normals, -1, 1) + 1.0) * 127.5).astype(np.uint8)
    out[~valid] = 0
    return out


def depth_scale_bar(height: int, width: int, vmin: float, vmax: float) -> np.ndarray:
    """A horizontal colour bar for :func:`colorize_depth` with its range written on it."""
    ramp = np.geomspace(max(vmin, 1e-3), max(vmax, vmin + 1e-3), width)[None, :].repeat(height, 0)
    bar = colorize_depth(ramp, vmin, vmax)
    image = Image.fromarray(bar)
    draw = ImageDraw.Draw(image)
    draw.text((2, 1), f"{vmin:.1f} m", fill=(255, 255, 255))
    label = f"{vmax:.1f} m"
    draw.text((width - 6 * len(label) - 2, 1), label, fill=(0, 0, 0))
    return np.asarray(image)


def legend(
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]] | np.ndarray,
    width: int,
    row_height: int = 12,
) -> np.ndarray:
    """A block of colour swatches with class names, laid out in columns to fit ``width``."""
    palette = np.asarray(palette, dtype=np.uint8)
    column_width = 110
    columns = max(1, width // column_width)
    rows = -(-len(class_names) // columns)
    image = Image.new("RGB", (width, rows * row_height + 2), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for index, name in enumerate(class_names):
        x = (index // rows) * column_width + 2
        y = (index % rows) * row_height + 1
        draw.rectangle([x, y, x + 9, y + 9], fill=tuple(int(v) for v in palette[index]))
        draw.text((x + 12, y - 1), name[:16], fill=(0, 0, 0))
    return np.asarray(image)


def titled(image: np.ndarray, title: str, bar_height: int = 12) -> np.ndarray:
    """Returns ``image`` with ``title`` written on a white strip above it."""
    strip = Image.new("RGB", (image.shape[1], bar_height), (255, 255, 255))
    ImageDraw.Draw(strip).text((2, 0), title, fill=(0, 0, 0))
    return np.concatenate([np.asarray(strip), image], axis=0)


def make_grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Tiles images row by row (each row left to right) on a white background.

    Images in one grid may differ in size; each cell takes the largest size.
    """
    cells = [cell for row in rows for cell in row]
    if not cells:
        raise ValueError("make_grid needs at least one image.")
    cell_h = max(cell.shape[0] for cell in cells)
    cell_w = max(cell.shape[1] for cell in cells)
    n_cols = max(len(row) for row in rows)
    grid = np.full(
        (len(rows) * (cell_h + pad) + pad, n_cols * (cell_w + pad) + pad, 3), 255, dtype=np.uint8
    )
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if cell.ndim == 2:
                cell = np.repeat(cell[..., None], 3, axis=-1)
            y, x = pad + r * (cell_h + pad), pad + c * (cell_w + pad)
            grid[y : y + cell.shape[0], x : x + cell.shape[1]] = cell
    return grid


def save_png(path: str, image: np.ndarray) -> None:
    """Writes a uint8 RGB image to ``path`` as PNG, atomically."""
    import io

    from ka_tf.io_utils import atomic_write_bytes

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def class_names_and_palette(choice: str, num_classes: int) -> tuple[list[str], np.ndarray]:
    """Class names and palette for ``num_classes`` under ``--class_names=choice``
    (one of :data:`CLASS_NAME_SETS`; ``auto``: 19 classes are Cityscapes', 13 NYUv2's,
    others numbered).

    Raises:
        ConfigError: if a named set does not have ``num_classes`` classes.
    """
    from ka_tf import constants
    from ka_tf.errors import ConfigError

    sets = {
        "cityscapes": (constants.CITYSCAPES_CLASSES, constants.CITYSCAPES_PALETTE),
        "nyu13": (constants.NYU13_CLASSES, constants.NYU13_PALETTE),
    }
    if choice == "auto":
        choice = {19: "cityscapes", 13: "nyu13"}.get(num_classes, "none")
    if choice == "none":
        return [f"class {i}" for i in range(num_classes)], default_palette(num_classes)
    names, palette = sets[choice]
    if len(names) != num_classes:
        raise ConfigError(
            f"--class_names={choice} has {len(names)} classes but the model predicts "
            f"{num_classes}. Use --class_names=none or auto."
        )
    return list(names), palette
