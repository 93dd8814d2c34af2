"""The runtime engine refuses every kind of bad input with an InputError that says what is wrong, and
keeps working after it."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import FIXTURE, image, orbit_poses

from tinyldm_ros.engine import Engine, InputError
from tinyldm_ros.model_folder import ModelFolderError


@pytest.fixture(scope="module")
def engine():
    return Engine(FIXTURE, provider="cpu")


# -------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("img", "match"),
    [
        (np.zeros((0, 32, 3), np.uint8), "zero size"),
        (np.zeros((32, 0, 3), np.uint8), "zero size"),
        (np.zeros((32, 32, 2), np.uint8), "1, 3 or 4 channels"),
        (np.zeros((32, 32, 5), np.uint8), "1, 3 or 4 channels"),
        (np.zeros((2, 32, 32, 3), np.uint8), "HxW or HxWxC"),
        (np.zeros((32,), np.uint8), "HxW or HxWxC"),
        (np.zeros((32, 32, 3), np.complex64), "dtype"),
        (None, "image is None"),
    ],
    ids=["zero-h", "zero-w", "2ch", "5ch", "4d", "1d", "complex", "none"],
)
def test_bad_image(engine, img, match):
    with pytest.raises(InputError, match=match):
        engine.synthesize(img, orbit_poses(1))


def _scaled():
    p = np.eye(4)
    p[:3, :3] *= 2.0
    return p[None]


def _reflected():
    p = np.eye(4)
    p[0, 0] = -1.0
    return p[None]


def _nan_second():
    p = orbit_poses(3)
    p[1, 0, 3] = np.nan
    return p


@pytest.mark.parametrize(
    ("poses", "match"),
    [
        (_nan_second(), r"relative_poses\[1\].*NaN"),
        (np.full((1, 4, 4), np.inf), "NaN or infinite"),
        (_scaled(), "not orthonormal"),
        (_reflected(), "reflection"),
        (np.eye(4)[None] + np.array([0, 0, 0, 1.0]).reshape(1, 4, 1) * 0, None),  # valid: control
        (np.eye(3)[None], r"shape \(N, 4, 4\)"),
        (np.zeros((0, 4, 4)), r"N >= 1"),
        ([["a"] * 4] * 4, "numeric"),
        (np.array([[[0, 0, 0, 0]] * 4]) + np.eye(4) * np.array([1, 1, 1, 0]), "last row"),
    ],
    ids=["nan", "inf", "scaled", "reflection", "valid", "3x3", "empty", "strings", "last-row"],
)
def test_bad_poses(engine, poses, match):
    if match is None:
        assert engine.synthesize(image(), poses).shape == (1, 32, 32, 3)
        return
    with pytest.raises(InputError, match=match):
        engine.synthesize(image(), poses)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, r"steps must be an integer in \[1, 1000\]"),
        ({"steps": -5}, "steps"),
        ({"steps": 1001}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"guidance": float("nan")}, "guidance must be finite"),
        ({"guidance": -1.0}, "guidance"),
        ({"guidance": "2"}, "guidance must be a number"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"seed": 1.5}, "seed"),
        ({"eta": 1.5}, "eta"),
        ({"temperature": 1.5}, r"temperature must be in \[0, 1\]"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": "0"}, "temperature must be a number"),
    ],
)
def test_bad_arguments(engine, kwargs, match):
    with pytest.raises(InputError, match=match):
        engine.synthesize(image(), orbit_poses(1), **kwargs)


def test_input_errors_are_value_errors_and_engine_keeps_working(engine):
    assert issubclass(InputError, ValueError)
    for bad in ({"steps": 0}, {"guidance": np.inf}):
        with pytest.raises(ValueError):
            engine.synthesize(image(), orbit_poses(1), **bad)
    assert engine.synthesize(image(), orbit_poses(2)).shape == (2, 32, 32, 3)


def test_bad_model_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist"):
        Engine(tmp_path / "missing")
