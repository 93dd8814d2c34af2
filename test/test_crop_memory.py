"""The crop's time and memory follow the image, not the focal length camera_info claims."""

import time
import tracemalloc

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from tinyldm_ros.conversions import numpy_to_image
from tinyldm_ros.image_preparation import prepare_image
from tinyldm_ros.preprocess import area_resize, crop, crop_and_resize, to_float_rgb


def _info(width: int, height: int, fx: float) -> CameraInfo:
    info = CameraInfo()
    info.width, info.height = width, height
    info.k = [fx, 0.0, width / 2.0, 0.0, fx, height / 2.0, 0.0, 0.0, 1.0]
    return info


def _peak_mb_and_ms(fn) -> tuple[float, float]:
    fn()
    tracemalloc.start()
    t0 = time.perf_counter()
    fn()
    ms = (time.perf_counter() - t0) * 1e3
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak, ms


@pytest.mark.parametrize("channels, dtype", [(3, np.uint8), (4, np.uint8), (1, np.uint16), (3, np.float32)])
@pytest.mark.parametrize("box", [(-10, -5, 90), (20, 10, 100), (-300, -300, 100), (-7, 3, 41)])
def test_box_past_the_image_equals_the_padded_crop(channels, dtype, box) -> None:
    """The bounded path gives what building the white-padded box and area-resizing it gives."""
    rng = np.random.default_rng(0)
    img = rng.random((50, 70, channels)) * (1.2 if dtype == np.float32 else np.iinfo(dtype).max)
    img = img.astype(dtype)
    expected = area_resize(to_float_rgb(crop(img, box)), 16)
    np.testing.assert_allclose(crop_and_resize(img, 16, box), expected, atol=1e-6)


def test_memory_and_time_do_not_grow_with_the_focal_length() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    msg = numpy_to_image(rgb, "rgb8")
    short = _peak_mb_and_ms(lambda: prepare_image(msg, _info(1920, 1080, 1500.0), 32, 52.0))
    long = _peak_mb_and_ms(lambda: prepare_image(msg, _info(1920, 1080, 7872.0), 32, 52.0))
    print(f"fx 1500: {short[0]:.1f} MB {short[1]:.1f} ms; fx 7872: {long[0]:.1f} MB {long[1]:.1f} ms")
    # The padded 7679 px box as a float image would be 700 MB; the image's float copy is 24 MB.
    assert long[0] < 40.0 and long[0] < 1.5 * short[0] + 1.0
    # A 4096x1 mono8 image (4 KB) with a long lens: the 16384 px box is never built.
    thin = numpy_to_image(np.full((1, 4096), 128, np.uint8), "mono8")
    peak, _ = _peak_mb_and_ms(lambda: prepare_image(thin, _info(4096, 1, 4096 * 4 / 0.9755), 32, 52.0))
    assert peak < 8.0, peak  # was ~4 GB: the box as float


def test_camera_info_beyond_the_bound_is_refused_with_a_reason() -> None:
    msg = numpy_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8")
    prepared = prepare_image(msg, _info(64, 48, 1e6), 32, 52.0)
    assert "would be" in prepared.centre_crop_because and prepared.crop.shape == (32, 32, 3)
