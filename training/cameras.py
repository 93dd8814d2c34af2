"""Camera layouts of the SRN datasets: random views on the upper hemisphere, and a test spiral.

All cameras look at the object centre (the origin) from a sphere of the given radius, world up +z,
OpenCV convention (tinyldm_ros.poses.sphere_pose).
"""

from __future__ import annotations

import numpy as np

from tinyldm_ros.poses import sphere_pose

SRN_CARS_RADIUS = 1.3
SRN_CARS_FOCAL_128 = 131.25  # at 128 px: a 52.0 degree field of view


def focal_for_size(size: int) -> float:
    """The SRN Cars focal length (same field of view) at another image size."""
    return SRN_CARS_FOCAL_128 * size / 128.0


def random_hemisphere_poses(
    rng: np.random.Generator,
    n: int,
    radius: float = SRN_CARS_RADIUS,
    min_elevation_deg: float = 0.0,
    max_elevation_deg: float = 85.0,
) -> np.ndarray:
    """n cameras uniform by area on the band of the sphere between the two elevations, (n, 4, 4).

    The band stops short of the pole, where a camera with up +z has no defined roll.
    """
    z = rng.uniform(np.sin(np.deg2rad(min_elevation_deg)), np.sin(np.deg2rad(max_elevation_deg)), size=n)
    azimuth = rng.uniform(0.0, 360.0, size=n)
    elevation = np.rad2deg(np.arcsin(z))
    return np.stack([sphere_pose(radius, a, e) for a, e in zip(azimuth, elevation, strict=True)])


def spiral_poses(
    n: int,
    radius: float = SRN_CARS_RADIUS,
    turns: float = 3.0,
    min_elevation_deg: float = 0.0,
    max_elevation_deg: float = 85.0,
) -> np.ndarray:
    """n cameras on an Archimedean spiral over the upper hemisphere (SRN test views), (n, 4, 4).

    Azimuth and elevation both grow linearly with the view index, so consecutive views are close:
    `turns` full turns while the camera rises from min to max elevation.
    """
    t = np.linspace(0.0, 1.0, n)
    azimuth = 360.0 * turns * t
    elevation = min_elevation_deg + (max_elevation_deg - min_elevation_deg) * t
    return np.stack([sphere_pose(radius, a, e) for a, e in zip(azimuth, elevation, strict=True)])
