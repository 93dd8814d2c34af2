"""Rendered scenes for the object-isolation tests and benchmarks: a procedural car seen by an input
camera that may point away from it, with its exact mask and depth, and the camera_info to match."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo

from tinyldm_ros.poses import rotation_about_axis
from training.tiny_renderer import Camera, TinyRenderer

SRN_F, SRN_SIZE = 131.25, 128  # the training camera: 52 deg at 128 px


def camera_info(cam: Camera) -> CameraInfo:
    info = CameraInfo()
    info.width, info.height = cam.width, cam.height
    info.k = [cam.f, 0.0, cam.cx, 0.0, cam.f, cam.cy, 0.0, 0.0, 1.0]
    return info


def turned(c2w: np.ndarray, yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> np.ndarray:
    """The camera c2w turned about its own centre: yaw about its y axis, then pitch about its x axis
    (the object moves to the left / down in the image for positive angles)."""
    R = rotation_about_axis([0, 1, 0], yaw_deg) @ rotation_about_axis([1, 0, 0], pitch_deg)
    out = np.array(c2w, dtype=np.float64)
    out[:3, :3] = out[:3, :3] @ R
    return out


def render(renderer: TinyRenderer, c2w: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rgb uint8, mask bool, depth float32 metres (0 where nothing is hit, as a depth camera)."""
    rgb, seg, z = renderer.render(c2w, cam, with_depth=True)
    return rgb, seg >= 0, np.where(np.isfinite(z), z, 0.0).astype(np.float32)
