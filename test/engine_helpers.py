"""Shared by the engine tests: the tiny model fixture, a ring of target poses, random images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyldm_ros.poses import look_at

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tiny_model"


def orbit_poses(n: int, radius: float = 1.3) -> np.ndarray:
    """Relative poses of n cameras on a circle around an object 1.3 in front of the input camera."""
    cond = look_at([0.0, 0.0, -radius], [0.0, 0.0, 0.0], up=(0.0, -1.0, 0.0))
    out = []
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False):
        eye = [radius * np.sin(a), 0.2, -radius * np.cos(a)]
        out.append(np.linalg.inv(cond) @ look_at(eye, [0.0, 0.0, 0.0], up=(0.0, -1.0, 0.0)))
    return np.stack(out)


def image(h=32, w=32, c=3, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    if dtype == np.uint16:
        return rng.integers(0, 65536, (h, w, c), dtype=np.uint16)
    return rng.random((h, w, c)).astype(dtype)
