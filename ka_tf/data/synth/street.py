"""Street scenes (Cityscapes train ids): a road between sidewalks, façades and traffic.

World frame: metres, z up; the road runs along +y from the camera, which stands
at y = 0 on the road, looking roughly along +y. Every frame draws, from its own
generator and the :class:`~.config.SceneConfig` ranges: road width and lanes,
sidewalks, grass strips, a row of buildings on each side (with gaps, walls,
fences and hedges), poles with signs and traffic lights, trees, parked and moving
vehicles, pedestrians and cyclists, distractor clutter (ignore label) and the sky.
"""

from __future__ import annotations

import numpy as np

from ka_tf.constants import IGNORE_LABEL
from ka_tf.data.synth.classes import class_id
from ka_tf.data.synth.common import Materials, draw, draw_count, draw_lighting
from ka_tf.data.synth.config import SceneConfig
from ka_tf.data.synth.primitives import Camera, LayoutBuilder, SceneLayout

SCENE = "street"
C = {
    name: class_id(SCENE, name)
    for name in (
        "road sidewalk building wall fence pole vegetation terrain sky person rider car truck "
        "bus train motorcycle bicycle"
    ).split()
}
C["traffic light"] = class_id(SCENE, "traffic light")
C["traffic sign"] = class_id(SCENE, "traffic sign")

CAR_COLORS = (
    (0.9, 0.9, 0.9),
    (0.15, 0.15, 0.17),
    (0.5, 0.5, 0.52),
    (0.7, 0.72, 0.75),
    (0.7, 0.1, 0.1),
    (0.12, 0.25, 0.6),
    (0.2, 0.4, 0.25),
    (0.8, 0.65, 0.2),
)
CLOTH_COLORS = (
    (0.1, 0.1, 0.12),
    (0.2, 0.25, 0.45),
    (0.6, 0.6, 0.6),
    (0.7, 0.2, 0.2),
    (0.85, 0.85, 0.8),
    (0.35, 0.25, 0.15),
    (0.2, 0.45, 0.3),
    (0.8, 0.6, 0.3),
)
SKIN_COLORS = ((0.95, 0.8, 0.68), (0.82, 0.62, 0.48), (0.55, 0.38, 0.26), (0.36, 0.24, 0.16))
LENGTH_M = 140.0  # how far the street runs ahead of the camera


