"""Indoor scenes (NYUv2 13 classes): a furnished room seen from near one wall.

World frame: metres, z up; the room spans x in [0, W], y in [0, D], z in [0, H].
The camera stands near the y = 0 wall looking roughly along +y. Every frame
draws room size, floor/wall/ceiling materials, furniture against the walls and in
the middle (beds, sofas, tables with chairs, cabinets, bookshelves with books),
wall decor (pictures, windows, a TV), and clutter ("objects") on floors and tables.
Pixels outside the room (none, normally) get the ignore label.
"""

from __future__ import annotations

import numpy as np

from ka_tf.constants import IGNORE_LABEL
from ka_tf.data.synth.classes import class_id
from ka_tf.data.synth.common import Materials, draw, draw_count, draw_lighting
from ka_tf.data.synth.config import SceneConfig
from ka_tf.data.synth.primitives import Camera, LayoutBuilder, SceneLayout
from ka_tf.data.synth.textures import PYBULLET_FAMILY

SCENE = "indoor"
C = {
    name: class_id(SCENE, name)
    for name in (
        "bed books ceiling chair floor furniture objects picture sofa table tv wall window".split()
    )
}
WOOD_COLORS = ((1.0, 1.0, 1.0), (0.8, 0.7, 0.6), (0.6, 0.45, 0.35), (1.0, 0.95, 0.85))
FABRIC_COLORS = (
    (0.75, 0.2, 0.2),
    (0.2, 0.3, 0.6),
    (0.55, 0.55, 0.55),
    (0.85, 0.8, 0.7),
    (0.3, 0.5, 0.35),
    (0.5, 0.35, 0.25),
    (0.9, 0.9, 0.92),
)
OBJECT_COLORS = (*FABRIC_COLORS, (0.95, 0.75, 0.2), (0.1, 0.1, 0.1), (0.2, 0.7, 0.8))


