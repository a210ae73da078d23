"""Renders a :class:`~.primitives.SceneLayout` with pybullet's CPU TinyRenderer.

One :class:`Renderer` holds one headless pybullet client (``p.DIRECT``). Each
frame starts from an empty world (``resetSimulation``), so a frame depends only on
its layout and size — never on the frames rendered before it — which is what makes
generation deterministic whatever the number of worker processes.

Primitives that share a class and a material are merged into one mesh (fewer
pybullet bodies: rendering 100+ solids costs a few milliseconds); the object
mask then maps each body to its class, and depth gradients within a body give the
surface normals.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np

from ka_tf.constants import IGNORE_LABEL
from ka_tf.data.synth import camera as camera_lib
from ka_tf.data.synth.meshes import grouped_meshes
from ka_tf.data.synth.primitives import Material, Primitive, SceneLayout
from ka_tf.data.synth.sky import sky_image
from ka_tf.data.synth.textures import TextureFiles

# pybullet rejects meshes much above ~100k vertices; split merged groups below that.
MAX_MESH_VERTICES = 30000
# pybullet keeps at most 127 links per multibody.
MAX_LINKS = 120
# Start from a fresh pybullet world this often (bounds the memory of old shapes).
RESET_EVERY = 64
_LINK_SHIFT = 24


class Renderer:
    """A headless pybullet renderer of scene layouts.

    Each material group becomes one link of a multibody (one ``createMultiBody``
    call for up to :data:`MAX_LINKS` groups: pybullet's per-body cost dominates
    otherwise). Groups are drawn nearest first, so that the renderer's depth test
    skips most hidden pixels. Textures stay loaded between frames; the world is
    emptied after each frame and reset every :data:`RESET_EVERY` frames. None of
    this changes the image: a frame's pixels depend only on its layout and size.

    Args:
        texture_dir: Where texture PNGs are written (a temporary directory if None).

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

    def _build(self, layout: SceneLayout) -> dict[int, int]:
        """Creates the bodies of ``layout``; returns segmentation code -> class id."""
        # Building a frame allocates ~10^5 small lists for pybullet; pausing the cyclic
        # garbage collector meanwhile makes it ~4x faster (nothing cyclic is created).
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._build_bodies(layout)
        finally:
            if enabled:
                gc.enable()

    def _build_bodies(self, layout: SceneLayout) -> dict[int, int]:
        p, client = self._p, self._client
        self._clear()
        groups: dict[tuple[int, Material], list[Primitive]] = {}
        for primitive in layout.primitives:
            groups.setdefault((primitive.class_id, primitive.material), []).append(primitive)
        eye = np.asarray(layout.camera.eye)

        # Nearest distance of each primitive's bounding sphere to the camera.
        centers = np.array([m.center for m in layout.primitives], dtype=np.float64)
        radii = np.linalg.norm(np.array([m.half_size for m in layout.primitives]), axis=1)
        distance = np.maximum(np.linalg.norm(centers - eye, axis=1) - radii, 0.0).tolist()
        group_distance: dict[tuple[int, Material], float] = {}
        for primitive, value in zip(layout.primitives, distance, strict=True):
            key = (primitive.class_id, primitive.material)
            group_distance[key] = min(group_distance.get(key, np.inf), value)
        ordered = sorted(groups.items(), key=lambda item: group_distance[item[0]])
        # Split big groups so that no mesh exceeds MAX_MESH_VERTICES.
        parts: list[tuple[int, Material, list[Primitive]]] = []
        for (class_id, material), members in ordered:
            step = max(1, MAX_MESH_VERTICES // 128)
            for start in range(0, len(members), step):
                parts.append((class_id, material, members[start : start + step]))
        meshes = grouped_meshes([members for _, _, members in parts])
        # One tolist() per array for the whole frame (per-group calls dominate otherwise).
        sizes = [len(mesh.vertices) for mesh in meshes]
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        vertices = np.concatenate([mesh.vertices for mesh in meshes]).tolist()
        normals = np.concatenate([mesh.normals for mesh in meshes]).tolist()
        uvs = np.concatenate([mesh.uvs for mesh in meshes]).tolist()
        links: list[tuple[int, Material, int]] = []  # (class, material, visual shape)
        for index, ((class_id, material, _), mesh) in enumerate(zip(parts, meshes, strict=True)):
            lo, hi = int(bounds[index]), int(bounds[index + 1])
            shape = p.createVisualShape(
                p.GEOM_MESH,
                vertices=vertices[lo:hi],
                indices=mesh.indices.tolist(),
                uvs=uvs[lo:hi],
                normals=normals[lo:hi],
                rgbaColor=[*material.color, 1.0],
                physicsClientId=client,
            )
            links.append((class_id, material, shape))
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
        p, client = self._p, self._client
        code_class = self._build(layout)
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

        # Codes are body + (link + 1) << 24; compact them to small surface ids.
        codes = np.array(sorted(code_class), dtype=np.int64)
        surface = np.searchsorted(codes, mask)
        surface = np.where(background, -1, np.minimum(surface, len(codes) - 1))
        if not np.array_equal(codes[np.maximum(surface, 0)][~background], mask[~background]):
            raise RuntimeError("pybullet returned an object mask value that no body has.")
        classes = np.array([code_class[int(code)] for code in codes], dtype=np.int64)
        semseg = np.where(background, layout.background_class, classes[np.maximum(surface, 0)])
        semseg = semseg.astype(np.uint8)
        normals = camera_lib.normals_from_depth(depth, surface, cam.fov_deg)

        image = rgb.astype(np.float64) / 255.0
        if layout.sky is not None:
            zenith, horizon, cloudiness = layout.sky
            sky = sky_image(
                rng, height, width, cam.fov_deg, cam.pitch_deg, zenith, horizon, cloudiness
            )
            image[background] = sky[background]
        else:
            image[background] = 0.0
        image = image * light.exposure
        if light.noise_std > 0:
            image = image + rng.normal(0.0, light.noise_std / 255.0, image.shape)
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
        return {
            "image": image,
            "semseg": semseg,
            "depth": depth.astype(np.float32),
            "normals": normals,
        }


def frame_summary(frame: dict[str, Any]) -> str:
    """One line describing a rendered frame (for logs and debugging)."""
    depth = frame["depth"]
    valid = depth > 0
    classes = sorted(set(np.unique(frame["semseg"]).tolist()) - {IGNORE_LABEL})
    span = f"{depth[valid].min():.2f}-{depth[valid].max():.2f} m" if valid.any() else "none"
    return f"classes={classes} depth={span} valid={valid.mean():.0%}"
