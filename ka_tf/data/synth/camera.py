"""Camera geometry: depth-buffer to metric depth, intrinsics, normals from depth.

Conventions:
    * Metric depth is the distance along the optical axis (z-depth), in metres, as
      in NYUv2 and Cityscapes; 0 marks invalid pixels (sky, background).
    * Normals are unit vectors in the OpenCV camera frame — x right, y down,
      z forward — oriented towards the camera (``n . ray < 0``); 0 where invalid.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ka_tf.data.synth.primitives import Camera

# A triangle counts as hidden (see hidden_triangles) only by this margin: metres, plus
# this fraction of its distance to the camera.
HIDDEN_MARGIN_M = 1e-3
HIDDEN_MARGIN_PER_M = 1e-4


def metric_depth(buffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """Converts an OpenGL depth buffer in [0, 1] to z-depth in metres.

    ``depth = far * near / (far - (far - near) * d)``; pixels at the far plane
    (``d >= 1``, nothing drawn) become 0.
    """
    d = np.asarray(buffer, dtype=np.float64)
    depth = far * near / (far - (far - near) * d)
    depth[d >= 1.0] = 0.0
    return depth


def focal_length_px(height: int, fov_deg: float) -> float:
    """Focal length in pixels of a camera with vertical field of view ``fov_deg``."""
    return 0.5 * height / math.tan(math.radians(fov_deg) / 2)


def intrinsics(height: int, width: int, fov_deg: float) -> tuple[float, float, float]:
    """(focal, cx, cy) in pixels of pybullet TinyRenderer images, 0-indexed pixels.

    Measured against rendered planes of known pose (see tests): pixel ``(u, v)``
    sees the ray through ``((u - cx) / f, (v - cy) / f, 1)`` with ``cx = W / 2`` and
    ``cy = H / 2 - 1`` — the renderer samples at integer pixel positions and its
    rows are shifted by one.
    """
    return focal_length_px(height, fov_deg), width / 2, height / 2 - 1.0


def backproject(depth: np.ndarray, fov_deg: float) -> np.ndarray:
    """3-D points [H, W, 3] in the camera frame of every pixel (see :func:`intrinsics`)."""
    height, width = depth.shape
    focal, cx, cy = intrinsics(height, width, fov_deg)
    u = (np.arange(width) - cx) / focal
    v = (np.arange(height) - cy) / focal
    return np.stack(
        [u[None, :] * depth, v[:, None] * depth, depth],
        axis=-1,
    )


def _along(array: np.ndarray, axis: int, start: int | None, stop: int | None) -> np.ndarray:
    """The view ``array[..., start:stop, ...]`` (the slice on ``axis``)."""
    index = [slice(None)] * array.ndim
    index[axis] = slice(start, stop)
    return array[tuple(index)]


def _pick_difference(
    planes: tuple[np.ndarray, ...], valid: np.ndarray, ids: np.ndarray, axis: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Per pixel, the neighbour difference along ``axis`` on the same surface.

    Uses the forward or backward neighbour, whichever is valid, belongs to the same
    mesh group and has the smaller depth change (so that depth edges between two
    objects, or two faces of one mesh, do not blur the normal).

    Args:
        planes: The x, y and z coordinates [H, W] of every pixel's 3-D point.
        valid: Where depth is valid [H, W].
        ids: Surface ids [H, W].
        axis: 1 (along rows: x) or 0 (along columns: y).

    Returns:
        The difference's x, y and z planes, and where a neighbour was usable.
    """
    shape = list(valid.shape)
    shape[axis] += 1
    # Padded by one on both sides: pair[i + 1] says pixels i and i + 1 are neighbours on
    # one valid surface, step[i + 1] is their difference (the padding stays 0 / False).
    pair = np.zeros(shape, dtype=bool)
    inner = _along(pair, axis, 1, -1)
    np.equal(_along(ids, axis, 1, None), _along(ids, axis, 0, -1), out=inner)
    inner &= _along(valid, axis, 1, None)
    inner &= _along(valid, axis, 0, -1)
    ok_f, ok_b = _along(pair, axis, 1, None), _along(pair, axis, 0, -1)
    steps = []
    for plane in planes:
        step = np.zeros(shape)
        np.subtract(
            _along(plane, axis, 1, None), _along(plane, axis, 0, -1), out=_along(step, axis, 1, -1)
        )
        steps.append(step)
    forward_z, backward_z = _along(steps[2], axis, 1, None), _along(steps[2], axis, 0, -1)
    use_f = ok_f & (~ok_b | (np.abs(forward_z) <= np.abs(backward_z)))
    diff = [np.where(use_f, _along(s, axis, 1, None), _along(s, axis, 0, -1)) for s in steps]
    return diff, ok_f | ok_b


