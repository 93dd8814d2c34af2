"""tinyldm_ros.poses: rigidity checks, relative transforms, OpenCV look-at and orbits."""

import numpy as np
import pytest

from tinyldm_ros.poses import (
    azimuth_elevation,
    check_rigid,
    invert_rigid,
    look_at,
    object_centre,
    orbit_pose,
    orbit_poses,
    relative_transform,
    rotation_about_axis,
    sphere_pose,
)


def _random_rigid(rng, n=None):
    def one():
        T = np.eye(4)
        T[:3, :3] = rotation_about_axis(rng.normal(size=3), rng.uniform(-180, 180))
        T[:3, 3] = rng.normal(size=3)
        return T

    return one() if n is None else np.stack([one() for _ in range(n)])


def _project(c2w, point, f=100.0, c=50.0):
    p = invert_rigid(c2w) @ np.append(point, 1.0)
    return np.array([f * p[0] / p[2] + c, f * p[1] / p[2] + c]), p[2]


def test_check_rigid_accepts_rigid_and_batches():
    rng = np.random.default_rng(0)
    assert check_rigid(_random_rigid(rng)).shape == (4, 4)
    assert check_rigid(_random_rigid(rng, 5)).dtype == np.float64


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda T: T[:3], "4x4"),
        (lambda T: np.where(np.eye(4, dtype=bool), np.nan, T), "NaN"),
        (lambda T: T @ np.diag([2.0, 1.0, 1.0, 1.0]), "orthonormal"),
        (lambda T: T @ np.diag([-1.0, 1.0, 1.0, 1.0]), "determinant"),
        (lambda T: T + np.r_[np.zeros((3, 4)), [[0.0, 0.0, 0.5, 0.0]]], "last row"),
        (lambda T: T.astype(str), "numbers"),
    ],
)
def test_check_rigid_names_what_is_wrong(make, message):
    T = _random_rigid(np.random.default_rng(1))
    with pytest.raises(ValueError, match=message) as e:
        check_rigid(make(T), name="cam_pose.txt")
    assert "cam_pose.txt" in str(e.value)


def test_relative_transform_is_target_in_cond_frame():
    rng = np.random.default_rng(2)
    a, b = _random_rigid(rng, 6), _random_rigid(rng, 6)
    rel = relative_transform(a, b)
    np.testing.assert_allclose(a @ rel, b, atol=1e-12)
    np.testing.assert_allclose(rel, np.linalg.inv(a) @ b, atol=1e-12)
    np.testing.assert_allclose(relative_transform(a[0], a[0]), np.eye(4), atol=1e-12)
    check_rigid(rel)


def test_look_at_is_opencv_x_right_y_down_z_forward():
    # Camera on +x looking at the origin, world up +z: the image's up is world +z, its right world +y.
    c2w = look_at([1.3, 0, 0], [0, 0, 0], up=[0, 0, 1])
    check_rigid(c2w)
    np.testing.assert_allclose(c2w[:3, 2], [-1, 0, 0], atol=1e-12)  # forward
    np.testing.assert_allclose(c2w[:3, 1], [0, 0, -1], atol=1e-12)  # down
    np.testing.assert_allclose(c2w[:3, 0], [0, 1, 0], atol=1e-12)  # right
    centre, depth = _project(c2w, [0, 0, 0])
    above, _ = _project(c2w, [0, 0, 0.2])
    right, _ = _project(c2w, [0, 0.2, 0])
    assert depth == pytest.approx(1.3)
    np.testing.assert_allclose(centre, [50, 50])
    assert above[1] < centre[1] and above[0] == pytest.approx(50)  # up is up in the image (y down)
    assert right[0] > centre[0]


def test_look_at_rejects_degenerate():
    with pytest.raises(ValueError, match="parallel"):
        look_at([0, 0, 2], [0, 0, 0])
    with pytest.raises(ValueError, match="zero length"):
        look_at([1, 1, 1], [1, 1, 1])


def test_sphere_pose_on_sphere_looking_at_centre():
    c2w = sphere_pose(1.3, 40.0, 25.0, centre=(0.1, 0.2, 0.3))
    eye = c2w[:3, 3]
    assert np.linalg.norm(eye - [0.1, 0.2, 0.3]) == pytest.approx(1.3)
    np.testing.assert_allclose(object_centre(c2w, 1.3), [0.1, 0.2, 0.3], atol=1e-12)
    assert np.degrees(np.arcsin((eye[2] - 0.3) / 1.3)) == pytest.approx(25.0)


def test_azimuth_elevation_inverts_sphere_pose():
    poses = np.stack([sphere_pose(1.3, a, e) for a, e in [(10, 5), (200, 45), (359, 80)]])
    az, el = azimuth_elevation(poses)
    np.testing.assert_allclose(az, [10, 200, 359], atol=1e-9)
    np.testing.assert_allclose(el, [5, 45, 80], atol=1e-9)


@pytest.mark.parametrize("az, el, daz, de", [(0, 10, 45, 0), (30, 20, -90, 15), (200, 60, 180, -50)])
def test_orbit_about_world_up_matches_sphere_pose(az, el, daz, de):
    moved = orbit_pose(sphere_pose(1.3, az, el), 1.3, daz, de, up=(0, 0, 1))
    np.testing.assert_allclose(moved, sphere_pose(1.3, az + daz, el + de), atol=1e-9)


def test_orbit_about_camera_up_keeps_object_in_view():
    rng = np.random.default_rng(3)
    cond = _random_rigid(rng)
    centre = object_centre(cond, 2.0)
    for daz, de in [(30, 0), (-120, 20), (90, -30)]:
        T = orbit_pose(cond, 2.0, daz, de)  # up = the conditioning camera's own up
        check_rigid(T)
        assert np.linalg.norm(T[:3, 3] - centre) == pytest.approx(2.0)
        np.testing.assert_allclose(object_centre(T, 2.0), centre, atol=1e-9)
    np.testing.assert_allclose(orbit_pose(cond, 2.0, 360.0), cond, atol=1e-9)
    # Positive azimuth moves the camera towards its own right (+x).
    assert (orbit_pose(cond, 2.0, 10.0)[:3, 3] - cond[:3, 3]) @ cond[:3, 0] > 0
    assert orbit_poses(cond, 2.0, [0, 10, 20]).shape == (3, 4, 4)


def test_orbit_rejects_pole_and_bad_distance():
    with pytest.raises(ValueError, match="pole"):
        orbit_pose(sphere_pose(1.3, 0, 60), 1.3, 0, 40, up=(0, 0, 1))
    with pytest.raises(ValueError, match="object_distance"):
        orbit_pose(np.eye(4), 0.0, 10)
