"""sensor_msgs/Image <-> numpy: the one place the node converts images.

Decoding validates everything a camera driver can get wrong (encoding, size, step, data length)
before it touches the bytes, so a bad message becomes an `ImageConversionError` that names the
problem instead of a numpy error deep inside the engine.

The decoding is plain numpy on every install. cv_bridge is deliberately not used even where it is
importable (a system ROS install): its Python `imgmsg_to_cv2` sizes rows as whole pixels with default
strides, so a `step` padded by part of a pixel (e.g. rgb8 rows aligned to 4 bytes) shifts every row,
and its big-endian path calls `ndarray.newbyteorder`, gone in NumPy 2. `rosbags-image` does not fit
either: it imports OpenCV at module import (not a dependency here) and ignores `step` too.
"""

from __future__ import annotations

import sys

import numpy as np
from sensor_msgs.msg import Image

# encoding -> (channels, dtype); all the encodings the node accepts.
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "8UC3": (3, np.dtype(np.uint8)),
    "rgb16": (3, np.dtype(np.uint16)),
    "bgr16": (3, np.dtype(np.uint16)),
    "rgba16": (4, np.dtype(np.uint16)),
    "bgra16": (4, np.dtype(np.uint16)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
}
# Object masks from a segmentation node: any single-channel 8-bit or bool-like image (non-zero = object).
MASK_ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "8SC1": (1, np.dtype(np.int8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
}
# Depth aligned to the colour image, REP 118: 16UC1 in millimetres or 32FC1 in metres.
DEPTH_ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "16UC1": (1, np.dtype(np.uint16)),
    "mono16": (1, np.dtype(np.uint16)),
    "32FC1": (1, np.dtype(np.float32)),
}
# Larger than any camera; guards against a header that claims a gigapixel image.
MAX_SIDE = 16384


class ImageConversionError(ValueError):
    """A sensor_msgs/Image that cannot be decoded; the message names the problem and `cause` its kind
    (encoding, size, step, data_length), so that a log throttled per cause shows every kind."""

    def __init__(self, message: str, cause: str = "image") -> None:
        super().__init__(message)
        self.cause = cause


def check_image(msg: Image, encodings: dict[str, tuple[int, np.dtype]] = ENCODINGS) -> tuple[int, np.dtype]:
    """Validate an Image message's header against its data in O(1): (channels, dtype) or raise.

    Raises ImageConversionError for an unsupported encoding, a zero or huge size, a step shorter than
    a row, or data whose length does not match height * step.
    """
    encoding = msg.encoding
    if encoding not in encodings:
        raise ImageConversionError(
            f"unsupported encoding {encoding!r} (supported: {', '.join(sorted(encodings))})", "encoding"
        )
    channels, dtype = encodings[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageConversionError(f"empty image ({width}x{height})", "size")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageConversionError(f"image too large ({width}x{height}, limit {MAX_SIDE} per side)", "size")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is shorter than a row of {width} {encoding} pixels ({row_bytes})", "step"
        )
    if step % dtype.itemsize:
        raise ImageConversionError(f"step {step} is not a multiple of the {encoding} sample size", "step")
    size = len(msg.data)
    if size != height * step:
        raise ImageConversionError(
            f"data has {size} bytes, expected height * step = {height} * {step}", "data_length"
        )
    return channels, dtype


def image_to_numpy(
    msg: Image, encodings: dict[str, tuple[int, np.dtype]] = ENCODINGS
) -> tuple[np.ndarray, str]:
    """Decode an Image message to an (H, W, C) array in native byte order, without copying if possible.

    Returns the array and its channel order: "rgb", "bgr", "rgba", "bgra" or "mono" (C = 1).
    Raises ImageConversionError (see check_image) for a message that does not describe its data.
    """
    channels, dtype = check_image(msg, encodings)
    encoding, data = msg.encoding, msg.data
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    order = _channel_order(encoding)
    buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
    rows = buffer.reshape(height, step)[:, :row_bytes]  # drop row padding
    array = rows.view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    array = array.reshape(height, width, channels)
    if array.dtype.byteorder not in ("=", "|") and array.dtype.byteorder != _NATIVE:
        array = array.astype(dtype)  # swap into native order for everything downstream
    return array, order


def mask_to_numpy(msg: Image) -> np.ndarray:
    """A mask message (MASK_ENCODINGS) -> (H, W) bool, non-zero = object; ImageConversionError else."""
    array, _ = image_to_numpy(msg, MASK_ENCODINGS)
    return array[..., 0] != 0


def depth_to_metres(msg: Image) -> np.ndarray:
    """A depth message (DEPTH_ENCODINGS) -> (H, W) float32 metres; 0 / NaN stay (no reading)."""
    array, _ = image_to_numpy(msg, DEPTH_ENCODINGS)
    if array.dtype == np.uint16:
        return array[..., 0].astype(np.float32) * np.float32(1e-3)
    return array[..., 0].astype(np.float32, copy=False)


def to_rgb(array: np.ndarray, order: str) -> np.ndarray:
    """Channel-reorder a decoded image to RGB (alpha dropped, mono replicated); dtype unchanged."""
    if order == "rgb":
        return array
    if order == "bgr":
        return array[..., ::-1]
    if order == "rgba":
        return array[..., :3]
    if order == "bgra":
        return array[..., 2::-1]
    return np.repeat(array[..., :1], 3, axis=2)


def numpy_to_image(array: np.ndarray, encoding: str = "rgb8", header=None) -> Image:
    """Encode an (H, W, C) or (H, W) array as an Image message (little-endian, no padding); any
    encoding of ENCODINGS, MASK_ENCODINGS or DEPTH_ENCODINGS."""
    table = {**DEPTH_ENCODINGS, **MASK_ENCODINGS, **ENCODINGS}
    if encoding not in table:
        raise ImageConversionError(f"unsupported encoding {encoding!r}")
    channels, dtype = table[encoding]
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] != channels or array.dtype != dtype:
        raise ImageConversionError(
            f"array of shape {array.shape} and dtype {array.dtype} does not fit {encoding!r} "
            f"({channels} channel(s) of {dtype})"
        )
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels * dtype.itemsize
    # Assigning bytes keeps rclpy from iterating element by element (array('B') fast path).
    msg.data = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).tobytes()
    return msg


def _channel_order(encoding: str) -> str:
    if encoding.startswith(("mono", "8UC1", "8SC1", "16UC1", "32FC1")):
        return "mono"
    if encoding == "8UC3":
        return "bgr"  # OpenCV's default order for untyped 3-channel images
    return encoding.rstrip("0123456789")


_NATIVE = "<" if sys.byteorder == "little" else ">"
