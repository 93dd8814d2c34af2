"""sensor_msgs/Image <-> numpy: encodings, row padding, byte order, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "sensor_msgs", reason="sensor_msgs missing: no ROS 2 in this environment (run `make setup`)"
)

from tinyldm_ros.conversions import (  # noqa: E402
    ENCODINGS,
    ImageConversionError,
    image_to_numpy,
    numpy_to_image,
    to_rgb,
)


def _array(encoding: str, h: int = 5, w: int = 7) -> np.ndarray:
    channels, dtype = ENCODINGS[encoding]
    rng = np.random.default_rng(1)
    return rng.integers(0, np.iinfo(dtype).max, (h, w, channels), endpoint=True).astype(dtype)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding: str) -> None:
    array = _array(encoding)
    decoded, _ = image_to_numpy(numpy_to_image(array, encoding))
    assert decoded.dtype == array.dtype and np.array_equal(decoded, array)


def test_padded_rows_and_big_endian_16_bit() -> None:
    array = _array("rgb16")
    msg = numpy_to_image(array, "rgb16")
    msg.is_bigendian = 1
    msg.step = array.shape[1] * 6 + 10  # 10 bytes of padding per row
    rows = np.zeros((array.shape[0], msg.step), np.uint8)
    rows[:, : array.shape[1] * 6] = array.astype(">u2").view(np.uint8).reshape(array.shape[0], -1)
    msg.data = rows.tobytes()
    decoded, order = image_to_numpy(msg)
    assert order == "rgb" and decoded.dtype.byteorder in ("=", "<") and np.array_equal(decoded, array)


def test_channel_orders_to_rgb() -> None:
    rgb = _array("rgb8")
    bgra = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2)
    assert np.array_equal(to_rgb(*image_to_numpy(numpy_to_image(bgra, "bgra8"))), rgb)
    mono = to_rgb(*image_to_numpy(numpy_to_image(rgb[..., :1], "mono8")))
    assert mono.shape == rgb.shape and np.array_equal(mono[..., 2], rgb[..., 0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoding": "yuv422"}, "unsupported encoding 'yuv422'"),
        ({"height": 0}, "empty image"),
        ({"step": 3}, "step 3 is shorter than a row"),
        ({"data": b""}, "data has 0 bytes"),
        ({"width": 8}, "shorter than a row"),
        ({"height": 10**6}, "too large"),
    ],
)
def test_bad_messages_raise_a_clear_error(change: dict, message: str) -> None:
    msg = numpy_to_image(_array("rgb8"), "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageConversionError, match=message):
        image_to_numpy(msg)


def test_numpy_to_image_refuses_a_mismatched_array() -> None:
    with pytest.raises(ImageConversionError, match="does not fit 'mono16'"):
        numpy_to_image(_array("rgb8"), "mono16")
