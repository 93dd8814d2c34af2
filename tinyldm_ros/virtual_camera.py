"""The virtual camera the model is shown: the input camera rotated about its optical centre to look at
the object, with the training field of view (numpy only; the pixels are tinyldm_ros.object_crop's).

Rotating a pinhole camera about its centre changes no ray, only which rays land on the image, so the
crop of that rotated camera is an exact re-sampling of the input image (a homography), and the object
appears as it would to a camera aimed at it, the way every training camera is. The target poses the
node resolves are in the input camera's frame; the model wants them relative to the camera it sees, so
they are re-expressed in the virtual camera's frame (`relative_to_virtual`) before the usual scaling
by training_radius / object_distance.

Pixel coordinates are continuous (pixel (i, j) covers [j, j+1) x [i, i+1)), as in preprocess.py.
"""

from __future__ import annotations

import math

import numpy as np

from tinyldm_ros.poses import invert_rigid, look_at

# Beyond this angle between the input optical axis and the object direction the virtual camera's
# corners would approach the input camera's image plane (a 52 deg crop at 64 deg off-axis reaches
# 90 deg): refuse instead of sampling a wildly stretched patch.
MAX_OFF_AXIS_DEG = 60.0
# A mask's direction is the mean of at most this many of its pixels' rays (a regular subsample):
# the time and memory of a 4K mask stay those of a VGA one, and the direction moves by << 0.1 px.
MAX_DIRECTION_SAMPLES = 65536


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def training_intrinsics(size: int, fov_deg: float) -> np.ndarray:
    """K of a size x size camera with the training horizontal field of view, principal point centred."""
    f = size / 2.0 / math.tan(math.radians(fov_deg) / 2.0)
    return intrinsics_matrix(f, f, size / 2.0, size / 2.0)


def pixel_direction(K: np.ndarray, u: float, v: float) -> np.ndarray:
    """Unit ray (input camera frame) through the continuous image point (u, v)."""
    ray = np.linalg.solve(K, np.array([u, v, 1.0]))
    return ray / np.linalg.norm(ray)


def _subsample_step(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count / MAX_DIRECTION_SAMPLES)))


def silhouette_direction(mask: np.ndarray, K: np.ndarray) -> np.ndarray | None:
    """The object's direction: the mean of its pixels' unit rays, each weighted by the solid angle
    the pixel covers (proportional to cos^3 of its off-axis angle). A mean over the sphere of view
    directions does not depend on where the camera points, so the same object seen off-centre and
    centred gives the same direction (a mean in pixels would not: pixels stretch off-axis).
    None for an empty mask."""
    step = _subsample_step(mask.shape[0] * mask.shape[1])
    rows, cols = np.nonzero(mask[::step, ::step])
    if rows.size == 0:
        return None
    u = (cols * step + 0.5).astype(np.float64)
    v = (rows * step + 0.5).astype(np.float64)
    Kinv = np.linalg.inv(K)
    rays = np.stack([u, v, np.ones_like(u)], axis=1) @ Kinv.T  # (N, 3), z = 1
    norm = np.linalg.norm(rays, axis=1)
    # unit ray r/|r| times solid angle ~ 1/|r|^3 (z = 1): r / |r|^4
    direction = (rays / norm[:, None] ** 4).sum(axis=0)
    return direction / np.linalg.norm(direction)


def off_axis_deg(direction: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip(direction[2], -1.0, 1.0))))


def virtual_camera(direction: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """4x4 pose of the virtual camera in the input camera's frame: same centre, optical axis along
    `direction`, no roll about `up` (the world's up in the input camera's frame), as the training
    cameras had none about theirs. None: the input camera's own up (-y), right for a camera turned
    only left/right; a camera also pitched should give the world's up (the node's orbit_up_frame).
    Identity for direction (0, 0, 1). ValueError beyond MAX_OFF_AXIS_DEG."""
    direction = np.asarray(direction, dtype=np.float64).reshape(3)
    direction = direction / np.linalg.norm(direction)
    angle = off_axis_deg(direction)
    if angle > MAX_OFF_AXIS_DEG:
        raise ValueError(
            f"the object is {angle:.0f} deg off the optical axis (at most {MAX_OFF_AXIS_DEG:g} deg)"
        )
    return look_at(np.zeros(3), direction, up=(0.0, -1.0, 0.0) if up is None else up)


def virtual_to_source_homography(K_src: np.ndarray, R: np.ndarray, K_virtual: np.ndarray) -> np.ndarray:
    """3x3 map from the virtual image's continuous pixel coordinates to the input image's:
    a virtual pixel's ray is rotated into the input frame and projected."""
    return K_src @ R @ np.linalg.inv(K_virtual)


def relative_to_virtual(poses: np.ndarray, view: np.ndarray) -> np.ndarray:
    """Target poses (camera-to-input-camera, (..., 4, 4)) relative to the virtual camera `view`."""
    return invert_rigid(view) @ np.asarray(poses, dtype=np.float64)


def ray_distances(depth_m: np.ndarray, mask: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Distances from the camera centre (not z-depth) of the masked pixels with a valid depth
    (finite, > 0), subsampled like silhouette_direction."""
    step = _subsample_step(depth_m.shape[0] * depth_m.shape[1])
    d = depth_m[::step, ::step]
    rows, cols = np.nonzero(mask[::step, ::step] & np.isfinite(d) & (d > 0))
    if rows.size == 0:
        return np.empty(0)
    x = (cols * step + 0.5 - K[0, 2]) / K[0, 0]
    y = (rows * step + 0.5 - K[1, 2]) / K[1, 1]
    return d[rows, cols].astype(np.float64) * np.sqrt(1.0 + x * x + y * y)


def surface_points(depth_m: np.ndarray, mask: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 3) points (input camera frame, metres) of the masked pixels with a valid depth (finite,
    > 0; z-depth as REP 118 depth images hold), subsampled like silhouette_direction."""
    step = _subsample_step(depth_m.shape[0] * depth_m.shape[1])
    d = depth_m[::step, ::step]
    rows, cols = np.nonzero(mask[::step, ::step] & np.isfinite(d) & (d > 0))
    z = d[rows, cols].astype(np.float64)
    x = (cols * step + 0.5 - K[0, 2]) / K[0, 0] * z
    y = (rows * step + 0.5 - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=1)
