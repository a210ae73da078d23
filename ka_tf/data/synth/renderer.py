"""Renders a :class:`~.primitives.SceneLayout` with pybullet's CPU TinyRenderer.

One :class:`Renderer` holds one headless pybullet client (``p.DIRECT``). Each
frame starts from an empty world (``resetSimulation``), so a frame depends only on
its layout and size — never on the frames rendered before it — which is what makes
generation deterministic whatever the number of worker processes.

Primitives that share a class and a material are merged into one mesh (fewer
pybullet bodies: rendering 100+ solids costs a few milliseconds); the object
mask then maps each body to its class, and depth gradients within a body give the
surface normals.

Per frame, the meshes of all primitives are computed in one vectorised pass per
primitive kind and handed to pybullet with one ``tolist()`` per array; triangles
that TinyRenderer would skip anyway (facing away, behind the camera, outside the
view; see :func:`~.camera.hidden_triangles`) are left out first, which roughly
halves what pybullet has to convert without changing a pixel. Labels come from
lookup tables over the mask codes, normals from one batched pass over the image.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import numpy as np

from ka_tf.constants import IGNORE_LABEL
from ka_tf.data.synth import camera as camera_lib
from ka_tf.data.synth.meshes import MeshBatch, batched_meshes, stacked
from ka_tf.data.synth.primitives import Material, Primitive, SceneLayout
from ka_tf.data.synth.sky import sky_image
from ka_tf.data.synth.textures import TextureFiles

# pybullet rejects meshes much above ~100k vertices; split merged groups below that.
MAX_MESH_VERTICES = 30000
# pybullet keeps at most 127 links per multibody.
MAX_LINKS = 120
# Start from a fresh pybullet world this often (bounds the memory of old shapes).
RESET_EVERY = 128
_LINK_SHIFT = 24
_BODY_BITS = (1 << _LINK_SHIFT) - 1
# Surface ids per body: background (0), then links + 1 = 0..127 (the code's top byte).
_LINK_SLOTS = 129


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pauses Python's cyclic garbage collector meanwhile (then restores its state).

    A frame allocates ~10^4 small objects (primitives, the lists handed to pybullet,
    which pybullet never releases) and creates no reference cycle: collecting during
    a frame only re-scans them, at ~2 ms a frame (and growing).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Renderer:
    """A headless pybullet renderer of scene layouts.

    Each material group becomes one link of a multibody (one ``createMultiBody``
    call for up to :data:`MAX_LINKS` groups: pybullet's per-body cost dominates
    otherwise). Groups are drawn nearest first, so that the renderer's depth test
    skips most hidden pixels. Textures stay loaded between frames (reloading one
    costs ~0.5 ms); the world is emptied after each frame and reset every
    :data:`RESET_EVERY` frames. None of this changes the image: a frame's pixels
    depend only on its layout and size.

    Args:
        texture_dir: Where texture images are written (a temporary directory if None).

    Example:
        >>> renderer = Renderer()
        >>> frame = renderer.render(layout, height=128, width=256, rng=rng)
        >>> frame["depth"].dtype
        dtype('float32')
    """

    def __init__(self, texture_dir: str | None = None) -> None:
        from ka_tf import extras

        pybullet = extras.require("pybullet", "rendering the synthetic benchmark")
        self._p = pybullet
        self._client = pybullet.connect(pybullet.DIRECT)
        self._textures = TextureFiles(texture_dir)
        self._texture_ids: dict[str, int] = {}
        self._bodies: list[int] = []
        self._frames = 0

    def close(self) -> None:
        """Disconnects the pybullet client."""
        if self._client is not None:
            self._p.disconnect(physicsClientId=self._client)
            self._client = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: pybullet may already be gone
            pass

    def _clear(self) -> None:
        p, client = self._p, self._client
        if self._frames % RESET_EVERY == 0:
            p.resetSimulation(physicsClientId=client)
            self._texture_ids.clear()
        else:
            for body in self._bodies:
                p.removeBody(body, physicsClientId=client)
        self._bodies = []
        self._frames += 1

    def _texture(self, name: str) -> int:
        if name not in self._texture_ids:
            self._texture_ids[name] = self._p.loadTexture(
                self._textures.path(name), physicsClientId=self._client
            )
        return self._texture_ids[name]

    def _build(self, layout: SceneLayout, aspect: float) -> dict[int, int]:
        """Creates the bodies of ``layout``; returns segmentation code -> class id.

        Triangles that the renderer would certainly not draw at this image aspect
        (width / height) are left out (see :func:`~.camera.hidden_triangles`).
        """
        self._clear()
        parts = _mesh_parts(layout)
        batch = batched_meshes([members for _, _, members in parts])
        batch = batch.without_triangles(
            camera_lib.hidden_triangles(batch.vertices, batch.triangles(), layout.camera, aspect)
        )
        return self._bodies_of(self._visual_shapes(parts, batch))

    def _visual_shapes(
        self, parts: list[tuple[int, Material, list[Primitive]]], batch: MeshBatch
    ) -> list[tuple[int, Material, int]]:
        """One pybullet visual shape per non-empty part: (class, material, shape id)."""
        p, client = self._p, self._client
        # One conversion per array for the whole frame (per-group calls dominate otherwise).
        vertices, normals = _rows(batch.vertices), _rows(batch.normals)
        indices = tuple(batch.indices.tolist())
        uvs, uv_bounds = _textured_uvs(batch, [material for _, material, _ in parts])
        vertex_bounds, index_bounds = batch.vertex_bounds, batch.index_bounds
        links: list[tuple[int, Material, int]] = []  # (class, material, visual shape)
        for index, (class_id, material, _) in enumerate(parts):
            lo, hi = vertex_bounds[index], vertex_bounds[index + 1]
            if lo == hi:  # nothing of it can show
                continue
            shape = p.createVisualShape(
                p.GEOM_MESH,
                vertices=vertices[lo:hi],
                indices=indices[index_bounds[index] : index_bounds[index + 1]],
                uvs=uvs[uv_bounds[index] : uv_bounds[index + 1]],
                normals=normals[lo:hi],
                rgbaColor=[*material.color, 1.0],
                physicsClientId=client,
            )
            links.append((class_id, material, shape))
        return links

    def _bodies_of(self, links: list[tuple[int, Material, int]]) -> dict[int, int]:
        """Multibodies of the visual shapes (textured); returns mask code -> class id."""
        p, client = self._p, self._client
        code_class: dict[int, int] = {}
        for start in range(0, len(links), MAX_LINKS + 1):
            chunk = links[start : start + MAX_LINKS + 1]
            n = len(chunk) - 1
            body = p.createMultiBody(
                baseMass=0,
                baseVisualShapeIndex=chunk[0][2],
                linkMasses=[0.0] * n,
                linkCollisionShapeIndices=[-1] * n,
                linkVisualShapeIndices=[shape for _, _, shape in chunk[1:]],
                linkPositions=[[0.0, 0.0, 0.0]] * n,
                linkOrientations=[[0.0, 0.0, 0.0, 1.0]] * n,
                linkInertialFramePositions=[[0.0, 0.0, 0.0]] * n,
                linkInertialFrameOrientations=[[0.0, 0.0, 0.0, 1.0]] * n,
                linkParentIndices=[0] * n,
                linkJointTypes=[p.JOINT_FIXED] * n,
                linkJointAxis=[[0.0, 0.0, 1.0]] * n,
                physicsClientId=client,
            )
            self._bodies.append(body)
            for link, (class_id, material, _) in enumerate(chunk, start=-1):
                if material.texture is not None:
                    p.changeVisualShape(
                        body,
                        link,
                        textureUniqueId=self._texture(material.texture),
                        rgbaColor=[*(float(c) for c in material.color), 1.0],
                        physicsClientId=client,
                    )
                code_class[body + ((link + 1) << _LINK_SHIFT)] = class_id
        return code_class

    def render(
        self, layout: SceneLayout, height: int, width: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Renders one frame.

        Args:
            layout: What to draw.
            height: Image height in pixels.
            width: Image width in pixels.
            rng: Draws the sky clouds and sensor noise (the frame's generator).

        Returns:
            ``image`` uint8 [H, W, 3], ``semseg`` uint8 [H, W], ``depth`` float32
            [H, W] (metres, 0 = invalid) and ``normals`` float32 [H, W, 3].
        """
        with paused_gc():
            return self._render(layout, height, width, rng)

    def _render(
        self, layout: SceneLayout, height: int, width: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        p, client = self._p, self._client
        code_class = self._build(layout, width / height)
        cam, light = layout.camera, layout.lighting
        eye = np.asarray(cam.eye, dtype=np.float64)
        view = p.computeViewMatrix(
            cameraEyePosition=eye.tolist(),
            cameraTargetPosition=(eye + cam.forward()).tolist(),
            cameraUpVector=[0.0, 0.0, 1.0],
            physicsClientId=client,
        )
        projection = p.computeProjectionMatrixFOV(
            fov=cam.fov_deg,
            aspect=width / height,
            nearVal=cam.near_m,
            farVal=cam.far_m,
            physicsClientId=client,
        )
        _, _, rgba, depth_buffer, mask = p.getCameraImage(
            width,
            height,
            viewMatrix=view,
            projectionMatrix=projection,
            renderer=p.ER_TINY_RENDERER,
            shadow=int(light.shadows),
            lightDirection=list(light.direction),
            lightColor=list(light.color),
            lightDistance=100.0,
            lightAmbientCoeff=light.ambient,
            lightDiffuseCoeff=light.diffuse,
            lightSpecularCoeff=light.specular,
            flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
            physicsClientId=client,
        )
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[..., :3]
        mask = np.asarray(mask, dtype=np.int64).reshape(height, width)
        depth = camera_lib.metric_depth(
            np.asarray(depth_buffer, dtype=np.float32).reshape(height, width),
            cam.near_m,
            cam.far_m,
        )
        background = mask < 0
        depth[background] = 0.0
        surface, semseg = _labels(mask, code_class, layout.background_class)
        normals = camera_lib.normals_from_depth(depth, surface, cam.fov_deg)
        image = _image(rgb, background, layout, rng)
        return {
            "image": image,
            "semseg": semseg,
            "depth": depth.astype(np.float32),
            "normals": normals,
        }


def _rows(array: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """The rows of a float64 [N, K] array as a tuple of tuples of floats, at C speed.

    pybullet keeps a reference to every sequence and row it is given (it never
    releases them): tuples of floats, unlike lists, drop out of the garbage
    collector's tracking at its next pass, so that the rows of past frames are not
    scanned again and again (slices of a tuple are tuples, too).
    """
    array = np.ascontiguousarray(array, dtype=np.float64)
    record = np.dtype([(f"f{k}", np.float64) for k in range(array.shape[1])])
    return tuple(array.view(record).ravel().tolist())


def _textured_uvs(
    batch: MeshBatch, materials: list[Material]
) -> tuple[tuple[tuple[float, ...], ...], list[int]]:
    """The rows of the texture coordinates of the textured groups, and every group's bounds.

    An untextured group gets none (pybullet then uses (0.5, 0.5)): TinyRenderer reads a
    texture coordinate only to look up a texture (a white one when there is none) and
    a specular map (none: a constant exponent), so its pixels are the same.
    """
    textured = np.array([material.texture is not None for material in materials], dtype=bool)
    counts = np.diff(batch.vertex_bounds) * textured
    rows = _rows(batch.uvs[np.repeat(textured, np.diff(batch.vertex_bounds))])
    return rows, np.concatenate([[0], np.cumsum(counts)]).tolist()


def _labels(
    mask: np.ndarray, code_class: dict[int, int], background_class: int
) -> tuple[np.ndarray, np.ndarray]:
    """Surface ids and class labels [H, W] of pybullet's object mask.

    Mask codes are ``body + (link + 1) << 24`` (negative: nothing drawn). A code's
    surface id is ``slot * 129 + link + 2`` (``slot``: its body's rank among the
    frame's bodies); the background's ends in 0, so it never equals a surface's (and
    never counts as one: its depth is invalid). Both come from small lookup tables.

    Raises:
        RuntimeError: if the mask holds a code that no body of the frame has.
    """
    codes = np.array(list(code_class), dtype=np.int64)
    bodies = np.unique(codes & _BODY_BITS) if len(codes) else np.zeros(1, dtype=np.int64)
    table = np.full(len(bodies) * _LINK_SLOTS, background_class, dtype=np.int64)
    known = np.zeros(len(bodies) * _LINK_SLOTS, dtype=bool)
    code_ids, _ = _surface_ids(codes, bodies)
    table[code_ids] = list(code_class.values())
    known[code_ids] = True
    values = np.maximum(mask, -1)  # every negative code means background
    surface, slot = _surface_ids(values, bodies)
    drawn = np.take(known, surface) & (np.take(bodies, slot) == (values & _BODY_BITS))
    if not np.all(drawn | (values < 0)):
        raise RuntimeError("pybullet returned an object mask value that no body has.")
    return surface, np.take(table.astype(np.uint8), surface)


def _surface_ids(codes: np.ndarray, bodies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``slot * 129 + (code >> 24) + 1`` per mask code, and the slot (see :func:`_labels`).

    ``slot`` counts the frame's other bodies (sorted ids) at or below the code's body.
    """
    body = codes & _BODY_BITS
    slot = np.zeros(codes.shape, dtype=np.int64)
    for other in bodies[1:]:  # one or two bodies a frame
        slot += body >= other
    return slot * _LINK_SLOTS + (codes >> _LINK_SHIFT) + 1, slot


def _image(
    rgb: np.ndarray, background: np.ndarray, layout: SceneLayout, rng: np.random.Generator
) -> np.ndarray:
    """The uint8 image: the render with sky (or black) behind, exposure, sensor noise."""
    height, width = background.shape
    cam, light = layout.camera, layout.lighting
    image = np.divide(rgb, 255.0, dtype=np.float64)
    if layout.sky is not None:
        zenith, horizon, cloudiness = layout.sky
        rows = np.flatnonzero(background.any(axis=1))
        span = slice(int(rows[0]), int(rows[-1]) + 1) if rows.size else slice(0, 0)
        sky = sky_image(
            rng, height, width, cam.fov_deg, cam.pitch_deg, zenith, horizon, cloudiness, span
        )
        np.copyto(image[span], sky, where=background[span, :, None])
    else:
        np.copyto(image, 0.0, where=background[..., None])
    image *= light.exposure
    if light.noise_std > 0:
        # rng.normal(0.0, scale, shape) draws exactly scale * rng.standard_normal(shape).
        noise = rng.standard_normal(image.shape)
        noise *= light.noise_std / 255.0
        image += noise
    np.clip(image, 0.0, 1.0, out=image)
    image *= 255.0
    return np.round(image, out=image).astype(np.uint8)


def _mesh_parts(layout: SceneLayout) -> list[tuple[int, Material, list[Primitive]]]:
    """The frame's primitives grouped by (class, material), nearest group first.

    A group's distance is the nearest distance of its members' bounding spheres to
    the camera (ties keep the layout's order); groups of more than
    ``MAX_MESH_VERTICES // 128`` primitives are split into parts of that many.

    Returns:
        ``(class id, material, primitives)`` per part, in drawing order.
    """
    primitives = layout.primitives
    eye = np.asarray(layout.camera.eye)
    centers = stacked([m.center for m in primitives], (3,))
    radii = np.linalg.norm(stacked([m.half_size for m in primitives], (3,)), axis=1)
    distance = np.maximum(np.linalg.norm(centers - eye, axis=1) - radii, 0.0).tolist()
    # Keyed by the material's fields (equal materials, equal keys) rather than by the
    # material itself: hashing a tuple skips the dataclass's Python-level __hash__.
    groups: dict[tuple, tuple[int, Material, list[Primitive]]] = {}
    group_distance: dict[tuple, float] = {}
    for primitive, value in zip(primitives, distance, strict=True):
        material = primitive.material
        key = (primitive.class_id, material.texture, material.color, material.tile_m)
        group = groups.get(key)
        if group is None:
            groups[key] = (primitive.class_id, material, [primitive])
            group_distance[key] = value
        else:
            group[2].append(primitive)
            if value < group_distance[key]:
                group_distance[key] = value
    ordered = sorted(groups.items(), key=lambda item: group_distance[item[0]])
    step = max(1, MAX_MESH_VERTICES // 128)
    return [
        (class_id, material, members[start : start + step])
        for _, (class_id, material, members) in ordered
        for start in range(0, len(members), step)
    ]


def frame_summary(frame: dict[str, Any]) -> str:
    """One line describing a rendered frame (for logs and debugging)."""
    depth = frame["depth"]
    valid = depth > 0
    classes = sorted(set(np.unique(frame["semseg"]).tolist()) - {IGNORE_LABEL})
    span = f"{depth[valid].min():.2f}-{depth[valid].max():.2f} m" if valid.any() else "none"
    return f"classes={classes} depth={span} valid={valid.mean():.0%}"
