"""Cars from real, freely licensed 3-D models (assets/meshes/): the `meshcars` object set.

Each object is one catalogue model, turned into the SRN Cars convention (front +x, up +z, centred on
its bounding box, bounding-box diagonal 1 as ShapeNet normalises its models), its proportions
jittered per axis, and its paint recoloured from the road colour mix most of the time. Textures and
material colours are kept. Models are split by file, so no test model is ever seen in training.
"""

from __future__ import annotations

import hashlib
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from training.objects.cars import sample_colour
from training.objects.mesh_files import MeshPiece, read_mesh_file
from training.objects.parts import Part

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "meshes"


# Every catalogue pack is y-up with its front at +z (checked: head- vs tail-light positions, wheel nodes).
_FRONT, _UP = (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)


@dataclass(frozen=True)
class MeshModel:
    """One catalogue entry: a model file under assets/meshes/ and how to read it."""

    path: str
    texture: str = ""  # a texture to bind when the file names none (relative to assets/meshes/)
    front: tuple[float, float, float] = _FRONT  # in the file's axes
    up: tuple[float, float, float] = _UP

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[0]


def _pack(folder: str, names: str, texture: str = "") -> list[MeshModel]:
    """Models `folder/<name>` for each name (with its extension); `texture` binds one to each."""
    return [
        MeshModel(f"{folder}/{n}", texture=f"{folder}/{texture}" if texture else "") for n in names.split()
    ]


_Q = "quaternius-cars"
CATALOGUE: tuple[MeshModel, ...] = tuple(
    _pack(
        "kenney-car-kit",
        "sedan.glb sedan-sports.glb hatchback-sports.glb suv.glb suv-luxury.glb taxi.glb police.glb "
        "van.glb truck.glb truck-flat.glb delivery.glb delivery-flat.glb ambulance.glb firetruck.glb "
        "garbage-truck.glb",
    )
    + _pack(
        "kaykit-city-builder-bits",
        "car_sedan.gltf car_hatchback.gltf car_stationwagon.gltf car_taxi.gltf car_police.gltf",
    )
    + _pack(
        f"{_Q}/realistic-car-pack",
        "NormalCar1.fbx NormalCar2.fbx SportsCar.fbx SportsCar2.fbx SUV.fbx Taxi.fbx Cop.fbx Cop_SUV.fbx",
    )
    # The basic pack's FBX files name no texture: bind the pack's own.
    + _pack(f"{_Q}/basic-car-pack", "BasicCar.fbx SimpleCarHigh.fbx SimpleCarShort.fbx", "CarTexture.png")
    + _pack(f"{_Q}/basic-car-pack", "CopCar.fbx", "CopTexture.png")
    + _pack(f"{_Q}/basic-car-pack", "Taxi.fbx", "TaxiTexture.png")
    + _pack(f"{_Q}/basic-car-pack", "RaceCar.fbx", "RaceCarTexture.png")
    + _pack(f"{_Q}/public-transport-pack", "Ambulance.fbx")
    + _pack(f"{_Q}/public-transport-pack", "Taxi.fbx", "TaxiTexture.png")
)
# Close to SRN Cars' renders (checked side by side at the real release's poses, docs/dataset.md): a
# light from nearly overhead, more ambient and some specular, so paint stays saturated on every face.
SRN_LIGHT = dict(
    lightDirection=[0.3, 0.3, 1.0],
    lightColor=[1.0, 1.0, 1.0],
    lightDistance=10.0,
    lightAmbientCoeff=0.6,
    lightDiffuseCoeff=0.5,
    lightSpecularCoeff=0.2,
    shadow=0,
)
_HELD_OUT_PER_SPLIT = 4  # test and val models each (of 36)
RECOLOUR_PROBABILITY = 0.75  # the rest keep their own livery (taxis, police cars...)
PROPORTION_JITTER = 0.1  # each axis scaled by U(1 - j, 1 + j) before normalising
# What counts as paint (HSV, OpenCV float ranges): see _is_paint.
_CHROMATIC = 0.3  # saturation from which a colour is "coloured"
_HUE_TOLERANCE = 20.0  # degrees of hue around the paint's
_DARK = 0.3  # coloured paint is brighter than this (darker: trim, lights in shadow)
_LIGHT = 0.55  # white / silver paint is brighter than this (darker greys: tyres, glass, trim)


