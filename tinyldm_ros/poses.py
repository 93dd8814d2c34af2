"""Rigid-transform maths shared by the data pipeline, training and the runtime (numpy only).

Conventions (docs/design.md): poses are 4x4 camera-to-world (c2w) matrices of OpenCV / ROS optical
cameras: x right, y down, z forward (along the optical axis).  All functions accept float arrays;
batched inputs have shape (..., 4, 4).
"""

from __future__ import annotations

import numpy as np

_DEFAULT_ATOL = 1e-4


def check_rigid(T: np.ndarray, name: str = "pose", atol: float = _DEFAULT_ATOL) -> np.ndarray:
    """Return T as float64 if it is a rigid 4x4 transform (or a stack of them), else raise ValueError.

    The message names `name` and what is wrong: shape, non-finite values, a rotation that is not
    orthonormal or is a reflection, or a last row other than [0, 0, 0, 1].
    """
    T = np.asarray(T)
    if T.ndim < 2 or T.shape[-2:] != (4, 4):
        raise ValueError(f"{name}: expected a 4x4 matrix (or a stack of them), got shape {T.shape}")
    if not np.issubdtype(T.dtype, np.number):
        raise ValueError(f"{name}: expected numbers, got dtype {T.dtype}")
    T = T.astype(np.float64, copy=False)
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    last = T[..., 3, :]
    if not np.allclose(last, [0.0, 0.0, 0.0, 1.0], atol=atol):
        bad = last.reshape(-1, 4)[~np.all(np.isclose(last.reshape(-1, 4), [0, 0, 0, 1], atol=atol), axis=1)]
        raise ValueError(f"{name}: last row must be [0 0 0 1], got {bad[0].tolist()}")
    R = T[..., :3, :3]
    gram = np.swapaxes(R, -1, -2) @ R
    err = np.abs(gram - np.eye(3)).max()
    if err > atol:
        raise ValueError(f"{name}: rotation block is not orthonormal (max |R^T R - I| = {err:.3g})")
    det = np.linalg.det(R)
    if np.any(det < 0):
        raise ValueError(
            f"{name}: rotation block has determinant {det.min():.3g} (a reflection, not a rotation)"
        )
    return T


def invert_rigid(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transform(s) via [R^T, -R^T t], exact where np.linalg.inv would round."""
    T = np.asarray(T, dtype=np.float64)
    R_t = np.swapaxes(T[..., :3, :3], -1, -2)
    out = np.zeros_like(T)
    out[..., :3, :3] = R_t
    out[..., :3, 3] = -(R_t @ T[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def relative_transform(c2w_cond: np.ndarray, c2w_target: np.ndarray) -> np.ndarray:
    """The target camera expressed in the conditioning camera's frame: inv(c2w_cond) @ c2w_target.

    This is the pose the model is conditioned on.  Inputs broadcast over leading batch axes.
    """
    return invert_rigid(c2w_cond) @ np.asarray(c2w_target, dtype=np.float64)


def _normalize(v: np.ndarray, what: str) -> np.ndarray:
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"{what} has zero length")
    return v / n


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV-convention c2w of a camera at `eye` looking at `target` with no roll relative to `up`.

    z (forward) points from eye to target, x (right) = z x up, y (down) = z x x; so `up` appears
    upward in the image.  Raises ValueError if eye == target or the view direction is parallel to up.
    """
    eye = np.asarray(eye, dtype=np.float64).reshape(3)
    target = np.asarray(target, dtype=np.float64).reshape(3)
    up = _normalize(np.asarray(up, dtype=np.float64).reshape(3), "look_at: up")
    z = _normalize(target - eye, "look_at: target - eye")
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: view direction is parallel to the up vector (camera at a pole)")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def sphere_pose(
    radius: float,
    azimuth_deg: float,
    elevation_deg: float,
    centre=(0.0, 0.0, 0.0),
) -> np.ndarray:
    """c2w of a camera on a sphere around `centre` (world up +z) looking at the centre.

    Azimuth is measured in the xy-plane from +x towards +y; elevation from the xy-plane towards +z.
    This is the SRN Cars camera layout (radius 1.3, object at the origin, up +z).
    """
    if not radius > 0:
        raise ValueError(f"sphere_pose: radius must be > 0, got {radius}")
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    centre = np.asarray(centre, dtype=np.float64).reshape(3)
    eye = centre + radius * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    return look_at(eye, centre, up=(0.0, 0.0, 1.0))


