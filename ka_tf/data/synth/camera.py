"""Camera geometry: depth-buffer to metric depth, intrinsics, normals from depth.

Conventions:
    * Metric depth is the distance along the optical axis (z-depth), in metres, as
      in NYUv2 and Cityscapes; 0 marks invalid pixels (sky, background).
    * Normals are unit vectors in the OpenCV camera frame — x right, y down,
      z forward — oriented towards the camera (``n . ray < 0``); 0 where invalid.
"""

from __future__ import annotations

import math

import numpy as np


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


def _pick_difference(points, valid, ids, axis):
    """Per pixel, the neighbour difference along ``axis`` on the same surface.

    Uses the forward or backward neighbour, whichever is valid, belongs to the same
    mesh group and has the smaller depth change (so that depth edges between two
    objects, or two faces of one mesh, do not blur the normal).
    """
    n = points.shape[axis]

    def shift(array, offset):
        index = np.clip(np.arange(n) + offset, 0, n - 1)
        return np.take(array, index, axis=axis)

    forward = shift(points, 1) - points
    backward = points - shift(points, -1)
    inside_f = np.ones(valid.shape, bool)
    inside_b = np.ones(valid.shape, bool)
    edge = [slice(None)] * valid.ndim
    edge[axis] = n - 1
    inside_f[tuple(edge)] = False
    edge[axis] = 0
    inside_b[tuple(edge)] = False
    ok_f = inside_f & valid & shift(valid, 1) & (shift(ids, 1) == ids)
    ok_b = inside_b & valid & shift(valid, -1) & (shift(ids, -1) == ids)
    use_f = ok_f & (~ok_b | (np.abs(forward[..., 2]) <= np.abs(backward[..., 2])))
    diff = np.where(use_f[..., None], forward, backward)
    return diff, ok_f | ok_b


def normals_from_depth(depth: np.ndarray, ids: np.ndarray, fov_deg: float) -> np.ndarray:
    """Unit surface normals [H, W, 3] (camera frame, towards the camera), 0 where invalid.

    Args:
        depth: Metric z-depth [H, W], 0 = invalid.
        ids: Surface ids [H, W] (e.g. the renderer's object mask); neighbours with
            another id are never used.
        fov_deg: Vertical field of view.

    Returns:
        float32 normals; a pixel is invalid where depth is 0 or it has no usable
        neighbour in x or in y (e.g. one-pixel-wide objects).
    """
    valid = depth > 0
    points = backproject(depth, fov_deg)
    dx, ok_x = _pick_difference(points, valid, ids, axis=1)
    dy, ok_y = _pick_difference(points, valid, ids, axis=0)
    normals = np.cross(dy, dx)
    length = np.linalg.norm(normals, axis=-1)
    ok = valid & ok_x & ok_y & (length > 1e-12)
    normals = normals / np.where(ok, length, 1.0)[..., None]
    facing = np.sum(normals * points, axis=-1) > 0
    normals[facing] *= -1.0
    normals[~ok] = 0.0
    normals = normals.astype(np.float32)
    # Re-normalise in float32 so that stored vectors have unit length to float32 precision.
    length32 = np.linalg.norm(normals, axis=-1, keepdims=True)
    return np.where(length32 > 0, normals / np.maximum(length32, 1e-12), 0.0).astype(np.float32)


def view_basis(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Rows: the camera's right, down and forward axes in world coordinates (z up)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array(
        [-math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), math.sin(pitch)]
    )
    right = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward])