def normals_from_depth(depth: np.ndarray, ids: np.ndarray, fov_deg: float) -> np.ndarray:
    """Unit surface normals [H, W, 3] (camera frame, towards the camera), 0 where invalid.

    The normal is the cross product of the vertical and horizontal neighbour
    differences of the back-projected points (see :func:`backproject`), computed
    per coordinate plane in one batched pass over the image.

    Args:
        depth: Metric z-depth [H, W], 0 = invalid.
        ids: Surface ids [H, W] (e.g. the renderer's object mask); neighbours with
            another id are never used.
        fov_deg: Vertical field of view.

    Returns:
        float32 normals; a pixel is invalid where depth is 0 or it has no usable
        neighbour in x or in y (e.g. one-pixel-wide objects).
    """
    depth = np.asarray(depth, dtype=np.float64)
    height, width = depth.shape
    valid = depth > 0
    focal, cx, cy = intrinsics(height, width, fov_deg)
    u = (np.arange(width) - cx) / focal
    v = (np.arange(height) - cy) / focal
    points = (u[None, :] * depth, v[:, None] * depth, depth)
    (hx, hy, hz), ok_x = _pick_difference(points, valid, ids, axis=1)
    (vx, vy, vz), ok_y = _pick_difference(points, valid, ids, axis=0)
    # The cross product (vertical difference) x (horizontal difference).
    normals = (vy * hz - vz * hy, vz * hx - vx * hz, vx * hy - vy * hx)
    length = np.sqrt((normals[0] * normals[0] + normals[1] * normals[1]) + normals[2] * normals[2])
    ok = valid & ok_x & ok_y & (length > 1e-12)
    scale = np.where(ok, length, 1.0)
    for plane in normals:
        plane /= scale
    facing = ((normals[0] * points[0] + normals[1] * points[1]) + normals[2] * points[2]) > 0
    out = np.empty((3, height, width), dtype=np.float32)
    for plane, target in zip(normals, out, strict=True):
        np.negative(plane, out=plane, where=facing)
        plane[~ok] = 0.0
        target[...] = plane
    # Re-normalise in float32 so that stored vectors have unit length to float32 precision.
    length32 = np.sqrt((out[0] * out[0] + out[1] * out[1]) + out[2] * out[2])
    unit = np.where(length32 > 0, out / np.maximum(length32, 1e-12), 0.0).astype(np.float32)
    return np.ascontiguousarray(unit.transpose(1, 2, 0))


def hidden_triangles(
    vertices: np.ndarray, triangles: np.ndarray, camera: Camera, aspect: float
) -> np.ndarray:
    """Which triangles pybullet's TinyRenderer certainly draws no pixel of [T] (bool).

    TinyRenderer (on float32 vertices) skips a triangle that faces away from the
    camera (its back-face test), that lies wholly behind the camera, or wholly beyond
    one side of the view frustum (its clipped screen bounding box is then empty).
    A triangle is reported only when it passes such a test by a margin
    (:data:`HIDDEN_MARGIN_M` plus :data:`HIDDEN_MARGIN_PER_M` of its distance) far
    above the float32 rounding of pybullet's own matrices, or when two of its
    float32 vertices coincide (zero area: never drawn). Leaving these triangles out
    of the meshes therefore changes no pixel, depth or mask value of the render.

    Args:
        vertices: World coordinates [V, 3].
        triangles: Vertex rows [T, 3], counter-clockwise seen from the front.
        camera: The frame's camera.
        aspect: Image width / height.

    Returns:
        bool [T]: True for the triangles that can be left out.
    """
    px, py, pz = vertices.astype(np.float32).astype(np.float64).T  # what TinyRenderer sees
    eye_x, eye_y, eye_z = (float(v) for v in camera.eye)
    ox, oy, oz = px - eye_x, py - eye_y, pz - eye_z
    margin = HIDDEN_MARGIN_M + HIDDEN_MARGIN_PER_M * np.sqrt(ox * ox + oy * oy + oz * oz)
    (rx, ry, rz), (dx, dy, dz), (fx, fy, fz) = view_basis(camera.yaw_deg, camera.pitch_deg)
    x, y = ox * rx + oy * ry + oz * rz, ox * dx + oy * dy + oz * dz
    depth = ox * fx + oy * fy + oz * fz
    # Bit k of a vertex's outcode: beyond the k-th clipping plane (behind the camera,
    # right, left, below, above); a triangle whose three vertices share a bit is hidden.
    outcode = (depth < -margin).astype(np.uint8)
    tan_y = math.tan(math.radians(camera.fov_deg) / 2)
    planes = ((x, tan_y * aspect), (-x, tan_y * aspect), (y, tan_y), (-y, tan_y))
    for bit, (across, tan) in enumerate(planes, start=1):
        beyond = across - depth * tan > margin * math.sqrt(1.0 + tan * tan)
        outcode |= beyond.astype(np.uint8) << bit
    first, second, third = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    codes = outcode[first] & outcode[second] & outcode[third]
    # TinyRenderer's back-face test: (v0 - eye) . ((v1 - v0) x (v2 - v0)) >= 0.
    ax, ay, az = px[second] - px[first], py[second] - py[first], pz[second] - pz[first]
    bx, by, bz = px[third] - px[first], py[third] - py[first], pz[third] - pz[first]
    nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    facing = ox[first] * nx + oy[first] * ny + oz[first] * nz
    away = facing > margin[first] * np.sqrt(nx * nx + ny * ny + nz * nz)
    # Two equal float32 vertices: a zero normal, which the back-face test always culls.
    same = ((ax == 0) & (ay == 0) & (az == 0)) | ((bx == 0) & (by == 0) & (bz == 0))
    same |= (px[second] == px[third]) & (py[second] == py[third]) & (pz[second] == pz[third])
    return (codes != 0) | away | same


def view_basis(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Rows: the camera's right, down and forward axes in world coordinates (z up)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array(
        [-math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), math.sin(pitch)]
    )
    right = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward])
