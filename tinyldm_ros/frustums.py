"""visualization_msgs/MarkerArray camera frustums for the input camera and every target, for RViz."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from tinyldm_ros.targets import Target, matrix_to_pose

INPUT_COLOUR = (0.2, 0.6, 1.0, 1.0)
TARGET_COLOUR = (1.0, 0.55, 0.1, 1.0)


def frustum_lines(fov_deg: float, depth: float) -> list[tuple[float, float, float]]:
    """LINE_LIST points of a square pyramid: apex at the camera, base `depth` ahead (optical z)."""
    h = depth * np.tan(np.deg2rad(fov_deg) / 2.0)
    corners = [(-h, -h, depth), (h, -h, depth), (h, h, depth), (-h, h, depth)]
    lines = []
    for i, c in enumerate(corners):
        lines += [(0.0, 0.0, 0.0), c, c, corners[(i + 1) % 4]]
    # a tick on the top edge (image up = -y) so a rolled camera is visible
    lines += [(-h / 3, -h, depth), (0.0, -1.4 * h, depth), (0.0, -1.4 * h, depth), (h / 3, -h, depth)]
    return lines


def frustum_markers(
    header, targets: list[Target], fov_deg: float, object_distance: float, lifetime_s: float = 0.0
) -> MarkerArray:
    """Frustums (input camera at the identity, targets at their poses) in the input image's frame.

    `header` is the input image's header; markers of earlier frames are deleted first so that a
    shrinking target list leaves nothing behind.
    """
    depth = 0.3 * object_distance
    lines = [Point(x=x, y=y, z=z) for x, y, z in frustum_lines(fov_deg, depth)]
    markers = [Marker(action=Marker.DELETEALL)]
    cameras = [("input", np.eye(4), INPUT_COLOUR)] + [(t.name, t.pose, TARGET_COLOUR) for t in targets]
    for i, (name, pose, colour) in enumerate(cameras):
        frustum = Marker(header=header, ns="frustums", id=i, type=Marker.LINE_LIST, action=Marker.ADD)
        frustum.pose = matrix_to_pose(pose)
        frustum.scale.x = 0.01 * object_distance
        frustum.color = ColorRGBA(r=colour[0], g=colour[1], b=colour[2], a=colour[3])
        frustum.points = lines
        frustum.lifetime.sec = int(lifetime_s)
        label = Marker(header=header, ns="labels", id=i, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        label.pose = matrix_to_pose(pose)
        label.pose.position.y -= 0.05 * object_distance  # above the apex (optical y points down)
        label.scale.z = 0.05 * object_distance
        label.color = frustum.color
        label.text = name
        markers += [frustum, label]
    centre = Marker(header=header, ns="object", id=0, type=Marker.SPHERE, action=Marker.ADD)
    centre.pose.position.z = float(object_distance)
    centre.pose.orientation.w = 1.0
    centre.scale.x = centre.scale.y = centre.scale.z = 0.05 * object_distance
    centre.color = ColorRGBA(r=0.9, g=0.9, b=0.9, a=0.8)
    markers.append(centre)
    return MarkerArray(markers=markers)
