"""A scene as plain data: coloured primitives and meshes that the renderer turns into pybullet bodies.

Object generators return lists of Parts, so they stay deterministic, testable without a renderer,
and one place (training.tiny_renderer) owns pybullet.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Part:
    """One rigid coloured shape.  Sizes and positions in world units; rpy in radians (pybullet order).

    kind: "box" (size = half extents x, y, z), "cylinder" (size = radius, length; axis along local z),
    "sphere" (size = radius,), "mesh" (mesh = path of an OBJ file, size = per-axis scale),
    "trimesh" (triangles given inline: vertices, one normal per vertex, indices; size unused; with
    `uvs` (one per vertex) and `texture` (an image file) it is textured, the texture tinted by rgba).
    """

    kind: str
    size: tuple[float, ...]
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rgba: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 1.0)
    mesh: str = ""
    tag: str = field(default="", compare=False)  # what the part is (e.g. "wheel"), for tests/debugging
    vertices: tuple[tuple[float, float, float], ...] = ()
    normals: tuple[tuple[float, float, float], ...] = ()
    indices: tuple[int, ...] = ()
    uvs: tuple[tuple[float, float], ...] = ()
    texture: str = ""


def shift(parts: list[Part], offset) -> list[Part]:
    """The parts translated by `offset`."""
    o = np.asarray(offset, dtype=np.float64)
    return [replace(p, position=tuple((np.asarray(p.position) + o).tolist())) for p in parts]