class _Street:
    """Draws one street frame; each method adds one kind of object."""

    def __init__(self, rng: np.random.Generator, config: SceneConfig) -> None:
        self.rng = rng
        self.config = config
        self.m = Materials(rng, config)
        self.b = LayoutBuilder()
        self.road_half = draw(rng, (3.5, 8.0))
        self.lanes = max(2, round(2 * self.road_half / 3.3))
        self.sidewalk = [draw(rng, (1.8, 5.0)) for _ in range(2)]
        self.curb = draw(rng, (0.1, 0.18))
        # Optional grass strip between road and sidewalk on each side.
        self.verge = [draw(rng, (1.0, 2.5)) if rng.random() < 0.35 else 0.0 for _ in range(2)]
        self.front = [
            self.road_half + self.verge[s] + self.sidewalk[s] for s in range(2)
        ]  # distance from the road centre to the building line, per side

    # --- helpers -----------------------------------------------------------
    def side_x(self, side: int, distance: float) -> float:
        """x of a point ``distance`` from the road centre on ``side`` (0 = left, 1 = right)."""
        return -distance if side == 0 else distance

    def sidewalk_x(self, side: int, fraction: float) -> float:
        inner = self.road_half + self.verge[side]
        return self.side_x(side, inner + fraction * self.sidewalk[side])

    # --- ground ------------------------------------------------------------
    def ground(self) -> None:
        b, m, rng = self.b, self.m, self.rng
        half_len = LENGTH_M / 2 + 10
        cy = LENGTH_M / 2 - 10
        asphalt = m.textured("asphalt", (draw(rng, (0.7, 1.1)),) * 3, tile_m=(4.0, 4.0))
        b.box((0, cy, -0.05), (self.road_half, half_len, 0.05), C["road"], asphalt)
        # Lane markings (road class): dashed lane lines, solid edge lines, crossings.
        paint = m.plain((0.92, 0.92, 0.9))
        lane_w = 2 * self.road_half / self.lanes
        for lane in range(1, self.lanes):
            x = -self.road_half + lane * lane_w
            dash, gap = draw(rng, (2.0, 4.0)), draw(rng, (4.0, 8.0))
            solid = lane == self.lanes // 2 and rng.random() < 0.3
            y = -8.0 + draw(rng, (0.0, gap))
            while y < LENGTH_M:
                length = 2 * LENGTH_M if solid else dash
                b.box((x, y + length / 2, 0.005), (0.07, length / 2, 0.01), C["road"], paint)
                y += length + gap
        if rng.random() < 0.6:
            for side in range(2):
                x = self.side_x(side, self.road_half - 0.3)
                b.box((x, cy, 0.005), (0.06, half_len, 0.01), C["road"], paint)
        if rng.random() < 0.35:
            y0 = draw(rng, (8.0, 35.0))
            x = -self.road_half + 0.3
            while x < self.road_half - 0.5:
                b.box((x + 0.25, y0, 0.005), (0.25, 2.0, 0.01), C["road"], paint)
                x += 1.0
        paving = m.textured(
            m.choice(("paving", "paving", "concrete")),
            (draw(rng, (0.7, 1.0)),) * 3,
            tile_m=(2.0, 2.0),
        )
        grass = m.textured("grass", (1.0, 1.0, 1.0), tile_m=(3.0, 3.0))
        for side in range(2):
            inner = self.road_half
            if self.verge[side]:
                x = self.side_x(side, inner + self.verge[side] / 2)
                b.box((x, cy, 0.0), (self.verge[side] / 2, half_len, 0.06), C["terrain"], grass)
                inner += self.verge[side]
            x = self.side_x(side, inner + self.sidewalk[side] / 2)
            b.box(
                (x, cy, self.curb / 2 - 0.05),
                (self.sidewalk[side] / 2, half_len, self.curb / 2 + 0.05),
                C["sidewalk"],
                paving,
            )
        if rng.random() < 0.5:  # the street ends in a cross row of buildings
            y = LENGTH_M + draw(rng, (5.0, 30.0))
            for x0 in np.arange(-60.0, 60.0, 15.0):
                height = draw(rng, (6.0, 25.0))
                facade = m.textured("facade", (0.85, 0.82, 0.78), tile_m=(3.0, 3.2))
                b.box((x0 + 7.5, y + 8, height / 2), (7.5, 8, height / 2), C["building"], facade)

    # --- buildings and what stands in their gaps ----------------------------
    def buildings(self) -> None:
        b, m, rng = self.b, self.m, self.rng
        walls, fences, hedges = (
            draw_count(rng, self.config, k) for k in ("wall", "fence", "hedge")
        )
        self.back_ground = m.textured(m.choice(("grass", "gravel")), tile_m=(4.0, 4.0))
        for side in range(2):
            y = -12.0
            while y < LENGTH_M:
                width = draw(rng, (6.0, 24.0))
                setback = draw(rng, (0.0, 2.5)) if rng.random() < 0.4 else 0.0
                if rng.random() < 0.15:  # a gap: open ground (terrain), maybe a tree
                    x = self.side_x(side, self.front[side] + 15.0)
                    b.box(
                        (x, y + width / 2, 0.0),
                        (15.0, width / 2, 0.05),
                        C["terrain"],
                        self.back_ground,
                    )
                    if rng.random() < 0.6:
                        self.tree(side, y + width / 2, draw(rng, (3.0, 12.0)))
                    y += width
                    continue
                height = draw(rng, (5.0, 14.0)) if rng.random() < 0.6 else draw(rng, (14.0, 40.0))
                depth = draw(rng, (8.0, 20.0))
                family = m.choice(("facade", "facade", "facade", "brick", "concrete"))
                tile = (m.choice((2.5, 3.0, 3.5, 4.0)), m.choice((3.0, 3.3, 3.6)))
                if family != "facade":
                    tile = (m.choice((2.0, 3.0, 4.0)), m.choice((1.5, 2.0, 3.0)))
                wall_color = m.choice(
                    ((0.95, 0.92, 0.85), (0.85, 0.8, 0.7), (0.7, 0.7, 0.72), (0.9, 0.75, 0.6))
                )
                material = m.textured(family, wall_color, tile_m=tile)
                inner = self.front[side] + setback
                x = self.side_x(side, inner + depth / 2)
                b.box(
                    (x, y + width / 2, height / 2),
                    (depth / 2, width / 2, height / 2),
                    C["building"],
                    material,
                )
                if rng.random() < 0.4:  # shops on the ground floor
                    shop = m.textured("shopfront", tile_m=(draw(rng, (3.0, 6.0)), 3.5))
                    x = self.side_x(side, inner - 0.05 + depth / 2)
                    b.box(
                        (x, y + width / 2, 1.75),
                        (depth / 2, width / 2 - 0.1, 1.75),
                        C["building"],
                        shop,
                    )
                if setback > 1.0 and rng.random() < 0.5:
                    self.tree(side, y + width / 2, self.front[side] + setback / 2)
                y += width
        for _ in range(walls):
            side, length = int(rng.integers(0, 2)), draw(rng, (3.0, 15.0))
            height, y = draw(rng, (0.6, 2.5)), draw(rng, (3.0, 60.0))
            material = self.m.textured(m.choice(("concrete", "brick")), tile_m=(2.0, 1.0))
            x = self.side_x(side, self.front[side] - 0.2)
            b.box((x, y, height / 2), (0.15, length / 2, height / 2), C["wall"], material)
        for _ in range(fences):
            side, length = int(rng.integers(0, 2)), draw(rng, (3.0, 15.0))
            height, y = draw(rng, (0.9, 2.0)), draw(rng, (3.0, 60.0))
            material = m.textured(
                "fence", m.choice(((0.6, 0.6, 0.6), (0.4, 0.3, 0.2))), tile_m=(2.0, height)
            )
            x = self.side_x(side, self.front[side] - draw(rng, (0.3, 0.8)))
            b.box((x, y, height / 2), (0.03, length / 2, height / 2), C["fence"], material)
        for _ in range(hedges):
            side, length = int(rng.integers(0, 2)), draw(rng, (3.0, 12.0))
            height, y = draw(rng, (0.6, 1.6)), draw(rng, (3.0, 60.0))
            x = self.side_x(side, self.front[side] - 0.6)
            b.box(
                (x, y, height / 2),
                (0.5, length / 2, height / 2),
                C["vegetation"],
                m.textured("foliage", tile_m=(1.5, 1.5)),
            )

    # --- street furniture and trees -----------------------------------------
    def tree(self, side: int, y: float, distance: float) -> None:
        b, m, rng = self.b, self.m, self.rng
        x = self.side_x(side, distance)
        trunk_h, trunk_r = draw(rng, (1.8, 4.0)), draw(rng, (0.1, 0.25))
        b.cylinder(
            (x, y, trunk_h / 2),
            trunk_r,
            trunk_h / 2,
            C["vegetation"],
            m.textured("bark", tile_m=(1.0, 1.0)),
        )
        leaves = m.textured(
            "foliage", m.choice(((1.0, 1.0, 1.0), (0.8, 0.9, 0.6))), tile_m=(1.5, 1.5)
        )
        radius = draw(rng, (1.2, 3.0))
        for _ in range(int(rng.integers(1, 4))):
            offset = rng.uniform(-0.6, 0.6, 3) * radius
            semi = radius * rng.uniform(0.7, 1.1, 3)
            center = (x + offset[0], y + offset[1], trunk_h + radius * 0.8 + offset[2] * 0.5)
            b.sphere(center, semi, C["vegetation"], leaves)

    def pole(self, side: int, y: float, height: float) -> tuple[float, float]:
        """Adds a pole at the curb; returns its (x, top z)."""
        b, m, rng = self.b, self.m, self.rng
        x = self.sidewalk_x(side, draw(rng, (0.05, 0.2)))
        radius = draw(rng, (0.05, 0.12))
        metal = m.textured(
            "metal",
            m.choice(((0.6, 0.6, 0.6), (0.3, 0.35, 0.3), (0.2, 0.2, 0.2))),
            tile_m=(1.0, 1.0),
            jitter=False,
        )
        b.cylinder((x, y, height / 2), radius, height / 2, C["pole"], metal)
        if height > 6.0 and rng.random() < 0.6:  # a street lamp arm over the road
            arm = draw(rng, (1.0, 3.0))
            ax = x + (arm / 2 if side == 0 else -arm / 2)
            b.box((ax, y, height - 0.1), (arm / 2, 0.06, 0.06), C["pole"], metal)
        return x, height

    def street_furniture(self) -> None:
        b, m, rng, cfg = self.b, self.m, self.rng, self.config
        for _ in range(draw_count(rng, cfg, "pole")):
            self.pole(int(rng.integers(0, 2)), draw(rng, (2.0, 70.0)), draw(rng, (3.0, 9.0)))
        for _ in range(draw_count(rng, cfg, "traffic_sign")):
            side, y = int(rng.integers(0, 2)), draw(rng, (4.0, 45.0))
            x, top = self.pole(side, y, draw(rng, (2.4, 3.6)))
            face = m.textured("sign", jitter=False)
            size = draw(rng, (0.3, 0.45))
            for level in range(int(rng.integers(1, 3))):
                z = top - size - level * (2.1 * size)
                if rng.random() < 0.5:
                    b.cylinder((x, y - 0.1, z), size, 0.02, C["traffic sign"], face, pitch_deg=90)
                else:
                    b.box((x, y - 0.1, z), (size, 0.02, size), C["traffic sign"], face)
        for _ in range(draw_count(rng, cfg, "traffic_light")):
            side, y = int(rng.integers(0, 2)), draw(rng, (6.0, 45.0))
            x, top = self.pole(side, y, draw(rng, (3.0, 5.5)))
            housing = m.textured("traffic_light", jitter=False)
            if rng.random() < 0.4:  # hanging over the road on an arm
                arm = draw(rng, (2.0, 4.5))
                ax = x + (arm if side == 0 else -arm)
                b.box(((x + ax) / 2, y, top), (arm / 2, 0.05, 0.05), C["pole"], m.plain((0.3,) * 3))
                x = ax
            b.box((x, y - 0.2, top - 0.5), (0.16, 0.14, 0.45), C["traffic light"], housing)

    # --- vehicles ------------------------------------------------------------
    def wheels(self, x, y, yaw, half_len, half_w, radius, class_name, width=0.11) -> None:
        rubber = self.m.plain((0.08, 0.08, 0.08))
        c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        for along in (-0.68 * half_len, 0.68 * half_len):
            for across in (-half_w + width, half_w - width):
                wx, wy = x + c * across - s * along, y + s * across + c * along
                self.b.cylinder(
                    (wx, wy, radius), radius, width, C[class_name], rubber, yaw_deg=yaw, roll_deg=90
                )

    def car(self, x: float, y: float, yaw: float) -> None:
        b, m, rng = self.b, self.m, self.rng
        length, width = draw(rng, (3.8, 4.9)), draw(rng, (1.65, 1.9))
        paint = m.choice(CAR_COLORS)
        body_mat = m.plain(paint)
        clear, body_h = 0.28, draw(rng, (0.6, 0.8))
        b.box(
            (x, y, clear + body_h / 2),
            (width / 2, length / 2, body_h / 2),
            C["car"],
            body_mat,
            yaw_deg=yaw,
        )
        cabin_len, cabin_h = length * draw(rng, (0.45, 0.62)), draw(rng, (0.45, 0.6))
        shift = draw(rng, (-0.15, 0.05)) * length
        c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        b.box(
            (x - s * shift, y + c * shift, clear + body_h + cabin_h / 2),
            (width * 0.43, cabin_len / 2, cabin_h / 2),
            C["car"],
            m.textured("car_cabin", paint, jitter=False, variant=0),
            yaw_deg=yaw,
        )
        self.wheels(x, y, yaw, length / 2, width / 2, 0.32, "car")

    def big_vehicle(self, kind: str, x: float, y: float, yaw: float) -> None:
        b, m, rng = self.b, self.m, self.rng
        color = m.choice(((0.9, 0.9, 0.9), (0.8, 0.15, 0.1), (0.2, 0.35, 0.7), (0.9, 0.75, 0.2)))
        c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        if kind == "truck":
            cargo_len, width, cab_len = draw(rng, (5.0, 8.0)), 2.45, 2.0

            def at(along: float) -> tuple[float, float]:
                return x - s * along, y + c * along

            b.box(
                (*at(-cab_len / 2), 2.1),
                (width / 2, cargo_len / 2, 1.5),
                C["truck"],
                m.textured(m.choice(("metal", "concrete")), (0.95, 0.95, 0.95)),
                yaw_deg=yaw,
            )
            b.box(
                (*at(cargo_len / 2 + 0.1), 1.45),
                (width * 0.47, cab_len / 2, 0.95),
                C["truck"],
                m.textured("car_cabin", color, jitter=False),
                yaw_deg=yaw,
            )
            self.wheels(x, y, yaw, (cargo_len + cab_len) / 2, width / 2, 0.5, "truck", 0.15)
        elif kind == "bus":
            length, width, height = draw(rng, (10.0, 13.0)), 2.5, 3.0
            b.box(
                (x, y, 0.35 + height / 2),
                (width / 2, length / 2, height / 2),
                C["bus"],
                m.textured("bus_side", color, tile_m=(draw(rng, (2.5, 4.0)), height)),
                yaw_deg=yaw,
            )
            self.wheels(x, y, yaw, length / 2, width / 2, 0.5, "bus", 0.15)
        else:  # a tram
            length, width, height = draw(rng, (18.0, 30.0)), 2.6, 3.2
            b.box(
                (x, y, 0.35 + height / 2),
                (width / 2, length / 2, height / 2),
                C["train"],
                m.textured("bus_side", color, tile_m=(draw(rng, (2.0, 3.0)), height)),
                yaw_deg=yaw,
            )
            b.box(
                (x, y, 0.35 + height + 0.3),
                (0.05, 0.6, 0.3),
                C["train"],
                m.plain((0.2,) * 3),
                yaw_deg=yaw,
            )
            rail = m.plain((0.55, 0.55, 0.55))
            for across in (-0.72, 0.72):
                b.box(
                    (x + c * across, y + s * across, 0.01),
                    (0.04, length / 2 + 20, 0.02),
                    C["road"],
                    rail,
                    yaw_deg=yaw,
                )

    def vehicles(self) -> None:
        rng, cfg = self.rng, self.config
        lane_w = 2 * self.road_half / self.lanes
        for _ in range(draw_count(rng, cfg, "parked_car")):
            side = int(rng.integers(0, 2))
            x = self.side_x(side, self.road_half - 1.1)
            yaw = (0.0 if rng.random() < 0.7 else 180.0) + draw(rng, (-4.0, 4.0))
            self.car(x, draw(rng, (4.0, 70.0)), yaw)
        for _ in range(draw_count(rng, cfg, "moving_car")):
            lane = int(rng.integers(0, self.lanes))
            x = -self.road_half + (lane + 0.5) * lane_w
            yaw = (180.0 if x < 0 else 0.0) + draw(rng, (-3.0, 3.0))
            self.car(x, draw(rng, (7.0, 60.0)), yaw)
        for kind in ("truck", "bus", "train"):
            for _ in range(draw_count(rng, cfg, kind)):
                if kind == "train" and rng.random() < 0.5:  # crossing the street ahead
                    self.big_vehicle(kind, draw(rng, (-8.0, 8.0)), draw(rng, (18.0, 45.0)), 90.0)
                    continue
                lane = int(rng.integers(0, self.lanes))
                x = -self.road_half + (lane + 0.5) * lane_w
                yaw = (180.0 if x < 0 else 0.0) + draw(rng, (-2.0, 2.0))
                self.big_vehicle(kind, x, draw(rng, (10.0, 60.0)), yaw)

    # --- people --------------------------------------------------------------
    def person(
        self, x: float, y: float, yaw: float, class_name: str = "person", seated: float = 0.0
    ) -> None:
        """A pedestrian; ``seated`` > 0 puts a rider's hips at that height."""
        b, m, rng = self.b, self.m, self.rng
        scale = draw(rng, (0.85, 1.1))
        cls = C[class_name]
        pants = m.plain(m.choice(CLOTH_COLORS))
        shirt = m.plain(m.choice(CLOTH_COLORS))
        skin = m.plain(m.choice(SKIN_COLORS))
        c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        hip = seated if seated else 0.9 * scale
        for across in (-0.1, 0.1):
            lx, ly = x + c * across * scale, y + s * across * scale
            if seated:
                b.box(
                    (lx - s * 0.2, ly + c * 0.2, hip - 0.25),
                    (0.07, 0.07, 0.32),
                    cls,
                    pants,
                    yaw_deg=yaw,
                    pitch_deg=-25,
                )
            else:
                stride = draw(rng, (-12.0, 12.0))
                b.box(
                    (lx, ly, hip / 2),
                    (0.075 * scale, 0.08 * scale, hip / 2),
                    cls,
                    pants,
                    yaw_deg=yaw,
                    pitch_deg=stride,
                )
        torso = 0.6 * scale
        lean = 20.0 if seated else 0.0
        b.box(
            (x, y, hip + torso / 2),
            (0.2 * scale, 0.12 * scale, torso / 2),
            cls,
            shirt,
            yaw_deg=yaw,
            pitch_deg=-lean,
        )
        for across in (-0.26, 0.26):
            b.box(
                (x + c * across * scale, y + s * across * scale, hip + torso * 0.55),
                (0.05 * scale, 0.06 * scale, 0.3 * scale),
                cls,
                shirt,
                yaw_deg=yaw,
                pitch_deg=-lean - draw(rng, (-15.0, 15.0)),
            )
        b.sphere(
            (x, y, hip + torso + 0.12 * scale),
            (0.1 * scale, 0.11 * scale, 0.125 * scale),
            cls,
            skin,
        )

    def two_wheeler(self, x: float, y: float, yaw: float, motor: bool, rider: bool) -> None:
        b, m, rng = self.b, self.m, self.rng
        cls = C["motorcycle" if motor else "bicycle"]
        c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        radius = 0.32 if motor else 0.34
        half_len = 0.75 if motor else 0.55
        tire = m.plain((0.08, 0.08, 0.08))
        for along in (-half_len, half_len):
            b.cylinder(
                (x - s * along, y + c * along, radius),
                radius,
                0.05 if motor else 0.02,
                cls,
                tire,
                yaw_deg=yaw,
                roll_deg=90,
            )
        frame = m.plain(m.choice(CAR_COLORS if motor else CLOTH_COLORS))
        if motor:
            b.box((x, y, 0.65), (0.18, half_len * 0.8, 0.22), cls, frame, yaw_deg=yaw)
        else:
            b.box(
                (x, y, 0.55), (0.02, half_len * 0.85, 0.02), cls, frame, yaw_deg=yaw, pitch_deg=-8
            )
            b.box((x + s * 0.1, y - c * 0.1, 0.62), (0.02, 0.02, 0.3), cls, frame, yaw_deg=yaw)
        b.box(
            (x - s * half_len * 0.9, y + c * half_len * 0.9, 1.0 if motor else 0.95),
            (0.3, 0.02, 0.02),
            cls,
            frame,
            yaw_deg=yaw,
        )
        if rider:
            self.person(x + s * 0.1, y - c * 0.1, yaw, "rider", seated=0.95 if motor else 0.9)
        del rng

    def people(self) -> None:
        rng, cfg = self.rng, self.config
        for _ in range(draw_count(rng, cfg, "person")):
            side = int(rng.integers(0, 2))
            y = draw(rng, (3.0, 40.0))
            if rng.random() < 0.15:  # crossing the road
                self.person(
                    draw(rng, (-self.road_half, self.road_half)),
                    y,
                    90.0 * (1 if rng.random() < 0.5 else -1),
                )
                continue
            yaw = (0.0 if rng.random() < 0.5 else 180.0) + draw(rng, (-25.0, 25.0))
            self.person(self.sidewalk_x(side, draw(rng, (0.2, 0.85))), y, yaw)
        lane_w = 2 * self.road_half / self.lanes
        for kind, motor in (("cyclist", False), ("motorcyclist", True)):
            for _ in range(draw_count(rng, cfg, kind)):
                side = int(rng.integers(0, 2))
                x = self.side_x(side, self.road_half - (0.8 if not motor else lane_w / 2))
                yaw = (0.0 if side == 1 else 180.0) + draw(rng, (-4.0, 4.0))
                self.two_wheeler(x, draw(rng, (5.0, 35.0)), yaw, motor, rider=True)
        for kind, motor in (("parked_bicycle", False), ("parked_motorcycle", True)):
            for _ in range(draw_count(rng, cfg, kind)):
                side = int(rng.integers(0, 2))
                x = (
                    self.sidewalk_x(side, draw(rng, (0.1, 0.9)))
                    if not motor
                    else self.side_x(side, self.road_half - 0.6)
                )
                self.two_wheeler(
                    x, draw(rng, (4.0, 35.0)), draw(rng, (-30.0, 30.0)), motor, rider=False
                )

    def clutter(self) -> None:
        """Distractors with no Cityscapes class (bins, boxes, bollards): ignore label."""
        b, m, rng = self.b, self.m, self.rng
        for _ in range(draw_count(rng, self.config, "clutter")):
            side, y = int(rng.integers(0, 2)), draw(rng, (3.0, 40.0))
            x = self.sidewalk_x(side, draw(rng, (0.1, 0.9)))
            color = m.choice(CAR_COLORS + CLOTH_COLORS)
            if rng.random() < 0.5:
                h, r = draw(rng, (0.5, 1.1)), draw(rng, (0.15, 0.35))
                b.cylinder(
                    (x, y, h / 2), r, h / 2, IGNORE_LABEL, m.textured("metal", color, jitter=False)
                )
            else:
                half = rng.uniform(0.15, 0.5, 3)
                b.box(
                    (x, y, half[2]),
                    half,
                    IGNORE_LABEL,
                    m.textured("concrete", color, jitter=False),
                    yaw_deg=draw(rng, (0.0, 90.0)),
                )

    def camera(self) -> Camera:
        rng, cfg = self.rng, self.config
        lane_w = 2 * self.road_half / self.lanes
        lane = int(rng.integers(self.lanes // 2, self.lanes))  # drive on the right
        x = -self.road_half + (lane + 0.5) * lane_w + draw(rng, (-0.4, 0.4))
        return Camera(
            eye=(x, 0.0, draw(rng, cfg.camera_height_m)),
            yaw_deg=draw(rng, cfg.camera_yaw_deg),
            pitch_deg=draw(rng, cfg.camera_pitch_deg),
            fov_deg=draw(rng, cfg.fov_deg),
            near_m=cfg.near_m,
            far_m=cfg.far_m,
        )

    def sky(self):
        rng = self.rng
        overcast = rng.random() < 0.3
        if overcast:
            gray = draw(rng, (0.6, 0.85))
            return ((gray, gray, gray + 0.03), (gray + 0.1,) * 3, draw(rng, (0.0, 0.3)))
        zenith = (draw(rng, (0.2, 0.45)), draw(rng, (0.4, 0.65)), draw(rng, (0.75, 0.95)))
        horizon = (draw(rng, (0.7, 0.9)), draw(rng, (0.8, 0.92)), draw(rng, (0.88, 1.0)))
        return (zenith, horizon, draw(rng, (0.0, 0.7)))


def street_layout(rng: np.random.Generator, config: SceneConfig) -> SceneLayout:
    """Draws one street frame's layout.

    Args:
        rng: The frame's generator (see :mod:`.seeds`).
        config: A street :class:`SceneConfig`.

    Returns:
        The layout: primitives, camera, light and sky.
    """
    street = _Street(rng, config)
    camera = street.camera()
    street.ground()
    street.buildings()
    street.street_furniture()
    street.vehicles()
    street.people()
    street.clutter()
    return SceneLayout(
        primitives=street.b.primitives(),
        camera=camera,
        lighting=draw_lighting(rng, config),
        background_class=C["sky"],
        sky=street.sky(),
    )
