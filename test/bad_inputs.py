"""Malformed inputs of every kind nvs_node must survive (used by its fuzz test and
benchmarks/stress_node.py). Each generator returns (cause, message) with a reproducible rng."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Pose, PoseArray
from sensor_msgs.msg import CameraInfo, Image

from tinyldm_ros.conversions import numpy_to_image


def _good(rng: np.random.Generator, h: int = 8, w: int = 8, encoding: str = "rgb8") -> Image:
    channels = {"mono8": 1, "mono16": 1, "rgba8": 4, "bgra8": 4}.get(encoding, 3)
    dtype = np.uint16 if encoding.endswith("16") else np.uint8
    msg = numpy_to_image(rng.integers(0, 255, (h, w, channels)).astype(dtype), encoding)
    msg.header.frame_id = "camera_optical"
    return msg


def bad_image(rng: np.random.Generator) -> tuple[str, Image]:
    """An Image whose header and data disagree, or that no camera should send."""
    kind = rng.integers(0, 9)
    msg = _good(rng, int(rng.integers(1, 16)), int(rng.integers(1, 16)), str(rng.choice(["rgb8", "mono16"])))
    if kind == 0:
        msg.step = max(0, msg.step - int(rng.integers(1, msg.step + 1)))
        return "step shorter than a row", msg
    if kind == 1:
        msg.data = bytes(msg.data)[: int(rng.integers(0, len(msg.data)))]
        return "truncated data", msg
    if kind == 2:
        msg.data = b""
        return "empty data", msg
    if kind == 3:
        msg.height, msg.width = 0, int(rng.integers(0, 5))
        return "zero size", msg
    if kind == 4:
        msg.encoding = str(rng.choice(["yuv422", "32FC1", "", "RGB8", "bayer_rggb8", "jpeg"]))
        return "unsupported encoding", msg
    if kind == 5:
        msg.height, msg.width = 100_000, 100_000
        return "huge size claimed", msg
    if kind == 6:
        msg.data = bytes(msg.data) + b"\0" * int(rng.integers(1, 64))
        return "extra data", msg
    if kind == 7:
        msg.encoding, msg.step = "mono16", msg.width * 2 + 1
        msg.data = b"\0" * (msg.height * msg.step)
        return "odd step for 16-bit", msg
    msg.width = msg.width + int(rng.integers(1, 8))
    return "width does not match data", msg


def bad_pose_array(rng: np.random.Generator, max_targets: int = 16) -> tuple[str, PoseArray]:
    """A PoseArray with a NaN, a non-rotation, an unknown frame or too many poses."""
    kind = rng.integers(0, 4)
    array = PoseArray()
    array.header.frame_id = "camera_optical"
    pose = Pose()
    pose.orientation.w = 1.0
    if kind == 0:
        pose.position.x = float("nan")
        array.poses = [pose]
        return "NaN position", array
    if kind == 1:
        pose.orientation.w, pose.orientation.x = float(rng.uniform(0, 0.5)), float(rng.uniform(0, 0.5))
        array.poses = [pose]
        return "non-unit quaternion", array
    if kind == 2:
        array.header.frame_id = f"no_such_frame_{int(rng.integers(1000))}"
        array.poses = [pose]
        return "unknown frame", array
    array.poses = [pose] * (max_targets + int(rng.integers(1, 50)))
    return "too many poses", array


def bad_camera_info(rng: np.random.Generator) -> tuple[str, CameraInfo]:
    info = CameraInfo()
    info.header.frame_id = "camera_optical"
    if rng.integers(0, 2):
        info.width, info.height = 9999, 7
        info.k = [100.0, 0, 50, 0, 100.0, 50, 0, 0, 1]
        return "size does not match images", info
    info.width, info.height = 8, 8
    info.k = [float(rng.choice([0.0, -5.0, float("nan")])), 0, 4, 0, 1, 4, 0, 0, 1]
    return "invalid focal length", info
