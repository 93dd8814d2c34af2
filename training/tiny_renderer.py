"""pybullet's TinyRenderer (CPU rasteriser) behind a small API: build a scene of Parts, render a view
of an OpenCV camera (c2w + pinhole intrinsics) as a uint8 RGB image on white."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as pb

from training.objects.parts import Part

_NEAR, _FAR = 0.05, 20.0
# TinyRenderer shades pixel (row i, column j) with the ray through the continuous image point
# (j, i + 1) of its projection (measured: marker centroids, test_render.py), not the pixel centre
# (j + 0.5, i + 0.5); shifting the principal point by this much makes the rendered pixels agree
# with the written intrinsics.
_PIXEL_CENTRE_SHIFT = (-0.5, 0.5)
# Fixed world-frame light (from above, front-left) so shading moves consistently with the camera;
# a white top face peaks at ~220/255, so white objects stay visible on the white background.
_LIGHT = dict(
    lightDirection=[0.5, 0.35, 1.0],
    lightColor=[1.0, 1.0, 1.0],
    lightDistance=10.0,
    lightAmbientCoeff=0.5,
    lightDiffuseCoeff=0.4,
    lightSpecularCoeff=0.05,
    shadow=0,
)


@dataclass(frozen=True)
class Camera:
    """An OpenCV pinhole camera rendering a width x height image (pixel (i, j) covers [j, j+1))."""

    f: float
    cx: float
    cy: float
    width: int
    height: int


def opencv_to_gl_view(c2w: np.ndarray) -> list[float]:
    """pybullet view matrix (column-major OpenGL world-to-camera, y up, z backwards)."""
    w2c = np.linalg.inv(np.asarray(c2w, dtype=np.float64))
    view = np.diag([1.0, -1.0, -1.0, 1.0]) @ w2c
    return view.T.reshape(-1).tolist()


def opencv_to_gl_projection(cam: Camera, near: float = _NEAR, far: float = _FAR) -> list[float]:
    """pybullet projection matrix (column-major) for pinhole intrinsics, image row 0 at the top."""
    W, H = cam.width, cam.height
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * cam.f / W
    P[0, 2] = 1.0 - 2.0 * cam.cx / W
    P[1, 1] = 2.0 * cam.f / H
    P[1, 2] = 2.0 * cam.cy / H - 1.0
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P.T.reshape(-1).tolist()


class TinyRenderer:
    """One pybullet DIRECT client holding one scene at a time."""

    def __init__(self) -> None:
        self.client = pb.connect(pb.DIRECT)
        self._bodies: list[int] = []

    def close(self) -> None:
        if self.client >= 0:
            pb.disconnect(physicsClientId=self.client)
            self.client = -1

    def __enter__(self) -> TinyRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_scene(self, parts: list[Part]) -> list[int]:
        """Replace the scene with `parts`; returns the body id of each part (for segmentation)."""
        pb.resetSimulation(physicsClientId=self.client)
        self._bodies = [self._add(p) for p in parts]
        return self._bodies

    def _add(self, p: Part) -> int:
        c = self.client
        if p.kind == "box":
            shape = pb.createVisualShape(pb.GEOM_BOX, halfExtents=p.size, rgbaColor=p.rgba, physicsClientId=c)
        elif p.kind == "cylinder":
            shape = pb.createVisualShape(
                pb.GEOM_CYLINDER, radius=p.size[0], length=p.size[1], rgbaColor=p.rgba, physicsClientId=c
            )
        elif p.kind == "sphere":
            shape = pb.createVisualShape(
                pb.GEOM_SPHERE, radius=p.size[0], rgbaColor=p.rgba, physicsClientId=c
            )
        elif p.kind == "mesh":
            shape = pb.createVisualShape(
                pb.GEOM_MESH, fileName=p.mesh, meshScale=p.size, rgbaColor=p.rgba, physicsClientId=c
            )
        elif p.kind == "trimesh":
            shape = pb.createVisualShape(
                pb.GEOM_MESH,
                vertices=p.vertices,
                normals=p.normals,
                indices=p.indices,
                rgbaColor=p.rgba,
                physicsClientId=c,
                **({"uvs": p.uvs} if p.uvs else {}),
            )
        else:
            raise ValueError(f"unknown part kind {p.kind!r}")
        if shape < 0:
            raise RuntimeError(f"pybullet could not create a {p.kind} shape {p.mesh or p.size}")
        body = pb.createMultiBody(
            baseVisualShapeIndex=shape,
            basePosition=p.position,
            baseOrientation=pb.getQuaternionFromEuler(p.rpy),
            physicsClientId=c,
        )
        if p.kind == "mesh":
            # Drop any texture of the mesh so the random colour shows.
            pb.changeVisualShape(body, -1, textureUniqueId=-1, rgbaColor=p.rgba, physicsClientId=c)
        elif p.texture:
            texture = pb.loadTexture(p.texture, physicsClientId=c)
            if texture < 0:
                raise RuntimeError(f"pybullet could not load the texture {p.texture}")
            pb.changeVisualShape(body, -1, textureUniqueId=texture, rgbaColor=p.rgba, physicsClientId=c)
        return body

    def render(
        self,
        c2w: np.ndarray,
        cam: Camera,
        with_mask: bool = False,
        light: dict | None = None,
        with_depth: bool = False,
    ):
        """uint8 (H, W, 3) RGB on a white background; with_mask also returns the (H, W) int body-id
        mask (-1 = background), with_depth then the (H, W) float32 z-depth in scene units (inf where
        nothing is hit). `light`: pybullet light arguments (default: the procedural sets')."""
        flags = 0 if (with_mask or with_depth) else pb.ER_NO_SEGMENTATION_MASK
        _, _, rgba, zbuffer, seg = pb.getCameraImage(
            cam.width,
            cam.height,
            viewMatrix=opencv_to_gl_view(c2w),
            projectionMatrix=opencv_to_gl_projection(
                Camera(
                    cam.f,
                    cam.cx + _PIXEL_CENTRE_SHIFT[0],
                    cam.cy + _PIXEL_CENTRE_SHIFT[1],
                    cam.width,
                    cam.height,
                )
            ),
            renderer=pb.ER_TINY_RENDERER,
            flags=flags,
            physicsClientId=self.client,
            **(_LIGHT if light is None else light),
        )
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(cam.height, cam.width, 4)[:, :, :3]
        if not (with_mask or with_depth):
            return np.ascontiguousarray(rgb)
        seg = np.asarray(seg).reshape(cam.height, cam.width)
        if not with_depth:
            return np.ascontiguousarray(rgb), seg
        # OpenGL's non-linear depth buffer in [0, 1] -> metric z along the optical axis
        zb = np.asarray(zbuffer, dtype=np.float64).reshape(cam.height, cam.width)
        z = _FAR * _NEAR / (_FAR - (_FAR - _NEAR) * zb)
        return np.ascontiguousarray(rgb), seg, np.where(seg >= 0, z, np.inf).astype(np.float32)
