"""Triangle meshes (vertices, normals, texture coordinates) of the primitives.

Each primitive kind has a unit template computed once; a primitive's mesh is the
template scaled, rotated and moved, with texture coordinates in tiles (so that a
texture repeats every ``Material.tile_m`` metres). Triangles wind
counter-clockwise seen from outside.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np

from ka_tf.data.synth.primitives import BOX, CYLINDER, SPHERE, Primitive

CYLINDER_SEGMENTS = 10
SPHERE_RINGS = 6
SPHERE_SEGMENTS = 10


@dataclasses.dataclass(frozen=True)
class Template:
    """A unit mesh. ``uv_unit`` in [0, 1] is scaled per axis by ``uv_length(half_size)``."""

    vertices: np.ndarray  # [V, 3] in the unit shape (box [-1, 1]^3, ...)
    normals: np.ndarray  # [V, 3] for the unit shape
    uv_unit: np.ndarray  # [V, 2]
    indices: np.ndarray  # [T * 3]


@dataclasses.dataclass
class Mesh:
    """A mesh in world coordinates."""

    vertices: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    indices: np.ndarray


@functools.cache
def _box_template() -> Template:
    # (normal, u tangent, v tangent), with u x v = normal.
    faces = [
        ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
        ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
        ((0, 1, 0), (-1, 0, 0), (0, 0, 1)),
        ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
        ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
        ((0, 0, -1), (-1, 0, 0), (0, 1, 0)),
    ]
    vertices, normals, uvs, indices = [], [], [], []
    for normal, u_axis, v_axis in faces:
        n, u, v = (np.array(a, dtype=np.float64) for a in (normal, u_axis, v_axis))
        base = len(vertices)
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            vertices.append(n + su * u + sv * v)
            normals.append(n)
            uvs.append(((su + 1) / 2, (sv + 1) / 2))
        indices += [base, base + 1, base + 2, base, base + 2, base + 3]
    return Template(np.array(vertices), np.array(normals), np.array(uvs), np.array(indices))


@functools.cache
def _cylinder_template() -> Template:
    n = CYLINDER_SEGMENTS
    angles = np.linspace(0.0, 2 * math.pi, n + 1)
    vertices, normals, uvs, indices = [], [], [], []
    for i, angle in enumerate(angles):  # side, with a seam column for texture wrap
        ring = (math.cos(angle), math.sin(angle))
        for z in (-1.0, 1.0):
            vertices.append((ring[0], ring[1], z))
            normals.append((ring[0], ring[1], 0.0))
            uvs.append((i / n, (z + 1) / 2))
    for i in range(n):
        a, b, c, d = 2 * i, 2 * i + 2, 2 * i + 3, 2 * i + 1
        indices += [a, b, c, a, c, d]
    for z in (-1.0, 1.0):  # caps
        center = len(vertices)
        vertices.append((0.0, 0.0, z))
        normals.append((0.0, 0.0, z))
        uvs.append((0.5, 0.5))
        for angle in angles[:-1]:
            vertices.append((math.cos(angle), math.sin(angle), z))
            normals.append((0.0, 0.0, z))
            uvs.append(((math.cos(angle) + 1) / 2, (math.sin(angle) + 1) / 2))
        for i in range(n):
            a, b = center + 1 + i, center + 1 + (i + 1) % n
            indices += [center, a, b] if z > 0 else [center, b, a]
    return Template(np.array(vertices), np.array(normals), np.array(uvs), np.array(indices))


@functools.cache
def _sphere_template() -> Template:
    rings, segments = SPHERE_RINGS, SPHERE_SEGMENTS
    vertices, uvs = [], []
    for r in range(rings + 1):
        theta = math.pi * r / rings  # 0 at the top pole
        for s in range(segments + 1):
            phi = 2 * math.pi * s / segments
            vertices.append(
                (math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta))
            )
            uvs.append((s / segments, 1 - r / rings))
    indices = []
    row = segments + 1
    for r in range(rings):
        for s in range(segments):
            a, b = r * row + s, (r + 1) * row + s
            indices += [a, b, b + 1, a, b + 1, a + 1]
    vertices = np.array(vertices)
    return Template(vertices, vertices.copy(), np.array(uvs), np.array(indices))


_TEMPLATES = {BOX: _box_template, CYLINDER: _cylinder_template, SPHERE: _sphere_template}


def _uv_lengths(kind: str, half: np.ndarray, template: Template) -> np.ndarray:
    """Physical length (metres) of one unit of u and v per primitive and vertex, [N, V, 2].

    Args:
        kind: The primitive kind.
        half: Half sizes [N, 3].
        template: The kind's template.
    """
    count, num_vertices = len(half), len(template.vertices)
    if kind == BOX:
        # Each face spans two of the three axes; find them from the vertex normal.
        normal_axis = np.argmax(np.abs(template.normals), axis=1)
        u_axis = np.where(normal_axis == 0, 1, 0)
        v_axis = np.where(normal_axis == 2, 1, 2)
        return np.stack([2 * half[:, u_axis], 2 * half[:, v_axis]], axis=-1)
    if kind == CYLINDER:
        radius = 0.5 * (half[:, 0] + half[:, 1])
        side = np.abs(template.normals[:, 2]) < 0.5
        lengths = np.empty((count, num_vertices, 2))
        lengths[:, side, 0] = (2 * math.pi * radius)[:, None]
        lengths[:, side, 1] = (2 * half[:, 2])[:, None]
        lengths[:, ~side, :] = (2 * radius)[:, None, None]
        return lengths
    radius = np.mean(half, axis=1)
    lengths = np.empty((count, num_vertices, 2))
    lengths[..., 0] = (2 * math.pi * radius)[:, None]
    lengths[..., 1] = (math.pi * radius)[:, None]
    return lengths


def _kind_mesh(kind: str, primitives: Sequence[Primitive]) -> Mesh:
    """One mesh for primitives of one kind and one material (vectorised)."""
    template = _TEMPLATES[kind]()
    half = np.array([p.half_size for p in primitives], dtype=np.float64)  # [N, 3]
    rot = np.array([p.rotation for p in primitives], dtype=np.float64)  # [N, 3, 3]
    center = np.array([p.center for p in primitives], dtype=np.float64)  # [N, 3]
    local = template.vertices[None] * half[:, None, :]  # [N, V, 3]
    vertices = np.einsum("nij,nvj->nvi", rot, local) + center[:, None, :]
    normals = np.einsum("nij,nvj->nvi", rot, template.normals[None] / half[:, None, :])
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    tile = primitives[0].material.tile_m
    if tile is None:
        uvs = np.broadcast_to(template.uv_unit, (len(primitives), *template.uv_unit.shape))
    else:
        uvs = template.uv_unit[None] * _uv_lengths(kind, half, template) / np.asarray(tile)
    num_vertices = len(template.vertices)
    offsets = (np.arange(len(primitives)) * num_vertices)[:, None]
    return Mesh(
        vertices=vertices.reshape(-1, 3),
        normals=normals.reshape(-1, 3),
        uvs=np.asarray(uvs).reshape(-1, 2),
        indices=(template.indices[None, :] + offsets).reshape(-1),
    )


def group_mesh(primitives: Sequence[Primitive]) -> Mesh:
    """One world-space mesh for primitives that share a material (texture tiles in metres)."""
    return grouped_meshes([list(primitives)])[0]


@dataclasses.dataclass
class MeshBatch:
    """The meshes of several groups of primitives, stored back to back.

    Group ``g`` owns vertices ``vertex_bounds[g]:vertex_bounds[g + 1]`` and indices
    ``index_bounds[g]:index_bounds[g + 1]``; its indices count from its own first
    vertex (each group is a mesh of its own).
    """

    vertices: np.ndarray  # [V, 3]
    normals: np.ndarray  # [V, 3]
    uvs: np.ndarray  # [V, 2]
    indices: np.ndarray  # [I]
    vertex_bounds: list[int]  # [G + 1]
    index_bounds: list[int]  # [G + 1]

    def mesh(self, group: int) -> Mesh:
        """The mesh of one group."""
        lo, hi = self.vertex_bounds[group], self.vertex_bounds[group + 1]
        start, stop = self.index_bounds[group], self.index_bounds[group + 1]
        return Mesh(
            self.vertices[lo:hi], self.normals[lo:hi], self.uvs[lo:hi], self.indices[start:stop]
        )

    def _triangle_groups(self) -> np.ndarray:
        """The group of every triangle [T]."""
        triangles_per_group = np.diff(self.index_bounds) // 3
        return np.repeat(np.arange(len(triangles_per_group)), triangles_per_group)

    def triangles(self) -> np.ndarray:
        """Every triangle's three rows in :attr:`vertices` (not group-local) [T, 3]."""
        first_vertex = np.asarray(self.vertex_bounds)[self._triangle_groups()]
        return self.indices.reshape(-1, 3) + first_vertex[:, None]

    def without_triangles(self, drop: np.ndarray) -> MeshBatch:
        """The batch less the triangles where ``drop`` [T] is True.

        Vertices that no remaining triangle uses go too; the others keep their values
        and order, and every remaining triangle its vertices and its place, so a
        renderer draws the remaining triangles exactly as before. Groups may end up
        empty (no vertex, no index).
        """
        keep = ~drop
        kept = self.triangles()[keep]  # [K, 3] rows in the old vertices
        used = np.zeros(len(self.vertices), dtype=bool)
        used[kept] = True
        used_before = np.concatenate([[0], np.cumsum(used)])  # new row of each old row
        vertex_bounds = used_before[self.vertex_bounds]
        groups = self._triangle_groups()[keep]
        indices = used_before[kept] - vertex_bounds[groups][:, None]
        kept_per_group = np.bincount(groups, minlength=len(self.vertex_bounds) - 1)
        return MeshBatch(
            self.vertices[used],
            self.normals[used],
            self.uvs[used],
            indices.ravel(),
            vertex_bounds.tolist(),
            np.concatenate([[0], np.cumsum(3 * kept_per_group)]).tolist(),
        )


