"""Pinhole geometry between the input camera, the model's square crop and the synthesized views."""

from __future__ import annotations

import math

from sensor_msgs.msg import CameraInfo

from tinyldm_ros.preprocess import CropBox, square_box_around


def training_fov_box(width: int, height: int, info: CameraInfo, fov_deg: float) -> CropBox:
    """The square around the principal point whose horizontal field of view is `fov_deg`.

    Raises ValueError (the reason) when `info` does not describe this image or gives no usable focal
    length; the caller falls back to a centre crop.
    """
    fx, cx, cy = info.k[0], info.k[2], info.k[5]
    if (info.width, info.height) != (width, height):
        raise ValueError(f"camera_info is {info.width}x{info.height} but the image is {width}x{height}")
    if not (math.isfinite(fx) and fx > 0 and math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError(f"camera_info has no usable intrinsics (fx {fx}, cx {cx}, cy {cy})")
    side = round(2.0 * fx * math.tan(math.radians(fov_deg) / 2.0))
    if not 1 <= side <= 4 * max(width, height):
        raise ValueError(f"a {fov_deg:g} deg crop with fx {fx:g} would be {side} px wide")
    return square_box_around(cx, cy, side)


def view_camera_info(size: int, fov_deg: float, header) -> CameraInfo:
    """Intrinsics of a synthesized view: a size x size pinhole camera with the training field of view."""
    f = size / 2.0 / math.tan(math.radians(fov_deg) / 2.0)
    c = size / 2.0
    info = CameraInfo()
    info.header = header
    info.width = info.height = size
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [f, 0.0, c, 0.0, f, c, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, c, 0.0, 0.0, f, c, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info
