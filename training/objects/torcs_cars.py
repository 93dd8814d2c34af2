"""Cars from Debian's torcs-data (fetched at render time, never committed): the `torcs` object set.

Each object is one TORCS car body in one of its liveries, with its four wheels drawn where its XML
puts them, turned into the SRN Cars convention as `meshcars` does (front +x, up +z, centred on its
bounding box, unit bounding-box diagonal, proportions jittered per axis). The liveries are the point,
so a car keeps its livery most of the time; the rest are repainted with meshcars' paint logic.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from training.objects.cars import sample_colour
from training.objects.mesh_cars import (
    PROPORTION_JITTER,
    _recoloured,
    _texture_file,
    paint_colour,
)
from training.objects.mesh_files import MeshPiece, read_mesh_file
from training.objects.parts import Part
from training.objects.torcs_catalogue import TorcsCar, Wheel, cars_of, catalogue, describe

# TORCS's .acc files are AC3D, y-up: x forward, y up, z right (plib turns them into TORCS's z-up car
# frame, x forward, y left). Rows map file axes to SRN's front, left, up. Checked: the XML's wheels sit
# in the body's wheel arches with no body vertex inside them, and a placement mirrored front-back or
# upside-down cuts into the body (test_torcs_cars.py).
_TO_SRN = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
RECOLOUR_PROBABILITY = 0.25  # the rest keep their livery
# Texture alpha (windows, the holes between a rim's spokes) is not drawn by TinyRenderer: what shows
# through is composited as dark glass / a dark wheel well instead.
_SEE_THROUGH = np.array([0.12, 0.12, 0.13], dtype=np.float32)
# Liveries are 1024 px; a car covers about 80 px of a 128 px render, so 512 px loses nothing visible
# and quarters the memory and the repainted textures written to disk.
_MAX_TEXTURE = 512
_TYRE = (0.08, 0.08, 0.08)
_WHEEL_SEGMENTS = 24


@lru_cache(maxsize=8)
def _image(path: Path) -> np.ndarray:
    """RGB in [0, 1] of a texture (SGI .rgb or any PIL format), alpha composited over _SEE_THROUGH,
    at most _MAX_TEXTURE pixels a side."""
    rgba = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0
    if max(rgba.shape[:2]) > _MAX_TEXTURE:
        k = _MAX_TEXTURE / max(rgba.shape[:2])
        size = (round(rgba.shape[1] * k), round(rgba.shape[0] * k))
        rgba = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
    rgb = rgba[..., :3] * rgba[..., 3:] + _SEE_THROUGH * (1.0 - rgba[..., 3:])
    rgb.flags.writeable = False  # shared by every build through the cache
    return rgb


def _piece_image(piece: MeshPiece, car: TorcsCar, livery: Path) -> np.ndarray | None:
    if piece.texture is None or piece.uvs is None:
        return None
    return _image(livery if piece.texture.name == car.livery_name else piece.texture)


def _wheel_meshes(wheels: tuple[Wheel, ...]) -> tuple[tuple, tuple]:
    """(positions, normals, faces) of the tyres' treads, and (positions, normals, uvs, faces) of the
    wheels' two faces each, in the TORCS car frame. As TORCS draws its wheels: a tread cylinder, and
    each face a disc of the full radius showing the car's wheel texture (the rim, the tyre's sidewall
    around it) from the texture's still-standing quadrant."""
    a = np.linspace(0.0, 2.0 * np.pi, _WHEEL_SEGMENTS, endpoint=False)
    ring = np.stack([np.cos(a), np.zeros_like(a), np.sin(a)], axis=1)  # in the x-z plane, axis along y
    n = _WHEEL_SEGMENTS
    tread_p, tread_n, tread_f, disc_p, disc_n, disc_uv, disc_f = [], [], [], [], [], [], []
    for w in wheels:
        centre = np.array([w.x, w.y, w.z])
        base = len(tread_p) * 2 * n
        tread_p.append(np.concatenate([centre + w.radius * ring + [0, s * w.width / 2, 0] for s in (-1, 1)]))
        tread_n.append(np.concatenate([ring, ring]))
        i = np.arange(n)
        j = (i + 1) % n
        quads = np.concatenate([np.stack([i, j, n + j], 1), np.stack([i, n + j, n + i], 1)])
        tread_f.append(base + quads[:, ::-1])  # wound to face outwards
        for side in (-1.0, 1.0):
            base = sum(len(p) for p in disc_p)
            disc_p.append(np.vstack([centre, centre + w.radius * ring]) + [0, side * w.width / 2, 0])
            disc_n.append(np.tile([0.0, side, 0.0], (n + 1, 1)))
            # TORCS's texture coordinates for a still wheel: the top-left quadrant, centre (0.25, 0.75)
            rim_uv = 0.25 * np.stack([np.cos(a), np.sin(a)], 1) + [0.25, 0.75]
            disc_uv.append(np.vstack([[0.25, 0.75], rim_uv]))
            fan = np.stack([np.zeros(n, int), 1 + i, 1 + j], 1)
            disc_f.append(base + (fan if side < 0 else fan[:, ::-1]))  # wound to face outwards
    tread = (np.concatenate(tread_p), np.concatenate(tread_n), np.concatenate(tread_f))
    discs = (np.concatenate(disc_p), np.concatenate(disc_n), np.concatenate(disc_uv), np.concatenate(disc_f))
    return tread, discs