def split_of(model: MeshModel) -> str:
    """The model's split by a fixed hash of its name: the first 4 in hash order test, the next 4 val."""
    order = sorted(CATALOGUE, key=lambda m: (zlib.crc32(m.name.encode()), m.name))
    rank = order.index(model)
    if rank < _HELD_OUT_PER_SPLIT:
        return "test"
    return "val" if rank < 2 * _HELD_OUT_PER_SPLIT else "train"


def models_of(split: str) -> list[MeshModel]:
    return [m for m in CATALOGUE if split_of(m) == split]


def _srn_rotation(model: MeshModel) -> np.ndarray:
    """Rows: the file's front, left (up x front) and up axes: multiplying maps file axes to SRN's."""
    front, up = np.asarray(model.front), np.asarray(model.up)
    return np.stack([front, np.cross(up, front), up])


def _texture_image(piece: MeshPiece, model: MeshModel) -> np.ndarray | None:
    path = piece.texture or (ASSETS / model.texture if model.texture else None)
    if path is None or piece.uvs is None:
        return None
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def _sample_texture(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest texels at uv (assimp's origin: bottom-left, wrapping)."""
    h, w = image.shape[:2]
    col = np.floor((uv[:, 0] % 1.0) * w).astype(int).clip(0, w - 1)
    row = np.floor((1.0 - uv[:, 1] % 1.0) * h).astype(int).clip(0, h - 1)
    return image[row, col]


def _face_colours(piece: MeshPiece, image: np.ndarray | None) -> np.ndarray:
    """(F, 3) colour of each face: the texel at its UV centroid times the material colour."""
    base = np.broadcast_to(np.asarray(piece.colour), (len(piece.faces), 3))
    if image is None:
        return base
    return base * _sample_texture(image, piece.uvs[piece.faces].mean(axis=1))


def _hsv(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 1] -> HSV with H in [0, 360), S and V in [0, 1] (OpenCV's float ranges)."""
    flat = np.ascontiguousarray(rgb, dtype=np.float32).reshape(-1, 1, 3)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2HSV).reshape(np.shape(rgb))


def _is_paint(hsv: np.ndarray, paint_hsv: np.ndarray) -> np.ndarray:
    """Which colours belong to the paint: its hue family for a coloured paint, light greys for a white or
    silver one. Tyres, glass and trim (dark, or grey-blue) stay as they are."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    if paint_hsv[1] >= _CHROMATIC:
        dh = np.abs((h - paint_hsv[0] + 180.0) % 360.0 - 180.0)
        return (dh < _HUE_TOLERANCE) & (s >= _CHROMATIC) & (v > _DARK)
    return (s < _CHROMATIC) & (v > _LIGHT)


def paint_colour(pieces: list[tuple[MeshPiece, np.ndarray | None]]) -> np.ndarray:
    """The body paint (RGB): the hue family covering the most surface among saturated colours, or,
    when no coloured paint covers a fifth of the car, its most common light grey (a white or silver
    car). Dark colours (tyres, glass, trim) never count."""
    colours, areas = [], []
    for piece, image in pieces:
        tri = piece.positions[piece.faces]
        areas.append(0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1))
        colours.append(_face_colours(piece, image))
    rgb, area = np.concatenate(colours), np.concatenate(areas)
    hsv = _hsv(rgb)
    coloured = (hsv[:, 1] >= _CHROMATIC) & (hsv[:, 2] > _DARK)
    if area[coloured].sum() > 0.2 * area.sum():
        bins = (hsv[:, 0] // (2 * _HUE_TOLERANCE)).astype(int)
        family = np.bincount(bins[coloured], weights=area[coloured]).argmax()
        pick = coloured & (bins == family)
    else:
        pick = (hsv[:, 1] < _CHROMATIC) & (hsv[:, 2] > _LIGHT)
        if not pick.any():
            return np.ones(3)
    return (rgb[pick] * area[pick, None]).sum(axis=0) / area[pick].sum()


def _recoloured(colour: np.ndarray, paint: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Paint-coloured entries take the new colour, keeping their brightness relative to the paint."""
    hsv = _hsv(colour)
    paint_hsv = _hsv(paint)
    near = _is_paint(hsv, paint_hsv)
    shade = hsv[..., 2:3] / max(float(paint_hsv[2]), 1e-3)
    return np.where(near[..., None], np.clip(new * shade, 0.0, 1.0), colour)


def _texture_file(image: np.ndarray) -> str:
    """A content-named PNG of `image` in a cache folder (pybullet loads textures from files)."""
    data = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    folder = Path(tempfile.gettempdir()) / "tinyldm_textures"
    folder.mkdir(exist_ok=True)
    path = folder / f"{hashlib.sha1(data.tobytes() + str(data.shape).encode()).hexdigest()}.png"
    if not path.exists():
        tmp = path.with_suffix(f".{np.random.default_rng().integers(1 << 30)}.tmp.png")
        Image.fromarray(data).save(tmp)
        tmp.replace(path)  # atomic: render workers may write the same texture at once
    return str(path)


def build_mesh_car(model: MeshModel, rng: np.random.Generator) -> list[Part]:
    """The Parts of one car from `model`: SRN axes, jittered proportions, unit diagonal, maybe repainted."""
    raw = read_mesh_file(str(ASSETS / model.path))
    pieces = [(p, _texture_image(p, model)) for p in raw]
    rot = _srn_rotation(model)
    points = np.concatenate([p.positions for p, _ in pieces]) @ rot.T
    lo, hi = points.min(axis=0), points.max(axis=0)
    scale = rng.uniform(1 - PROPORTION_JITTER, 1 + PROPORTION_JITTER, size=3)
    scale /= np.linalg.norm((hi - lo) * scale)  # ShapeNet's unit bounding-box diagonal
    centre = (hi + lo) / 2
    repaint = rng.random() < RECOLOUR_PROBABILITY
    paint = paint_colour(pieces)
    new_paint = np.asarray(sample_colour(rng)[1][:3])  # drawn always, so the stream does not branch
    parts = []
    for piece, image in pieces:
        positions = (piece.positions @ rot.T - centre) * scale
        # normals transform by the inverse transpose of the (diagonal) scale
        normals = (piece.normals @ rot.T) / scale
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        colour = np.asarray(piece.colour)
        texture = ""
        if image is not None:
            if repaint:
                tint = np.maximum(colour, 1e-3)  # the texture is tinted by the material colour
                image = _recoloured(image, paint / tint, new_paint / tint)
            texture = _texture_file(image)
        elif repaint:
            colour = _recoloured(colour, paint, new_paint)
        parts.append(
            Part(
                "trimesh",
                (),
                rgba=(*colour.tolist(), 1.0),
                tag=model.name,
                vertices=tuple(map(tuple, positions.tolist())),
                normals=tuple(map(tuple, normals.tolist())),
                indices=tuple(piece.faces.reshape(-1).tolist()),
                uvs=tuple(map(tuple, piece.uvs.tolist())) if texture else (),
                texture=texture,
            )
        )
    return parts


def sample_mesh_car(rng: np.random.Generator, split: str) -> list[Part]:
    """A random car of the split's models."""
    pool = models_of(split)
    return build_mesh_car(pool[rng.integers(len(pool))], rng)