class _Room:
    """Draws one room; each method adds one kind of object."""

    def __init__(self, rng: np.random.Generator, config: SceneConfig) -> None:
        self.rng = rng
        self.config = config
        self.m = Materials(rng, config)
        self.b = LayoutBuilder()
        self.width = draw(rng, (3.2, 7.0))
        self.depth = draw(rng, (3.5, 7.5))
        self.height = draw(rng, (2.4, 3.2))
        self.cam_xy = (draw(rng, (0.8, self.width - 0.8)), draw(rng, (0.2, 0.9)))
        self.occupied: list[tuple[float, float, float, float]] = []  # x0, y0, x1, y1
        self.surfaces: list[tuple[float, float, float, float, float]] = []  # tops for clutter

    # --- floor plan --------------------------------------------------------
    def free(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        """Whether the footprint is inside the room, clear of others and of the camera."""
        if x0 < 0.02 or y0 < 0.02 or x1 > self.width - 0.02 or y1 > self.depth - 0.02:
            return False
        cx, cy = self.cam_xy
        if x0 - 0.7 < cx < x1 + 0.7 and y0 - 0.9 < cy < y1 + 0.9:
            return False
        return all(x1 <= a or x0 >= c or y1 <= b or y0 >= d for a, b, c, d in self.occupied)

    def place(self, size_x: float, size_y: float, against_wall: bool, tries: int = 12):
        """Finds a free spot; returns (cx, cy, yaw) or None. Against a wall the object's
        back (+y in its frame before yaw) faces that wall."""
        rng = self.rng
        for _ in range(tries):
            if against_wall:
                wall = int(rng.integers(0, 3))  # 0: far wall, 1: left wall, 2: right wall
                if wall == 0:
                    cx, cy, yaw = draw(rng, (0, self.width)), self.depth - size_y / 2 - 0.03, 0.0
                    fx, fy = size_x, size_y
                elif wall == 1:
                    cx, cy, yaw = size_y / 2 + 0.03, draw(rng, (0, self.depth)), 90.0
                    fx, fy = size_y, size_x
                else:
                    cx, cy = self.width - size_y / 2 - 0.03, draw(rng, (0, self.depth))
                    yaw, fx, fy = -90.0, size_y, size_x
            else:
                cx, cy = draw(rng, (0, self.width)), draw(rng, (0, self.depth))
                yaw = float(rng.choice([0.0, 90.0, 180.0, -90.0])) + draw(rng, (-15, 15))
                fx = fy = max(size_x, size_y)
            box = (cx - fx / 2, cy - fy / 2, cx + fx / 2, cy + fy / 2)
            if self.free(*box):
                self.occupied.append(box)
                return cx, cy, yaw
        return None

    def at(self, cx, cy, yaw, dx, dy):
        """World (x, y) of the offset (dx, dy) in an object's own frame."""
        c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        return cx + c * dx - s * dy, cy + s * dx + c * dy

    # --- the room shell ----------------------------------------------------
    def shell(self) -> None:
        b, m, rng = self.b, self.m, self.rng
        w, d, h = self.width, self.depth, self.height
        floor_family = m.choice(("parquet", "parquet", "carpet", "tiles"))
        floor_color = (
            m.choice(WOOD_COLORS)
            if floor_family == "parquet"
            else m.choice(((0.9, 0.9, 0.9), (0.7, 0.6, 0.5), (0.5, 0.55, 0.65)))
        )
        floor = m.textured(floor_family, floor_color, tile_m=(1.5, 1.5))
        b.box((w / 2, d / 2, -0.05), (w / 2 + 0.2, d / 2 + 0.2, 0.05), C["floor"], floor)
        if rng.random() < 0.4:  # a rug is floor too
            rw, rd = draw(rng, (1.2, 2.5)), draw(rng, (1.0, 2.0))
            rug = m.textured("carpet", m.choice(FABRIC_COLORS), tile_m=(rw, rd))
            b.box(
                (draw(rng, (rw / 2, max(rw / 2, w - rw / 2))), draw(rng, (1.5, d - 0.5)), 0.005),
                (rw / 2, rd / 2, 0.008),
                C["floor"],
                rug,
            )
        ceiling = m.textured("plaster", (0.95, 0.95, 0.95), tile_m=(2.0, 2.0))
        b.box((w / 2, d / 2, h + 0.05), (w / 2 + 0.2, d / 2 + 0.2, 0.05), C["ceiling"], ceiling)
        wall_family = m.choice(("plaster", "plaster", "wallpaper", "brick"))
        wall_color = m.choice(
            ((0.95, 0.95, 0.92), (0.9, 0.85, 0.75), (0.75, 0.85, 0.9), (0.85, 0.9, 0.8))
        )
        tile = (1.0, 1.0) if wall_family != "brick" else (1.2, 0.6)
        wall = m.textured(wall_family, wall_color, tile_m=tile)
        t = 0.05
        b.box((w / 2, d + t, h / 2), (w / 2 + 2 * t, t, h / 2), C["wall"], wall)
        b.box((w / 2, -t, h / 2), (w / 2 + 2 * t, t, h / 2), C["wall"], wall)
        b.box((-t, d / 2, h / 2), (t, d / 2 + 2 * t, h / 2), C["wall"], wall)
        b.box((w + t, d / 2, h / 2), (t, d / 2 + 2 * t, h / 2), C["wall"], wall)
        if rng.random() < 0.5:  # skirting board (wall)
            trim = m.plain((0.95, 0.95, 0.95))
            b.box((w / 2, d - 0.005, 0.05), (w / 2, 0.01, 0.05), C["wall"], trim)
        if rng.random() < 0.6:  # ceiling lamp
            b.cylinder(
                (draw(rng, (1.0, w - 1.0)), draw(rng, (1.0, d - 0.5)), h - 0.04),
                draw(rng, (0.15, 0.35)),
                0.04,
                C["objects"],
                m.plain((1.0, 1.0, 0.95)),
            )

    def wall_spot(self, width: float, z_range: tuple[float, float]):
        """A random spot on the far or a side wall: (center xyz, yaw, wall) or None."""
        rng = self.rng
        wall = int(rng.integers(0, 3))
        if z_range[0] > z_range[1]:  # does not fit under this ceiling
            return None
        z = draw(rng, z_range)
        if wall == 0:
            if self.width < width + 0.4:
                return None
            return (draw(rng, (width / 2 + 0.2, self.width - width / 2 - 0.2)), self.depth, z), 0.0
        if self.depth < width + 1.2:
            return None
        y = draw(rng, (width / 2 + 1.0, self.depth - width / 2 - 0.2))
        return ((0.0, y, z), 90.0) if wall == 1 else ((self.width, y, z), -90.0)

    def wall_decor(self) -> None:
        b, m, rng, cfg = self.b, self.m, self.rng, self.config
        for _ in range(draw_count(rng, cfg, "window")):
            width, height = draw(rng, (0.7, 1.8)), draw(rng, (0.9, 1.5))
            spot = self.wall_spot(
                width, (0.9 + height / 2, min(self.height - 0.15 - height / 2, 2.1))
            )
            if spot is None:
                continue
            (x, y, z), yaw = spot
            b.box(
                (x, y, z),
                (width / 2, 0.03, height / 2),
                C["window"],
                m.textured("window_view", jitter=False),
                yaw_deg=yaw,
            )
        for _ in range(draw_count(rng, cfg, "picture")):
            width, height = draw(rng, (0.3, 1.1)), draw(rng, (0.3, 0.9))
            spot = self.wall_spot(width, (1.3, min(2.0, self.height - 0.3 - height / 2)))
            if spot is None:
                continue
            (x, y, z), yaw = spot
            family = PYBULLET_FAMILY if rng.random() < 0.25 else "painting"
            b.box(
                (x, y, z),
                (width / 2, 0.025, height / 2),
                C["picture"],
                m.textured(family, jitter=False),
                yaw_deg=yaw,
            )

    # --- furniture -----------------------------------------------------------
    def cabinet(self, kind: str | None = None) -> None:
        b, m, rng = self.b, self.m, self.rng
        kind = kind or m.choice(("dresser", "wardrobe", "counter", "nightstand", "tv_stand"))
        sizes = {
            "dresser": ((0.8, 1.4), (0.45, 0.55), (0.7, 1.0)),
            "wardrobe": ((0.9, 1.8), (0.55, 0.65), (1.8, 2.2)),
            "counter": ((1.5, 3.0), (0.55, 0.65), (0.85, 0.95)),
            "nightstand": ((0.4, 0.55), (0.35, 0.45), (0.45, 0.6)),
            "tv_stand": ((1.0, 1.8), (0.4, 0.5), (0.4, 0.6)),
        }[kind]
        sx, sy, sz = (draw(rng, r) for r in sizes)
        spot = self.place(sx, sy, against_wall=True)
        if spot is None:
            return
        cx, cy, yaw = spot
        family = m.choice(("wood", "wood", "plaster"))
        b.box(
            (cx, cy, sz / 2),
            (sx / 2, sy / 2, sz / 2),
            C["furniture"],
            m.textured(family, m.choice(WOOD_COLORS), tile_m=(0.8, 0.8)),
            yaw_deg=yaw,
        )
        handle = m.plain((0.75, 0.75, 0.7))
        fx, fy = self.at(cx, cy, yaw, 0.0, -sy / 2 - 0.01)
        b.box((fx, fy, sz * 0.6), (sx * 0.3, 0.01, 0.015), C["furniture"], handle, yaw_deg=yaw)
        self.surfaces.append((cx, cy, sx * 0.8, sy * 0.8, sz))
        if kind == "tv_stand" or (kind in ("dresser", "counter") and rng.random() < 0.3):
            if draw_count(rng, self.config, "tv") > 0 or kind == "tv_stand":
                self.tv_on(cx, cy, yaw, sz, sy)

    def tv_on(self, cx, cy, yaw, top, depth) -> None:
        b, m, rng = self.b, self.m, self.rng
        width = draw(rng, (0.7, 1.3))
        height = width * draw(rng, (0.55, 0.62))
        x, y = self.at(cx, cy, yaw, 0.0, depth * 0.15)
        b.box(
            (x, y, top + 0.06 + height / 2),
            (width / 2, 0.03, height / 2),
            C["tv"],
            m.textured("tv_screen", jitter=False),
            yaw_deg=yaw,
        )
        b.box(
            (x, y, top + 0.03),
            (0.12, 0.08, 0.03),
            C["tv"],
            m.plain((0.05, 0.05, 0.05)),
            yaw_deg=yaw,
        )

    def wall_tv(self) -> None:
        width = draw(self.rng, (0.8, 1.4))
        spot = self.wall_spot(width, (1.2, 1.7))
        if spot is None:
            return
        (x, y, z), yaw = spot
        self.b.box(
            (x, y, z),
            (width / 2, 0.04, width * 0.29),
            C["tv"],
            self.m.textured("tv_screen", jitter=False),
            yaw_deg=yaw,
        )

    def bookshelf(self) -> None:
        b, m, rng = self.b, self.m, self.rng
        sx, sy, sz = draw(rng, (0.7, 1.6)), draw(rng, (0.3, 0.4)), draw(rng, (1.2, 2.2))
        spot = self.place(sx, sy, against_wall=True)
        if spot is None:
            return
        cx, cy, yaw = spot
        wood = m.textured("wood", m.choice(WOOD_COLORS), tile_m=(0.8, 0.8))
        t = 0.025
        for dx in (-sx / 2 + t, sx / 2 - t):  # sides
            x, y = self.at(cx, cy, yaw, dx, 0.0)
            b.box((x, y, sz / 2), (t, sy / 2, sz / 2), C["furniture"], wood, yaw_deg=yaw)
        x, y = self.at(cx, cy, yaw, 0.0, sy / 2 - 0.01)
        b.box((x, y, sz / 2), (sx / 2, 0.01, sz / 2), C["furniture"], wood, yaw_deg=yaw)
        shelves = int(rng.integers(3, 6))
        gap = sz / shelves
        for level in range(shelves + 1):
            z = min(level * gap + t, sz - t)
            b.box((cx, cy, z), (sx / 2, sy / 2, t), C["furniture"], wood, yaw_deg=yaw)
            if level < shelves and rng.random() < 0.85:
                fill = draw(rng, (0.4, 0.95))
                bh = min(gap - 2 * t - 0.02, draw(rng, (0.18, 0.3)))
                dx = (-1 + fill) * (sx / 2 - 2 * t) * (1 if rng.random() < 0.5 else -1)
                x, y = self.at(cx, cy, yaw, dx, 0.0)
                books = m.textured("book_spines", jitter=False)
                b.box(
                    (x, y, z + t + bh / 2),
                    (fill * (sx / 2 - 2 * t), sy * 0.4, bh / 2),
                    C["books"],
                    books,
                    yaw_deg=yaw,
                )

    def bed(self) -> None:
        b, m, rng = self.b, self.m, self.rng
        sx, sy = draw(rng, (0.9, 1.8)), draw(rng, (1.9, 2.2))
        spot = self.place(sx, sy, against_wall=True)
        if spot is None:
            return
        cx, cy, yaw = spot
        wood = m.textured("wood", m.choice(WOOD_COLORS), tile_m=(0.8, 0.8))
        sheet = m.textured("cloth", m.choice(FABRIC_COLORS), tile_m=(0.5, 0.5))
        b.box((cx, cy, 0.2), (sx / 2, sy / 2, 0.2), C["bed"], wood, yaw_deg=yaw)
        b.box((cx, cy, 0.5), (sx / 2 - 0.02, sy / 2 - 0.02, 0.12), C["bed"], sheet, yaw_deg=yaw)
        x, y = self.at(cx, cy, yaw, 0.0, sy / 2 - 0.03)
        b.box((x, y, 0.55), (sx / 2, 0.04, 0.55), C["bed"], wood, yaw_deg=yaw)  # headboard
        pillow = m.plain((0.95, 0.95, 0.95))
        for dx in (0.0,) if sx < 1.3 else (-sx / 4, sx / 4):
            x, y = self.at(cx, cy, yaw, dx, sy / 2 - 0.3)
            b.box((x, y, 0.67), (min(0.3, sx / 4), 0.18, 0.06), C["bed"], pillow, yaw_deg=yaw)
        # a nightstand beside it
        x, y = self.at(cx, cy, yaw, sx / 2 + 0.3, sy / 2 - 0.25)
        box = (x - 0.25, y - 0.25, x + 0.25, y + 0.25)
        if self.free(*box):
            self.occupied.append(box)
            b.box((x, y, 0.27), (0.22, 0.2, 0.27), C["furniture"], wood, yaw_deg=yaw)
            self.surfaces.append((x, y, 0.3, 0.3, 0.54))

    def sofa(self) -> None:
        b, m, rng = self.b, self.m, self.rng
        sx, sy = draw(rng, (1.5, 2.4)), draw(rng, (0.8, 1.0))
        spot = self.place(sx, sy, against_wall=rng.random() < 0.7)
        if spot is None:
            return
        cx, cy, yaw = spot
        fabric = m.textured("cloth", m.choice(FABRIC_COLORS), tile_m=(0.5, 0.5))
        b.box((cx, cy, 0.22), (sx / 2, sy / 2, 0.22), C["sofa"], fabric, yaw_deg=yaw)
        x, y = self.at(cx, cy, yaw, 0.0, sy / 2 - 0.1)
        b.box((x, y, 0.6), (sx / 2, 0.1, 0.3), C["sofa"], fabric, yaw_deg=yaw)
        for dx in (-sx / 2 + 0.1, sx / 2 - 0.1):
            x, y = self.at(cx, cy, yaw, dx, 0.0)
            b.box((x, y, 0.45), (0.1, sy / 2, 0.15), C["sofa"], fabric, yaw_deg=yaw)
        cushion = m.plain(m.choice(FABRIC_COLORS))
        for dx in (-sx / 4, sx / 4):
            if rng.random() < 0.6:
                x, y = self.at(cx, cy, yaw, dx, sy / 2 - 0.3)
                b.box((x, y, 0.6), (0.2, 0.08, 0.18), C["sofa"], cushion, yaw_deg=yaw + 5)

    def table_with_chairs(self) -> None:
        b, m, rng = self.b, self.m, self.rng
        coffee = rng.random() < 0.3
        sx, sy = draw(rng, (0.8, 1.8)), draw(rng, (0.6, 1.0))
        height = draw(rng, (0.35, 0.45)) if coffee else draw(rng, (0.7, 0.78))
        spot = self.place(sx + 0.6, sy + 0.6, against_wall=False, tries=25)
        if spot is None:
            return
        cx, cy, yaw = spot
        wood = m.textured("wood", m.choice(WOOD_COLORS), tile_m=(0.8, 0.8))
        b.box((cx, cy, height - 0.02), (sx / 2, sy / 2, 0.025), C["table"], wood, yaw_deg=yaw)
        for dx in (-sx / 2 + 0.05, sx / 2 - 0.05):
            for dy in (-sy / 2 + 0.05, sy / 2 - 0.05):
                x, y = self.at(cx, cy, yaw, dx, dy)
                b.box(
                    (x, y, (height - 0.04) / 2),
                    (0.025, 0.025, (height - 0.04) / 2),
                    C["table"],
                    wood,
                    yaw_deg=yaw,
                )
        self.surfaces.append((cx, cy, sx * 0.8, sy * 0.8, height))
        if coffee:
            return
        chair_mat = m.textured(
            m.choice(("wood", "cloth")),
            m.choice(WOOD_COLORS + FABRIC_COLORS),
            tile_m=(0.5, 0.5),
            jitter=False,
        )
        for side in (-1, 1):
            for k in range(int(rng.integers(0, 3))):
                dx = (k - 0.5) * sx / 2 if sx > 1.1 else 0.0
                x, y = self.at(cx, cy, yaw, dx, side * (sy / 2 + 0.3))
                self.chair(x, y, yaw + (180 if side > 0 else 0) + draw(rng, (-10, 10)), chair_mat)

    def chair(self, x: float, y: float, yaw: float, material) -> None:
        b = self.b
        seat = 0.45
        b.box((x, y, seat), (0.22, 0.22, 0.025), C["chair"], material, yaw_deg=yaw)
        for dx in (-0.19, 0.19):
            for dy in (-0.19, 0.19):
                lx, ly = self.at(x, y, yaw, dx, dy)
                b.box((lx, ly, seat / 2), (0.02, 0.02, seat / 2), C["chair"], material, yaw_deg=yaw)
        bx, by = self.at(x, y, yaw, 0.0, -0.21)
        b.box((bx, by, seat + 0.25), (0.22, 0.02, 0.22), C["chair"], material, yaw_deg=yaw)

    def loose_chairs(self, count: int) -> None:
        m = self.m
        material = m.textured(
            m.choice(("wood", "cloth")),
            m.choice(WOOD_COLORS + FABRIC_COLORS),
            tile_m=(0.5, 0.5),
            jitter=False,
        )
        for _ in range(count):
            spot = self.place(0.5, 0.5, against_wall=False)
            if spot is not None:
                self.chair(spot[0], spot[1], spot[2], material)

    # --- small things ----------------------------------------------------------
    def small_object(self, x: float, y: float, z: float) -> None:
        b, m, rng = self.b, self.m, self.rng
        color = m.choice(OBJECT_COLORS)
        kind = int(rng.integers(0, 5))
        if kind == 0:  # vase / bottle / cup
            h, r = draw(rng, (0.08, 0.35)), draw(rng, (0.03, 0.1))
            b.cylinder((x, y, z + h / 2), r, h / 2, C["objects"], m.plain(color))
        elif kind == 1:  # box
            half = rng.uniform(0.05, 0.2, 3)
            b.box(
                (x, y, z + half[2]),
                half,
                C["objects"],
                m.textured("cloth", color, jitter=False),
                yaw_deg=draw(rng, (0, 90)),
            )
        elif kind == 2:  # bowl / ball
            r = draw(rng, (0.06, 0.15))
            b.sphere((x, y, z + r * 0.6), (r, r, r * 0.6), C["objects"], m.plain(color))
        elif kind == 3:  # lamp
            h = draw(rng, (0.3, 0.6)) if z > 0.1 else draw(rng, (1.2, 1.6))
            b.cylinder((x, y, z + h / 2), 0.015, h / 2, C["objects"], m.plain((0.2, 0.2, 0.2)))
            b.cylinder(
                (x, y, z + h), draw(rng, (0.1, 0.2)), 0.1, C["objects"], m.plain((0.95, 0.9, 0.75))
            )
        else:  # plant in a pot
            pot = draw(rng, (0.08, 0.18))
            b.cylinder((x, y, z + pot), pot, pot, C["objects"], m.plain((0.6, 0.35, 0.25)))
            leaves = m.textured("foliage", tile_m=(0.3, 0.3), jitter=False)
            b.sphere((x, y, z + 2 * pot + pot * 1.2), (pot * 1.5,) * 3, C["objects"], leaves)

    def books_on(self, x: float, y: float, z: float) -> None:
        b, m, rng = self.b, self.m, self.rng
        for k in range(int(rng.integers(1, 5))):
            thick = draw(rng, (0.02, 0.05))
            b.box(
                (x, y, z + thick / 2 + k * 0.05),
                (draw(rng, (0.1, 0.15)), draw(rng, (0.14, 0.2)), thick / 2),
                C["books"],
                m.plain(m.choice(OBJECT_COLORS)),
                yaw_deg=draw(rng, (0, 40)),
            )

    def clutter(self) -> None:
        rng, cfg = self.rng, self.config
        for _ in range(draw_count(rng, cfg, "books_on_table")):
            if self.surfaces:
                cx, cy, sx, sy, top = self.surfaces[int(rng.integers(0, len(self.surfaces)))]
                self.books_on(
                    cx + draw(rng, (-sx / 2, sx / 2)), cy + draw(rng, (-sy / 2, sy / 2)), top
                )
        for _ in range(draw_count(rng, cfg, "clutter")):
            if self.surfaces and rng.random() < 0.6:
                cx, cy, sx, sy, top = self.surfaces[int(rng.integers(0, len(self.surfaces)))]
                self.small_object(
                    cx + draw(rng, (-sx / 2, sx / 2)), cy + draw(rng, (-sy / 2, sy / 2)), top
                )
            else:
                spot = self.place(0.35, 0.35, against_wall=rng.random() < 0.5, tries=4)
                if spot is not None:
                    self.small_object(spot[0], spot[1], 0.0)

    def camera(self) -> Camera:
        rng, cfg = self.rng, self.config
        return Camera(
            eye=(
                self.cam_xy[0],
                self.cam_xy[1],
                min(draw(rng, cfg.camera_height_m), self.height - 0.3),
            ),
            yaw_deg=draw(rng, cfg.camera_yaw_deg),
            pitch_deg=draw(rng, cfg.camera_pitch_deg),
            fov_deg=draw(rng, cfg.fov_deg),
            near_m=cfg.near_m,
            far_m=cfg.far_m,
        )


def indoor_layout(rng: np.random.Generator, config: SceneConfig) -> SceneLayout:
    """Draws one indoor frame's layout.

    Args:
        rng: The frame's generator (see :mod:`.seeds`).
        config: An indoor :class:`SceneConfig`.

    Returns:
        The layout: primitives, camera and light (no sky: background is ignored).
    """
    room = _Room(rng, config)
    camera = room.camera()
    room.shell()
    room.wall_decor()
    # Big pieces first so they find room; order varies by frame.
    for _ in range(draw_count(rng, config, "bed")):
        room.bed()
    for _ in range(draw_count(rng, config, "sofa")):
        room.sofa()
    for _ in range(draw_count(rng, config, "bookshelf")):
        room.bookshelf()
    for _ in range(draw_count(rng, config, "table")):
        room.table_with_chairs()
    for _ in range(draw_count(rng, config, "cabinet")):
        room.cabinet()
    if draw_count(rng, config, "tv") > 0 and rng.random() < 0.5:
        room.wall_tv()
    room.loose_chairs(max(0, draw_count(rng, config, "chair") - 2))
    room.clutter()
    return SceneLayout(
        primitives=room.b.primitives(),
        camera=camera,
        lighting=draw_lighting(rng, config),
        background_class=IGNORE_LABEL,
        sky=None,
    )