def batched_meshes(groups: Sequence[Sequence[Primitive]]) -> MeshBatch:
    """The meshes of groups of primitives, computed in one vectorised pass per kind.

    Building every primitive of a frame at once (rather than group by group) keeps
    the numpy call count per frame small, which matters at 100+ primitives; the
    vertices of each kind are then scattered to their place in the frame's arrays.

    Args:
        groups: Primitives grouped by material; every group must be non-empty and
            each group's primitives must share one material.

    Returns:
        The groups' meshes, back to back in the order of ``groups``.
    """
    flat = [primitive for group in groups for primitive in group]
    templates = {kind: make() for kind, make in _TEMPLATES.items()}
    vertex_counts = np.array([len(templates[p.kind].vertices) for p in flat])
    index_counts = np.array([len(templates[p.kind].indices) for p in flat])
    vertex_start = np.concatenate([[0], np.cumsum(vertex_counts)])
    index_start = np.concatenate([[0], np.cumsum(index_counts)])
    group_start = np.concatenate([[0], np.cumsum([len(group) for group in groups])])
    # Each primitive's first vertex, counted from its group's first vertex.
    group_of = np.repeat(np.arange(len(groups)), np.diff(group_start))
    local_start = vertex_start[:-1] - vertex_start[group_start[:-1]][group_of]
    total = int(vertex_start[-1])
    vertices, normals = np.empty((total, 3)), np.empty((total, 3))
    uvs, indices = np.empty((total, 2)), np.empty(int(index_start[-1]), dtype=np.int64)
    by_kind: dict[str, list[int]] = {}
    for index, primitive in enumerate(flat):
        by_kind.setdefault(primitive.kind, []).append(index)
    for kind, members in by_kind.items():
        template = templates[kind]
        mesh = _kind_mesh_tiles(kind, [flat[i] for i in members])
        positions = np.asarray(members)
        rows = (vertex_start[positions][:, None] + np.arange(len(template.vertices))).ravel()
        vertices[rows], normals[rows], uvs[rows] = mesh.vertices, mesh.normals, mesh.uvs
        slots = (index_start[positions][:, None] + np.arange(len(template.indices))).ravel()
        indices[slots] = (template.indices[None, :] + local_start[positions][:, None]).ravel()
    return MeshBatch(
        vertices,
        normals,
        uvs,
        indices,
        vertex_start[group_start].tolist(),
        index_start[group_start].tolist(),
    )


