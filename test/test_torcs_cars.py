"""The torcs object set on Debian's torcs-data: fetching fails clearly without the package, and with it
(from $TINYLDM_TORCS_CACHE or ~/.cache/tinyldm_ros/torcs, fetched there by apt-get when missing) every
body loads with its liveries, stands on four wheels where its XML puts them, is turned into SRN's axes
(checked by the wheels sitting in the body's arches), splits hold models apart, and training.render
writes a readable tree. Without the package those tests skip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.objects import OBJECT_SETS, SET_LIGHTS
from training.objects.mesh_cars import SRN_LIGHT
from training.objects.mesh_files import read_mesh_file
from training.objects.torcs_cars import _WHEEL_SEGMENTS, build_torcs_car
from training.objects.torcs_catalogue import cars_of, catalogue, split_of
from training.objects.torcs_fetch import TorcsDataError, torcs_root
from training.srn_dataset import load_split

ROOT = Path(__file__).resolve().parents[1]
# Open-wheelers' suspension arms and brake ducts reach into the wheels; their bodies have no arches.
_OPEN_WHEELERS = {"car1-ow1"}


def _no_apt_path(tmp_path: Path) -> str:
    """A PATH with dpkg-deb (if installed) but no apt-get, so nothing can be fetched."""
    folder = tmp_path / "bin"
    folder.mkdir()
    dpkg = shutil.which("dpkg-deb")
    if dpkg:
        (folder / "dpkg-deb").symlink_to(dpkg)
    return str(folder)


def test_no_deb_and_no_apt_get_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _no_apt_path(tmp_path))
    with pytest.raises(TorcsDataError, match=r"no torcs-data_\*\.deb in .*empty and no apt-get on PATH"):
        torcs_root(tmp_path / "empty")


def test_render_without_torcs_data_fails_with_the_reason(tmp_path):
    cmd = [sys.executable, "-m", "training.render", "--set", "torcs", "--out", str(tmp_path / "out")]
    cmd += ["--train", "1", "--val", "0", "--test", "0", "--views", "2", "--workers", "1"]
    cmd += ["--torcs-cache", str(tmp_path / "empty")]
    env = {**os.environ, "PATH": _no_apt_path(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "no apt-get on PATH" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_unreadable_deb_is_a_clear_error(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "torcs-data_0.0_all.deb").write_text("not a Debian package\n")
    with pytest.raises(TorcsDataError, match=r"torcs-data_0\.0_all\.deb"):
        torcs_root(cache)
    assert not any(p.name.startswith(".") for p in cache.iterdir())  # no half-unpacked folder left


@pytest.fixture(scope="module")
def cars():
    try:
        return catalogue()
    except TorcsDataError as e:
        pytest.skip(f"torcs-data is neither in the cache nor fetchable: {e}")


def _points(parts) -> np.ndarray:
    return np.concatenate([np.asarray(p.vertices) for p in parts])


def test_every_body_loads_with_its_liveries(cars):
    root = cars[0].body.parents[2]
    folders = {p.name for p in (root / "cars").iterdir() if (p / f"{p.name}.xml").is_file()}
    assert {c.name for c in cars} == folders and len(cars) >= 2
    for car in cars:
        pieces = read_mesh_file(str(car.body))
        assert sum(len(p.faces) for p in pieces) > 300, car.name
        # the livery stands in for a texture the body really uses
        assert any(p.texture is not None and p.texture.name == car.livery_name for p in pieces), car.name
        assert car.liveries[0].parent == car.body.parent  # the car's own livery first
        assert len(set(car.liveries)) == len(car.liveries)
        for livery in car.liveries:
            assert livery.name == car.livery_name and Image.open(livery).size[0] >= 128
        assert len(car.wheels) == 4 and all(0.2 < w.radius < 0.5 and w.width > 0.1 for w in car.wheels)


def test_every_car_builds_in_srn_convention_on_four_wheels(cars):
    for car in cars:
        parts = build_torcs_car(car, np.random.default_rng(7))
        assert all(p.kind == "trimesh" and p.tag == car.name for p in parts)
        pts = _points(parts)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        assert abs(np.linalg.norm(hi - lo) - 1.0) < 1e-6  # ShapeNet's unit bounding-box diagonal
        np.testing.assert_allclose((hi + lo) / 2, 0.0, atol=1e-9)  # centred on its bounding box
        assert (hi - lo)[0] == (hi - lo).max() and (hi - lo)[2] < (hi - lo)[0], car.name  # long along x
        for p in parts:
            assert np.allclose(np.linalg.norm(np.asarray(p.normals), axis=1), 1.0, atol=1e-6)
            assert len(p.indices) % 3 == 0 and max(p.indices) < len(p.vertices)
            assert not p.texture or (Path(p.texture).is_file() and len(p.uvs) == len(p.vertices))
        tyres = np.asarray(parts[-2].vertices).reshape(4, 2 * _WHEEL_SEGMENTS, 3)
        centres = tyres.mean(axis=1)
        # front right, front left, rear right, rear left: front at +x, left at +y
        assert (centres[:2, 0] > 0).all() and (centres[2:, 0] < 0).all(), car.name
        assert (centres[[1, 3], 1] > 0).all() and (centres[[0, 2], 1] < 0).all(), car.name
        assert tyres[..., 2].min() == pytest.approx(lo[2]), car.name  # it stands on its tyres
        assert (centres[:, 2] < 0).all(), car.name  # wheels in the lower half


def _inside_wheels(body: np.ndarray, tyres: np.ndarray, centres: np.ndarray) -> int:
    """Body vertices inside the wheels (shrunk to 90 %: a tyre may touch its arch's lining)."""
    half = (tyres.max(axis=1) - tyres.min(axis=1)) / 2  # x, z: the (jittered) radius; y: half width
    count = 0
    for c, (rx, hw, rz) in zip(centres, half, strict=True):
        in_disc = ((body[:, 0] - c[0]) / rx) ** 2 + ((body[:, 2] - c[2]) / rz) ** 2 < 0.9**2
        count += int((in_disc & (np.abs(body[:, 1] - c[1]) < hw)).sum())
    return count


def test_axes_wheels_sit_in_the_body_arches(cars):
    """The XML's wheels, placed in SRN axes, fall inside the body's wheel arches: no body vertex is
    inside a wheel. Mirrored front-back or upside down, they cut into the bodies: so the body's front
    is +x and its up +z, as the XML's (TORCS's x forward, z up) are."""
    mirrored = upside_down = 0
    for car in cars:
        parts = build_torcs_car(car, np.random.default_rng(0))
        body = _points(parts[:-2])
        tyres = np.asarray(parts[-2].vertices).reshape(4, 2 * _WHEEL_SEGMENTS, 3)
        centres = tyres.mean(axis=1)
        if car.name not in _OPEN_WHEELERS:
            assert _inside_wheels(body, tyres, centres) == 0, car.name
        mirrored += _inside_wheels(body, tyres, centres * [-1, 1, 1])
        upside_down += _inside_wheels(body, tyres, centres * [1, 1, -1])
    assert mirrored > 100 and upside_down > 100


def test_build_is_deterministic_per_seed(cars):
    car = max(cars, key=lambda c: len(c.liveries))
    a, b = (build_torcs_car(car, np.random.default_rng(3)) for _ in range(2))
    assert a == b  # vertices, normals, colours and the (content-named) texture files
    c = build_torcs_car(car, np.random.default_rng(4))
    assert not np.allclose(_points(a), _points(c))  # proportions are jittered per seed
    # over seeds the car shows several of its liveries
    textures = {build_torcs_car(car, np.random.default_rng(s))[0].texture for s in range(12)}
    assert len(textures) >= 3


def test_splits_hold_models_apart_and_cover_the_catalogue(cars):
    splits = {s: {c.name for c in cars_of(s, cars)} for s in ("train", "val", "test")}
    assert splits["train"] and splits["val"] and splits["test"]
    assert not (
        splits["train"] & splits["val"] or splits["train"] & splits["test"] or splits["val"] & splits["test"]
    )
    assert set().union(*splits.values()) == {c.name for c in cars}
    by_name = {c.name: c for c in cars}
    if {"car1-trb1", "car1-trb3"} <= by_name.keys():  # one body, reworked: always in one split
        assert split_of(by_name["car1-trb1"], cars) == split_of(by_name["car1-trb3"], cars)
    keys = {s: {c.split_key for c in cars_of(s, cars)} for s in splits}
    assert len(keys["test"]) == 2 and len(keys["val"]) == 2


def test_torcs_is_registered_with_srn_light(cars):
    assert SET_LIGHTS["torcs"] is SRN_LIGHT
    by_name = {c.name: c for c in cars}
    for split in ("train", "val", "test"):
        parts = OBJECT_SETS["torcs"](np.random.default_rng(0), split)
        assert split_of(by_name[parts[0].tag], cars) == split


def test_render_torcs_writes_srn_tree_with_split_models(cars, tmp_path):
    out = tmp_path / "torcs"
    cmd = [sys.executable, "-m", "training.render", "--set", "torcs", "--out", str(out)]
    cmd += ["--train", "1", "--val", "1", "--test", "1", "--views", "2", "--test-views", "2"]
    cmd += ["--size", "32", "--workers", "1", "--seed", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True, text=True)
    assert "torcs test:" in result.stdout  # the split lists are printed
    objects = json.loads((out / "render.json").read_text())["objects"]
    by_name = {c.name: c for c in cars}
    for split in ("train", "val", "test"):
        [car] = load_split(out, split, 32)
        assert car.images.shape == (2, 32, 32, 3) and car.images.min() < 200  # a car is in view
        assert split_of(by_name[objects[car.name]], cars) == split
