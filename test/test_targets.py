"""Node targets against the training cameras: the relative poses the node feeds the model must be
the ones the renderer's camera pairs produce (training/cameras.py, SRN sphere of radius 1.3)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "geometry_msgs", reason="geometry_msgs missing: no ROS 2 in this environment (run `make setup`)"
)

from tinyldm_ros.poses import relative_transform  # noqa: E402
from tinyldm_ros.targets import (  # noqa: E402
    Target,
    matrix_to_pose,
    matrix_to_transform,
    orbit_targets,
    pose_to_matrix,
    target_transforms,
    to_model_units,
    transform_to_matrix,
)
from training.cameras import SRN_CARS_RADIUS, sphere_pose  # noqa: E402

# (azimuth delta, elevation delta) of the target, for a conditioning camera at elevation 0
DELTAS = [(90.0, 0.0), (-90.0, 0.0), (180.0, 0.0), (45.0, 20.0), (-135.0, -10.0)]


def _training_pairs(cond_azimuth: float) -> np.ndarray:
    cond = sphere_pose(SRN_CARS_RADIUS, cond_azimuth, 0.0)
    return np.stack(
        [relative_transform(cond, sphere_pose(SRN_CARS_RADIUS, cond_azimuth + da, de)) for da, de in DELTAS]
    )


@pytest.mark.parametrize("cond_azimuth", [0.0, 37.0, 250.0])
def test_orbit_targets_are_the_rendered_camera_pairs(cond_azimuth: float) -> None:
    """An orbit of (da, de) from a level camera == two rendered cameras da apart in azimuth."""
    targets = orbit_targets([d[0] for d in DELTAS], [d[1] for d in DELTAS], SRN_CARS_RADIUS)
    got = np.stack([t.pose for t in targets])
    np.testing.assert_allclose(got, _training_pairs(cond_azimuth), atol=1e-9)


@pytest.mark.parametrize("object_distance", [0.4, 3.0])
def test_metric_orbit_in_model_units_is_the_training_pose(object_distance: float) -> None:
    """A real object at any distance: rotation unchanged, translation scaled onto the 1.3 sphere."""
    targets = orbit_targets([d[0] for d in DELTAS], [d[1] for d in DELTAS], object_distance)
    got = np.stack([to_model_units(t.pose, SRN_CARS_RADIUS, object_distance) for t in targets])
    np.testing.assert_allclose(got, _training_pairs(10.0), atol=1e-9)


def test_training_relative_poses_survive_pose_and_transform_messages() -> None:
    """target_poses (Pose) and TF (Transform) carry the relative pose; both round trips are exact."""
    for rel in _training_pairs(20.0):
        np.testing.assert_allclose(pose_to_matrix(matrix_to_pose(rel)), rel, atol=1e-12)
        np.testing.assert_allclose(transform_to_matrix(matrix_to_transform(rel)), rel, atol=1e-12)


@pytest.mark.parametrize("cond_elevation", [30.0, 60.0])
def test_orbit_about_world_up_from_a_tilted_camera_is_the_rendered_pair(cond_elevation: float) -> None:
    """With the world's up given in the camera frame (what orbit_up_frame looks up through TF), an
    orbit from a camera looking down at the object == two rendered cameras da apart in azimuth."""
    cond = sphere_pose(SRN_CARS_RADIUS, 20.0, cond_elevation)
    up_in_camera = cond[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    deltas = [(90.0, 0.0), (180.0, 0.0), (-45.0, 10.0)]
    targets = orbit_targets([d[0] for d in deltas], [d[1] for d in deltas], SRN_CARS_RADIUS, up_in_camera)
    expected = [
        relative_transform(cond, sphere_pose(SRN_CARS_RADIUS, 20.0 + da, cond_elevation + de))
        for da, de in deltas
    ]
    np.testing.assert_allclose(np.stack([t.pose for t in targets]), np.stack(expected), atol=1e-9)
    # The camera's own up (the default) is wrong here: that is what the parameter is for.
    own_up = orbit_targets([90.0], [0.0], SRN_CARS_RADIUS)[0].pose
    assert not np.allclose(own_up, expected[0], atol=1e-3)


def test_frames_the_node_names_are_broadcast_as_children_of_the_image_frame() -> None:
    from std_msgs.msg import Header

    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    user_frame = Target("left_optical", "left_optical", np.eye(4))  # already on TF: not re-broadcast
    targets = [user_frame, *orbit_targets([30.0, -90.0], [10.0], 0.8)]
    tfs = target_transforms(header, targets)
    assert [t.child_frame_id for t in tfs] == ["orbit_az30_el10", "orbit_azm90_el10"]
    for tf, target in zip(tfs, targets[1:], strict=True):
        assert tf.header.frame_id == "camera_optical" and tf.header.stamp == header.stamp
        np.testing.assert_allclose(transform_to_matrix(tf.transform), target.pose, atol=1e-12)