def grouped_meshes(groups: Sequence[Sequence[Primitive]]) -> list[Mesh]:
    """One mesh per group of primitives (see :func:`batched_meshes`), in order."""
    batch = batched_meshes(groups)
    return [batch.mesh(group) for group in range(len(groups))]


def _kind_mesh_tiles(kind: str, primitives: Sequence[Primitive]) -> Mesh:
    """Like :func:`_kind_mesh` for primitives of mixed materials (per-primitive tiles)."""
    template = _TEMPLATES[kind]()
    # Tiling differs per material; compute uvs with each primitive's tile size.
    tile_sizes = [p.material.tile_m for p in primitives]
    tiles = np.array([(0.0, 0.0) if tile is None else tile for tile in tile_sizes])
    stretched = np.array([tile is None for tile in tile_sizes])
    half = stacked([p.half_size for p in primitives], (3,))
    rot = stacked([row for p in primitives for row in p.rotation], (3, 3))
    center = stacked([p.center for p in primitives], (3,))
    local = template.vertices[None] * half[:, None, :]
    vertices = np.einsum("nij,nvj->nvi", rot, local) + center[:, None, :]
    normals = np.einsum("nij,nvj->nvi", rot, template.normals[None] / half[:, None, :])
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    safe_tiles = np.where(stretched[:, None], 1.0, tiles)[:, None, :]
    tiled = template.uv_unit[None] * _uv_lengths(kind, half, template) / safe_tiles
    uvs = np.where(stretched[:, None, None], template.uv_unit[None], tiled)
    return Mesh(
        vertices=vertices.reshape(-1, 3),
        normals=normals.reshape(-1, 3),
        uvs=uvs.reshape(-1, 2),
        indices=np.tile(template.indices, len(primitives)),
    )


