"""Flat-shaded triangle meshes built inline (no files): extruded profiles and thin plates."""

from __future__ import annotations

import numpy as np

from training.objects.parts import Part


class _MeshBuilder:
    """Accumulates triangles with one outward normal per face (flat shading)."""

    def __init__(self) -> None:
        self.vertices: list[tuple[float, float, float]] = []
        self.normals: list[tuple[float, float, float]] = []
        self.indices: list[int] = []

    def triangle(self, a, b, c, outward_from=None) -> None:
        a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            return  # degenerate sliver
        n /= norm
        if outward_from is not None and n @ ((a + b + c) / 3 - outward_from) < 0:
            b, c, n = c, b, -n
        base = len(self.vertices)
        for v in (a, b, c):
            self.vertices.append(tuple(v.tolist()))
            self.normals.append(tuple(n.tolist()))
        self.indices.extend((base, base + 1, base + 2))

    def part(self, rgba, tag: str) -> Part:
        return Part(
            "trimesh",
            (),
            rgba=tuple(rgba),
            tag=tag,
            vertices=tuple(self.vertices),
            normals=tuple(self.normals),
            indices=tuple(self.indices),
        )


def prism(profile_xz, y_min: float, y_max: float, rgba, tag: str) -> Part:
    """A closed solid: the polygon `profile_xz` (in the xz-plane, star-shaped about its vertex mean)
    extruded from y_min to y_max."""
    prof = np.asarray(profile_xz, dtype=np.float64)
    centre2 = prof.mean(axis=0)
    centre = np.array([centre2[0], (y_min + y_max) / 2, centre2[1]])
    m = _MeshBuilder()
    n = len(prof)
    for y in (y_min, y_max):
        c = (centre2[0], y, centre2[1])
        for i in range(n):
            j = (i + 1) % n
            m.triangle(c, (prof[i, 0], y, prof[i, 1]), (prof[j, 0], y, prof[j, 1]), outward_from=centre)
    for i in range(n):
        j = (i + 1) % n
        p0, p1 = (prof[i, 0], y_min, prof[i, 1]), (prof[j, 0], y_min, prof[j, 1])
        q0, q1 = (prof[i, 0], y_max, prof[i, 1]), (prof[j, 0], y_max, prof[j, 1])
        m.triangle(p0, q0, q1, outward_from=centre)
        m.triangle(p0, q1, p1, outward_from=centre)
    return m.part(rgba, tag)


def plate(corners, normal, rgba, tag: str) -> Part:
    """A flat convex polygon through the given 3-D corners, facing `normal` (windows, lights...).
    Place it just outside the surface it decorates."""
    pts = np.asarray(corners, dtype=np.float64)
    c = pts.mean(axis=0)
    m = _MeshBuilder()
    n = len(pts)
    for i in range(n):
        m.triangle(c, pts[i], pts[(i + 1) % n], outward_from=c - np.asarray(normal, dtype=np.float64))
    return m.part(rgba, tag)


def inset(polygon, amount: float) -> np.ndarray:
    """A convex polygon (2-D, CCW or CW) with every edge moved `amount` inwards."""
    P = np.asarray(polygon, dtype=np.float64)
    n = len(P)
    area2 = sum(P[i, 0] * P[(i + 1) % n, 1] - P[(i + 1) % n, 0] * P[i, 1] for i in range(n))
    sign = 1.0 if area2 > 0 else -1.0
    lines = []
    for i in range(n):
        a, b = P[i], P[(i + 1) % n]
        d = (b - a) / np.linalg.norm(b - a)
        inward = sign * np.array([-d[1], d[0]])
        lines.append((a + inward * amount, d))
    out = []
    for i in range(n):
        (p1, d1), (p2, d2) = lines[i - 1], lines[i]
        A = np.array([d1, -d2]).T
        t = np.linalg.solve(A, p2 - p1)[0] if abs(np.linalg.det(A)) > 1e-12 else 0.0
        out.append(p1 + t * d1)
    return np.array(out)
