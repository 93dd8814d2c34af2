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


# The layout code of ROS 2 cv_bridge's CvBridge.imgmsg_to_cv2 (vision_opencv, humble..rolling): it
# sizes rows as int(step / itemsize / channels) pixels with default strides, so a `step` that is not
# a whole number of pixels shifts every row. cv_bridge cannot be installed here; this file stands in
# for it on a system ROS install, where it is importable.
_ROS2_CV_BRIDGE = """
import sys
import numpy as np

_ENC = {"rgb8": (np.uint8, 3), "rgb16": (np.uint16, 3), "mono8": (np.uint8, 1)}


class CvBridge:
    def imgmsg_to_cv2(self, img_msg, desired_encoding="passthrough"):
        dtype, n_channels = _ENC[img_msg.encoding]
        dtype = np.dtype(dtype).newbyteorder(">" if img_msg.is_bigendian else "<")
        buf = np.asarray(img_msg.data, dtype=np.uint8)
        shape = (img_msg.height, int(img_msg.step / dtype.itemsize / n_channels), n_channels)
        im = np.ndarray(shape=shape, dtype=dtype, buffer=buf)
        im = np.ascontiguousarray(im[: img_msg.height, : img_msg.width, :])
        if img_msg.is_bigendian == (sys.byteorder == "little"):
            im = im.byteswap().newbyteorder()
        return im
"""

_DECODE_PADDED = """
import numpy as np
from tinyldm_ros.conversions import image_to_numpy, numpy_to_image
array = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
msg = numpy_to_image(array, "rgb8")
msg.step = 16  # rows padded to 4 bytes: 15 bytes of pixels + 1
rows = np.zeros((3, 16), np.uint8)
rows[:, :15] = array.reshape(3, 15)
msg.data = rows.tobytes()
decoded, _ = image_to_numpy(msg)
assert np.array_equal(decoded, array), decoded
"""


def test_decoding_does_not_depend_on_an_importable_cv_bridge(tmp_path) -> None:
    """A system ROS install has cv_bridge; images whose rows are padded by a partial pixel must still
    decode right there (the node's own numpy decoder honours `step`)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "cv_bridge").mkdir()
    (tmp_path / "cv_bridge" / "__init__.py").write_text(_ROS2_CV_BRIDGE)
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run(
        [sys.executable, "-c", _DECODE_PADDED], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
