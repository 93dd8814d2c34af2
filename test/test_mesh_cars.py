"""The meshcars object set on the committed models: assimp reads every format, each catalogue model
becomes an SRN-convention car (axes, unit diagonal, centred), splits hold models apart, repainting
touches the paint only, and training.render writes a readable SRN tree whose test cars are test models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.objects import OBJECT_SETS, SET_LIGHTS
from training.objects.mesh_cars import (
    ASSETS,
    CATALOGUE,
    SRN_LIGHT,
    _hsv,
    build_mesh_car,
    models_of,
    paint_colour,
    split_of,
)
from training.objects.mesh_files import MeshFileError, read_mesh_file
from training.srn_dataset import load_split

ROOT = Path(__file__).resolve().parents[1]


def _model(path: str):
    [m] = [m for m in CATALOGUE if m.path == path]
    return m


def _points(parts) -> np.ndarray:
    return np.concatenate([np.asarray(p.vertices) for p in parts])


@pytest.mark.parametrize(
    "path",
    [
        "kenney-car-kit/sedan.glb",
        "kaykit-city-builder-bits/car_sedan.gltf",
        "quaternius-cars/realistic-car-pack/NormalCar1.fbx",
    ],
)
def test_read_mesh_file_reads_glb_gltf_fbx(path):
    pieces = read_mesh_file(str(ASSETS / path))
    assert pieces
    for p in pieces:
        assert p.positions.shape[1] == 3 and p.normals.shape == p.positions.shape
        assert p.faces.shape[1] == 3 and len(p.faces) > 0
        assert p.faces.min() >= 0 and p.faces.max() < len(p.positions)  # triangulated, indices valid
        assert np.allclose(np.linalg.norm(p.normals, axis=1), 1.0, atol=1e-3)
        assert all(0.0 <= c <= 1.0 for c in p.colour)
        if p.uvs is not None:
            assert p.uvs.shape == (len(p.positions), 2)
    assert sum(len(p.faces) for p in pieces) > 500  # whole cars, not one node of them
    if path.endswith((".glb", ".gltf")):
        # both packs texture through a shared atlas that the file references by relative path
        assert any(p.texture is not None and p.texture.is_file() for p in pieces)


def test_read_mesh_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.glb"
    with pytest.raises(MeshFileError, match="nope.glb: no such model file"):
        read_mesh_file(str(missing))
    junk = tmp_path / "junk.fbx"
    junk.write_text("this is not a model\n")
    with pytest.raises(MeshFileError, match="junk.fbx"):
        read_mesh_file(str(junk))


def test_splits_hold_models_apart_and_cover_the_catalogue():
    splits = {s: {m.name for m in models_of(s)} for s in ("train", "val", "test")}
    assert len(splits["test"]) == 4 and len(splits["val"]) == 4 and splits["train"]
    assert not (
        splits["train"] & splits["val"] or splits["train"] & splits["test"] or splits["val"] & splits["test"]
    )
    assert set().union(*splits.values()) == {m.name for m in CATALOGUE}
    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)  # no model listed twice
    assert all(split_of(m) in splits for m in CATALOGUE)


@pytest.mark.parametrize("model", CATALOGUE, ids=lambda m: m.name)
def test_every_model_builds_in_srn_convention(model):
    parts = build_mesh_car(model, np.random.default_rng(7))
    assert parts and all(p.kind == "trimesh" and p.tag == model.name for p in parts)
    pts = _points(parts)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = hi - lo
    assert abs(np.linalg.norm(extent) - 1.0) < 1e-6  # ShapeNet's unit bounding-box diagonal
    np.testing.assert_allclose((hi + lo) / 2, 0.0, atol=1e-9)  # centred on its bounding box
    # front +x: a car is longest along its driving axis; up +z: lower than it is long
    assert extent[0] == extent.max() and extent[2] < extent[0]
    for p in parts:
        normals = np.asarray(p.normals)
        assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
        assert len(p.indices) % 3 == 0 and max(p.indices) < len(p.vertices)
        assert not p.texture or (Path(p.texture).is_file() and len(p.uvs) == len(p.vertices))


@pytest.mark.parametrize(
    "model", models_of("train")[:1] + [_model("kenney-car-kit/sedan.glb")], ids=lambda m: m.name
)
def test_build_is_deterministic_per_seed(model):
    a, b = (build_mesh_car(model, np.random.default_rng(3)) for _ in range(2))
    assert a == b  # vertices, normals, colours and the (content-named) texture file
    c = build_mesh_car(model, np.random.default_rng(4))
    assert not np.allclose(_points(a), _points(c))  # proportions are jittered per seed


def test_up_is_plus_z_tyres_at_the_bottom():
    """Material-coloured models show where the tyres are: the lowest vertices are all dark (tyres,
    wheel arches), so +z is up and not down."""
    for model in models_of("train") + models_of("val") + models_of("test"):
        if "realistic-car-pack" not in model.path:
            continue
        parts = build_mesh_car(model, np.random.default_rng(0))
        pts = _points(parts)
        value = np.concatenate([np.full(len(p.vertices), max(p.rgba[:3])) for p in parts])
        bottom = pts[:, 2] < pts[:, 2].min() + 0.02
        assert bottom.any() and (value[bottom] < 0.3).all(), model.name


def _seeds_by_repaint(model, seeds=range(12)):
    """Seeds whose build repainted the car (some part differs from the file), and those that did not."""
    raw = read_mesh_file(str(ASSETS / model.path))
    out = {True: [], False: []}
    for s in seeds:
        parts = build_mesh_car(model, np.random.default_rng(s))
        changed = any(
            not np.allclose(p.rgba[:3], r.colour, atol=1e-6) for p, r in zip(parts, raw, strict=True)
        )
        changed |= any(
            p.texture and _texture_changed(p.texture, r.texture) for p, r in zip(parts, raw, strict=True)
        )
        out[changed].append(s)
    return out


def _texture_changed(built: str, original: Path | None) -> bool:
    return original is not None and not np.array_equal(_rgb(built), _rgb(original))


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def test_recolouring_material_coloured_model_changes_paint_only():
    model = _model("quaternius-cars/realistic-car-pack/NormalCar1.fbx")
    raw = read_mesh_file(str(ASSETS / model.path))
    paint = paint_colour([(p, None) for p in raw])
    seeds = _seeds_by_repaint(model)
    assert seeds[True] and seeds[False]  # most cars repainted, some keep their livery
    for s in seeds[True]:
        parts = build_mesh_car(model, np.random.default_rng(s))
        for p, r in zip(parts, raw, strict=True):
            if np.allclose(r.colour, paint):
                assert not np.allclose(p.rgba[:3], r.colour)  # the body paint takes the new colour
            elif _hsv(np.asarray(r.colour))[2] < 0.3:
                assert p.rgba[:3] == r.colour  # tyres, glass, trim: exactly as they were


def test_recolouring_textured_model_changes_paint_texels_only():
    model = _model("kenney-car-kit/sedan.glb")
    [raw] = read_mesh_file(str(ASSETS / model.path))
    original = _rgb(raw.texture)
    paint = paint_colour([(raw, original)]) / np.maximum(np.asarray(raw.colour), 1e-3)
    paint_texels = np.abs(original - paint).max(axis=-1) < 1.5 / 255
    dark = _hsv(original)[..., 2] < 0.3
    assert paint_texels.any() and dark.any()
    seeds = _seeds_by_repaint(model)
    assert seeds[True]
    for s in seeds[True]:
        [part] = build_mesh_car(model, np.random.default_rng(s))
        image = _rgb(part.texture)
        assert np.abs(image[paint_texels] - original[paint_texels]).max() > 0.05
        np.testing.assert_allclose(image[dark], original[dark], atol=1 / 255)  # tyres, windows
    for s in seeds[False]:
        [part] = build_mesh_car(model, np.random.default_rng(s))
        np.testing.assert_array_equal(_rgb(part.texture), original)


def test_meshcars_is_registered_with_its_light():
    assert "meshcars" in OBJECT_SETS and SET_LIGHTS["meshcars"] is SRN_LIGHT
    for split in ("train", "val", "test"):
        parts = OBJECT_SETS["meshcars"](np.random.default_rng(0), split)
        assert split_of(_model_named(parts[0].tag)) == split


def _model_named(name: str):
    [m] = [m for m in CATALOGUE if m.name == name]
    return m


def test_render_meshcars_writes_srn_tree_with_split_models(tmp_path):
    out = tmp_path / "meshcars"
    cmd = [sys.executable, "-m", "training.render", "--set", "meshcars", "--out", str(out)]
    cmd += ["--train", "2", "--val", "1", "--test", "1", "--views", "2", "--test-views", "2"]
    cmd += ["--size", "32", "--workers", "1", "--seed", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True)
    recipe = json.loads((out / "render.json").read_text())
    assert recipe["object_set"] == "meshcars"
    objects = recipe["objects"]  # instance -> the catalogue model it shows
    for split, count in (("train", 2), ("val", 1), ("test", 1)):
        cars = load_split(out, split, 32)
        assert len(cars) == count
        for car in cars:
            assert car.images.shape == (2, 32, 32, 3) and car.c2w.shape == (2, 4, 4)
            np.testing.assert_allclose(np.linalg.norm(car.c2w[:, :3, 3], axis=1), 1.3, atol=1e-6)
            assert car.images.min() < 200  # a car is in view, not only the white background
            assert split_of(_model_named(objects[car.name])) == split  # test cars only from test models