def _part(name, positions, normals, faces, colour, uvs=None, texture="") -> Part:
    return Part(
        "trimesh",
        (),
        rgba=(*np.asarray(colour, dtype=float).tolist(), 1.0),
        tag=name,
        vertices=tuple(map(tuple, positions.tolist())),
        normals=tuple(map(tuple, normals.tolist())),
        indices=tuple(faces.reshape(-1).tolist()),
        uvs=tuple(map(tuple, uvs.tolist())) if texture else (),
        texture=texture,
    )


def build_torcs_car(car: TorcsCar, rng: np.random.Generator) -> list[Part]:
    """The Parts of `car` in a random livery: its body pieces, then its tyre treads, then its wheel
    faces; SRN axes, jittered proportions, unit diagonal, sometimes repainted."""
    pieces = read_mesh_file(str(car.body))
    livery = car.liveries[rng.integers(len(car.liveries))]
    images = [_piece_image(p, car, livery) for p in pieces]
    tread, discs = _wheel_meshes(car.wheels)
    body_points = np.concatenate([p.positions for p in pieces]) @ _TO_SRN.T
    points = np.concatenate([body_points, tread[0], discs[0]])
    lo, hi = points.min(axis=0), points.max(axis=0)
    scale = rng.uniform(1 - PROPORTION_JITTER, 1 + PROPORTION_JITTER, size=3)
    scale /= np.linalg.norm((hi - lo) * scale)  # ShapeNet's unit bounding-box diagonal
    centre = (hi + lo) / 2
    repaint = rng.random() < RECOLOUR_PROBABILITY
    paint = paint_colour(list(zip(pieces, images, strict=True)))
    new_paint = np.asarray(sample_colour(rng)[1][:3])  # drawn always, so the stream does not branch

    def place(positions, normals):
        # normals transform by the inverse transpose of the (diagonal) scale
        normals = normals / scale
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        # assimp leaves a zero normal on vertices only zero-area triangles use (a few per car): any
        # unit normal does, as such triangles cover no pixel
        normals = np.where(length > 1e-12, normals / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])
        return (positions - centre) * scale, normals

    parts = []
    for piece, image in zip(pieces, images, strict=True):
        positions, normals = place(piece.positions @ _TO_SRN.T, piece.normals @ _TO_SRN.T)
        colour = np.asarray(piece.colour)
        texture = ""
        if image is not None:
            if repaint:
                tint = np.maximum(colour, 1e-3)  # the texture is tinted by the material colour
                image = _recoloured(image, paint / tint, new_paint / tint)
            texture = _texture_file(image)
        elif repaint:
            colour = _recoloured(colour, paint, new_paint)
        parts.append(_part(car.name, positions, normals, piece.faces, colour, piece.uvs, texture))
    parts.append(_part(car.name, *place(tread[0], tread[1]), tread[2], _TYRE))
    wheel_texture = _texture_file(_image(car.wheel_texture)) if car.wheel_texture else ""
    disc_colour = (1.0, 1.0, 1.0) if wheel_texture else _TYRE
    parts.append(_part(car.name, *place(discs[0], discs[1]), discs[3], disc_colour, discs[2], wheel_texture))
    return parts


def sample_torcs_car(rng: np.random.Generator, split: str) -> list[Part]:
    """A random car of the split's models, in a random one of its liveries."""
    cars = catalogue()
    pool = cars_of(split, cars)
    return build_torcs_car(pool[rng.integers(len(pool))], rng)


def prepare_torcs() -> str:
    """Fetch and unpack torcs-data if needed (once, before render workers start); its split lists."""
    return describe(catalogue())
