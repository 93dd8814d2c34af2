"""General objects: the OBJ meshes shipped in pybullet_data (1000 random_urdfs blobs plus named
objects: duck, teddy, bunny, mug, lego, toys...) with random colour, size and orientation.

Splits are by mesh: each mesh belongs to exactly one of train/val/test (a fixed hash of its path),
so a test object is never a recoloured training object.
"""

from __future__ import annotations

import colorsys
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pybullet_data

from training.objects.parts import Part

NAMED_MESHES = (
    "duck.obj",
    "teddy2_VHACD_CHs.obj",
    "bunny.obj",
    "soccerball.obj",
    "sphere_smooth.obj",
    "cube.obj",
    "torus/torus_textured.obj",
    "objects/mug.obj",
    "lego/lego.obj",
    "domino/domino.obj",
    "jenga/jenga.obj",
    "table/table.obj",
    "toys/concave_box.obj",
    "toys/cylinder.obj",
    "toys/prism.obj",
    "toys/shape_sorter.obj",
    "tray/tray_textured.obj",
)


def data_root() -> Path:
    return Path(pybullet_data.getDataPath())


@lru_cache(maxsize=1)
def all_meshes() -> tuple[str, ...]:
    """Mesh paths relative to pybullet_data, sorted (so the list is the same on every machine)."""
    root = data_root()
    blobs = sorted(str(p.relative_to(root)) for p in root.glob("random_urdfs/*/*.obj"))
    named = [m for m in NAMED_MESHES if (root / m).is_file()]
    return tuple(blobs + named)


def split_of(mesh: str) -> str:
    """80 / 10 / 10 train / val / test by a stable hash of the mesh path."""
    bucket = zlib.crc32(mesh.encode()) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


@lru_cache(maxsize=4)
def meshes_of_split(split: str) -> tuple[str, ...]:
    meshes = tuple(m for m in all_meshes() if split_of(m) == split)
    if not meshes:
        raise RuntimeError(f"no pybullet_data meshes fall in split {split!r} (is pybullet_data installed?)")
    return meshes


@lru_cache(maxsize=2048)
def mesh_vertices(mesh: str) -> np.ndarray:
    """(N, 3) vertex positions of an OBJ file (only the `v` lines are needed for bounds)."""
    verts = []
    with open(data_root() / mesh, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                verts.append(line.split()[1:4])
    if not verts:
        raise ValueError(f"{data_root() / mesh}: OBJ file has no vertices")
    return np.asarray(verts, dtype=np.float64)


def _euler_matrix(rpy) -> np.ndarray:
    r, p, y = rpy
    Rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    Ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    Rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx  # pybullet's getQuaternionFromEuler order


def random_colour(rng: np.random.Generator) -> tuple[float, float, float, float]:
    h = rng.uniform()
    s = rng.uniform(0.0, 0.9) if rng.random() < 0.8 else 0.0
    v = rng.uniform(0.25, 0.95)
    return (*colorsys.hsv_to_rgb(h, s, v), 1.0)


def sample_object(rng: np.random.Generator, split: str) -> list[Part]:
    """One mesh of `split`, randomly oriented, scaled to a largest extent of 0.6-1.0 units, coloured,
    and centred on its bounding box at the origin."""
    meshes = meshes_of_split(split)
    mesh = meshes[rng.integers(len(meshes))]
    # Blobs have no canonical up; named objects keep theirs up to a random turn about z.
    if mesh.startswith("random_urdfs"):
        rpy = tuple(rng.uniform(-np.pi, np.pi, size=3).tolist())
    else:
        rpy = (0.0, 0.0, float(rng.uniform(-np.pi, np.pi)))
    aspect = rng.uniform(0.8, 1.25, size=3)
    verts = mesh_vertices(mesh) * aspect
    extent = float(np.max(verts.max(0) - verts.min(0)))
    if extent <= 0:
        raise ValueError(f"{data_root() / mesh}: mesh has zero extent")
    scale = aspect * rng.uniform(0.6, 1.0) / extent
    rotated = (mesh_vertices(mesh) * scale) @ _euler_matrix(rpy).T
    centre = (rotated.max(0) + rotated.min(0)) / 2
    return [
        Part(
            "mesh",
            tuple(scale.tolist()),
            tuple((-centre).tolist()),
            rpy,
            random_colour(rng),
            mesh=str(data_root() / mesh),
            tag=mesh,
        )
    ]