def azimuth_elevation(c2w: np.ndarray, centre=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation in degrees of camera position(s) about `centre`, world up +z (the
    inverse of sphere_pose's angles; azimuth in [0, 360)).  Accepts (..., 4, 4)."""
    v = np.asarray(c2w, dtype=np.float64)[..., :3, 3] - np.asarray(centre, dtype=np.float64)
    azimuth = np.rad2deg(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    elevation = np.rad2deg(np.arctan2(v[..., 2], np.hypot(v[..., 0], v[..., 1])))
    return azimuth, elevation


def object_centre(c2w: np.ndarray, distance: float) -> np.ndarray:
    """The point `distance` ahead of the camera on its optical axis (where the object is assumed)."""
    c2w = check_rigid(c2w, "object_centre: c2w")
    return c2w[:3, 3] + distance * c2w[:3, 2]


def rotation_about_axis(axis, angle_deg: float) -> np.ndarray:
    """3x3 rotation by angle_deg (right-hand rule) about `axis` (Rodrigues)."""
    k = _normalize(np.asarray(axis, dtype=np.float64).reshape(3), "rotation axis")
    a = np.deg2rad(angle_deg)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * (K @ K)


def _rotate_about_point(R: np.ndarray, point: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = point - R @ point
    return T


def orbit_pose(
    c2w_cond: np.ndarray,
    object_distance: float,
    d_azimuth_deg: float,
    d_elevation_deg: float = 0.0,
    up=None,
) -> np.ndarray:
    """c2w of a camera moved on a sphere around the object seen by the conditioning camera.

    The object centre is `object_distance` ahead of the conditioning camera on its optical axis.
    The camera is rigidly rotated about that centre, so it keeps looking at it at the same distance
    and keeps its roll:

    1. elevation: by d_elevation_deg about the horizontal axis (perpendicular to `up` and to the
       centre->camera direction); positive moves the camera towards `up` (looking more from above);
    2. azimuth: by d_azimuth_deg about `up` through the centre, right-hand rule: positive moves
       the camera counter-clockwise seen from above, i.e. towards its own right (+x).

    With `up` = +z this matches `sphere_pose`: orbit_pose(sphere_pose(r, a, e), r, da, de) ==
    sphere_pose(r, a + da, e + de).  `up` is a world-frame vector; None means the conditioning
    camera's own up direction (-y of c2w_cond), the only one known when the world frame is not.
    Raises ValueError if the new elevation would reach or pass +-90 degrees (over the pole the
    camera would turn upside down) or if the camera looks along `up`.
    """
    c2w_cond = check_rigid(c2w_cond, "orbit_pose: c2w_cond")
    if not object_distance > 0:
        raise ValueError(f"orbit_pose: object_distance must be > 0, got {object_distance}")
    up = -c2w_cond[:3, 1] if up is None else np.asarray(up, dtype=np.float64).reshape(3)
    up = _normalize(up, "orbit_pose: up")
    centre = c2w_cond[:3, 3] + object_distance * c2w_cond[:3, 2]
    v = c2w_cond[:3, 3] - centre  # centre -> camera
    v_n = v / np.linalg.norm(v)
    elevation = np.rad2deg(np.arcsin(np.clip(v_n @ up, -1.0, 1.0)))
    new_elevation = elevation + d_elevation_deg
    if abs(new_elevation) >= 90.0 - 1e-6:
        raise ValueError(
            f"orbit_pose: elevation {elevation:.1f} + {d_elevation_deg:.1f} deg reaches the pole "
            "(must stay within (-90, 90))"
        )
    horizontal = np.cross(v_n, up)
    if np.linalg.norm(horizontal) < 1e-9:
        raise ValueError("orbit_pose: the camera looks along the up vector; azimuth is undefined")
    T = c2w_cond
    if d_elevation_deg:
        T = _rotate_about_point(rotation_about_axis(horizontal, d_elevation_deg), centre) @ T
    if d_azimuth_deg:
        T = _rotate_about_point(rotation_about_axis(up, d_azimuth_deg), centre) @ T
    return T


def orbit_poses(
    c2w_cond: np.ndarray,
    object_distance: float,
    d_azimuths_deg,
    d_elevations_deg=0.0,
    up=None,
) -> np.ndarray:
    """Stack of orbit_pose results, (N, 4, 4), for broadcast azimuth/elevation deltas."""
    az, el = np.broadcast_arrays(np.atleast_1d(d_azimuths_deg), np.atleast_1d(d_elevations_deg))
    return np.stack([orbit_pose(c2w_cond, object_distance, a, e, up) for a, e in zip(az, el, strict=True)])


def pose_batch(poses, what: str = "poses") -> np.ndarray:
    """(N, 4, 4) or (4, 4) rigid transforms -> float32 (N, 4, 4); ValueError naming the bad pose."""
    try:
        batch = np.asarray(poses, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be numeric (N, 4, 4) matrices: {e}") from None
    if batch.shape == (4, 4):
        batch = batch[None]
    if batch.ndim != 3 or batch.shape[1:] != (4, 4) or batch.shape[0] < 1:
        raise ValueError(f"{what} must have shape (N, 4, 4) with N >= 1, got {batch.shape}")
    try:
        check_rigid(batch, what)  # one vectorised check on the hot path
    except ValueError:
        for i, p in enumerate(batch):  # find the culprit for the message
            check_rigid(p, f"{what}[{i}]")
        raise
    return batch.astype(np.float32)
