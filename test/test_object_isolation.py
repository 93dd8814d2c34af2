"""tinyldm_ros.object_isolation: each unusable cue becomes one named problem and the next cue is used."""

import numpy as np
import pytest
from sensor_msgs.msg import RegionOfInterest

from tinyldm_ros.conversions import numpy_to_image
from tinyldm_ros.object_isolation import SURFACE_TO_CENTRE, ObjectCues, isolate
from tinyldm_ros.virtual_camera import intrinsics_matrix

W, H = 80, 60
K = intrinsics_matrix(60.0, 60.0, W / 2, H / 2)


def _mask(x0=50, y0=10, x1=70, y1=30) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 255
    return m


def _roi(x, y, w, h) -> RegionOfInterest:
    return RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h)


def test_a_mask_aims_the_camera_at_its_pixels_and_depth_gives_the_centre_distance() -> None:
    depth = np.full((H, W), 3000, np.uint16)  # background 3 m
    depth[_mask() > 0] = 2000  # the object's surface 2 m away
    iso = isolate(ObjectCues(numpy_to_image(_mask(), "mono8"), numpy_to_image(depth, "16UC1")), W, H, K)
    assert iso.source == "mask" and not iso.problems
    ray = iso.view[:3, 2]
    assert ray[0] > 0.2 and ray[1] < -0.1  # right of and above the principal point
    # median ray distance (not z) of the masked pixels, times the surface-to-centre factor
    v, u = np.nonzero(_mask())
    rays = 2.0 * np.hypot(1.0, np.hypot((u + 0.5 - W / 2) / 60.0, (v + 0.5 - H / 2) / 60.0))
    assert iso.distance == pytest.approx(np.median(rays) * SURFACE_TO_CENTRE, rel=1e-6)
    metres = numpy_to_image(depth.astype(np.float32) / 1000, "32FC1")
    assert isolate(ObjectCues(numpy_to_image(_mask(), "mono8"), metres), W, H, K).distance == pytest.approx(
        iso.distance, rel=1e-6
    )


@pytest.mark.parametrize(
    "mask, cause",
    [
        (numpy_to_image(np.zeros((H, W), np.uint8), "mono8"), "mask_empty"),
        (numpy_to_image(np.full((H // 2, W), 255, np.uint8), "mono8"), "mask"),
        (numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8"), "mask"),
    ],
)
def test_an_unusable_mask_falls_back_to_the_roi(mask, cause) -> None:
    iso = isolate(ObjectCues(mask=mask, roi=_roi(0, 0, 20, 20)), W, H, K)
    assert [c for c, _ in iso.problems] == [cause] and iso.source == "roi"
    assert iso.view[0, 2] < 0  # the ROI is left of the principal point


def test_roi_outside_the_image_falls_back_to_the_detection_then_the_principal_point() -> None:
    iso = isolate(ObjectCues(roi=_roi(W + 5, 0, 10, 10), box=(20.0, 30.0, 10.0, 10.0)), W, H, K)
    assert [c for c, _ in iso.problems] == ["roi"] and iso.source == "detection"
    iso = isolate(ObjectCues(roi=_roi(W + 5, 0, 10, 10)), W, H, K)
    assert iso.source == "" and iso.alpha is None and np.array_equal(iso.view, np.eye(4))
    # 0 x 0 is "not set" (sensor_msgs/RegionOfInterest): no cue, no complaint
    assert not isolate(ObjectCues(roi=_roi(0, 0, 0, 0)), W, H, K).problems


@pytest.mark.parametrize(
    "depth, message",
    [
        (numpy_to_image(np.zeros((H, W), np.uint16), "16UC1"), "no valid reading"),
        (numpy_to_image(np.full((H, W), np.nan, np.float32), "32FC1"), "no valid reading"),
        (numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8"), "unsupported encoding"),
        (numpy_to_image(np.ones((H, W + 1), np.float32), "32FC1"), "the image"),
    ],
)
def test_unusable_depth_leaves_the_distance_to_the_parameter(depth, message) -> None:
    iso = isolate(ObjectCues(mask=numpy_to_image(_mask(), "mono8"), depth=depth), W, H, K)
    assert iso.distance is None and iso.source == "mask"
    assert len(iso.problems) == 1 and iso.problems[0][0] == "depth" and message in iso.problems[0][1]


def test_far_off_axis_object_keeps_the_input_camera() -> None:
    K_wide = intrinsics_matrix(10.0, 10.0, W / 2, H / 2)  # 150 deg: the corner is 70 deg off-axis
    iso = isolate(ObjectCues(mask=numpy_to_image(_mask(75, 0, 80, 5), "mono8")), W, H, K_wide)
    assert [c for c, _ in iso.problems] == ["off_axis"] and np.array_equal(iso.view, np.eye(4))
    assert iso.alpha is not None  # the background is still whitened