def stacked(rows: Sequence[Sequence[float]], shape: tuple[int, ...]) -> np.ndarray:
    """The float64 array [N, *shape] of ``rows``, each a sequence of ``shape[-1]`` floats.

    Equal to ``np.array(rows).reshape(-1, *shape)``, at a third of its cost.
    """
    width = shape[-1]
    flat = np.fromiter(itertools.chain.from_iterable(rows), np.float64, len(rows) * width)
    return flat.reshape(-1, *shape)


def primitive_mesh(primitive: Primitive) -> Mesh:
    """The world-space mesh of one primitive."""
    return _kind_mesh(primitive.kind, [primitive])


def merge_meshes(meshes: Sequence[Mesh]) -> Mesh:
    """Concatenates meshes into one (indices shifted)."""
    if len(meshes) == 1:
        return meshes[0]
    offsets = np.cumsum([0] + [len(mesh.vertices) for mesh in meshes[:-1]])
    return Mesh(
        vertices=np.concatenate([mesh.vertices for mesh in meshes]),
        normals=np.concatenate([mesh.normals for mesh in meshes]),
        uvs=np.concatenate([mesh.uvs for mesh in meshes]),
        indices=np.concatenate(
            [mesh.indices + offset for mesh, offset in zip(meshes, offsets, strict=True)]
        ),
    )
