"""tinyldm_ros.object_isolation: each unusable cue becomes one named problem (its cause, and its kind
where one cause has several, for the node's per-kind log) and the next cue is used."""

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


def test_mask_and_depth_aim_at_the_centre_of_the_object_in_3d() -> None:
    """A box 2 m ahead whose front face is the mask: the camera aims at the face's centre in 3D (its
    footprint seen from level is the face itself) and the distance is that centre's."""
    depth = np.full((H, W), 3000, np.uint16)  # background 3 m
    depth[_mask() > 0] = 2000  # the object's surface 2 m away
    iso = isolate(ObjectCues(numpy_to_image(_mask(), "mono8"), numpy_to_image(depth, "16UC1")), W, H, K)
    assert iso.source == "mask" and not iso.problems
    # the face spans columns 50-70 and rows 10-30: its middle (60, 20) is 20 px right and 10 px up
    centre = np.array([(60 - W / 2) / 60.0 * 2.0, (20 - H / 2) / 60.0 * 2.0, 2.0])
    np.testing.assert_allclose(iso.view[:3, 2], centre / np.linalg.norm(centre), atol=0.01)
    assert iso.distance == pytest.approx(np.linalg.norm(centre), rel=0.01)
    metres = numpy_to_image(depth.astype(np.float32) / 1000, "32FC1")
    same = isolate(ObjectCues(numpy_to_image(_mask(), "mono8"), metres), W, H, K)
    assert same.distance == pytest.approx(iso.distance, rel=1e-6)


def test_roi_and_depth_take_the_median_of_the_box_middle_times_the_surface_factor() -> None:
    depth = np.full((H, W), 2000, np.uint16)
    roi = RegionOfInterest(x_offset=30, y_offset=24, width=21, height=12)
    iso = isolate(ObjectCues(depth=numpy_to_image(depth, "16UC1"), roi=roi), W, H, K)
    assert iso.source == "roi" and not iso.problems
    # the middle ninth of the box: columns 37-43, rows 28-31, all about on the optical axis
    v, u = np.mgrid[28:32, 37:44]
    rays = 2.0 * np.hypot(1.0, np.hypot((u + 0.5 - W / 2) / 60.0, (v + 0.5 - H / 2) / 60.0))
    assert iso.distance == pytest.approx(np.median(rays) * SURFACE_TO_CENTRE, rel=1e-6)


def _short_data(msg):
    msg.data = bytes(msg.data)[:-1]
    return msg


@pytest.mark.parametrize(
    "mask, cause, kind",
    [
        (numpy_to_image(np.zeros((H, W), np.uint8), "mono8"), "mask_empty", ""),
        (numpy_to_image(np.full((H // 2, W), 255, np.uint8), "mono8"), "mask", "shape"),
        (numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8"), "mask", "encoding"),
        (_short_data(numpy_to_image(np.zeros((H, W), np.uint8), "mono8")), "mask", "data_length"),
    ],
)
def test_an_unusable_mask_falls_back_to_the_roi(mask, cause, kind) -> None:
    iso = isolate(ObjectCues(mask=mask, roi=_roi(0, 0, 20, 20)), W, H, K)
    assert [(p.cause, p.kind) for p in iso.problems] == [(cause, kind)] and iso.source == "roi"
    assert iso.view[0, 2] < 0  # the ROI is left of the principal point


def test_roi_outside_the_image_falls_back_to_the_detection_then_the_principal_point() -> None:
    iso = isolate(ObjectCues(roi=_roi(W + 5, 0, 10, 10), box=(20.0, 30.0, 10.0, 10.0)), W, H, K)
    assert [p.cause for p in iso.problems] == ["roi"] and iso.source == "detection"
    iso = isolate(ObjectCues(roi=_roi(W + 5, 0, 10, 10)), W, H, K)
    assert iso.source == "" and iso.alpha is None and np.array_equal(iso.view, np.eye(4))
    # 0 x 0 is "not set" (sensor_msgs/RegionOfInterest): no cue, no complaint
    assert not isolate(ObjectCues(roi=_roi(0, 0, 0, 0)), W, H, K).problems


@pytest.mark.parametrize(
    "depth, message, kind",
    [
        (numpy_to_image(np.zeros((H, W), np.uint16), "16UC1"), "no valid reading", "no_reading"),
        (numpy_to_image(np.full((H, W), np.nan, np.float32), "32FC1"), "no valid reading", "no_reading"),
        (numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8"), "unsupported encoding", "encoding"),
        (numpy_to_image(np.ones((H, W + 1), np.float32), "32FC1"), "the image", "shape"),
        # a depth in the wrong unit (mm as metres) or of the far wall: not a distance to scale poses by
        (numpy_to_image(np.full((H, W), 1e5, np.float32), "32FC1"), "outside [0.01, 1000] m", "range"),
        (numpy_to_image(np.full((H, W), 1e-3, np.float32), "32FC1"), "outside [0.01, 1000] m", "range"),
    ],
)
def test_unusable_depth_leaves_the_distance_to_the_parameter(depth, message, kind) -> None:
    iso = isolate(ObjectCues(mask=numpy_to_image(_mask(), "mono8"), depth=depth), W, H, K)
    assert iso.distance is None and iso.source == "mask"
    assert [(p.cause, p.kind) for p in iso.problems] == [("depth", kind)] and message in iso.problems[
        0
    ].message


def test_far_off_axis_object_keeps_the_input_camera() -> None:
    K_wide = intrinsics_matrix(10.0, 10.0, W / 2, H / 2)  # 150 deg: the corner is 70 deg off-axis
    iso = isolate(ObjectCues(mask=numpy_to_image(_mask(75, 0, 80, 5), "mono8")), W, H, K_wide)
    assert [p.cause for p in iso.problems] == ["off_axis"] and np.array_equal(iso.view, np.eye(4))
    assert iso.alpha is not None  # the background is still whitened


def test_grabcut_finds_a_rendered_car_in_its_box_on_a_photograph() -> None:
    """ROI only: OpenCV's GrabCut separates the car from a real photo inside and around the box."""
    import skimage.data
    from scene_render import render

    from tinyldm_ros.object_crop import grabcut_mask
    from tinyldm_ros.poses import sphere_pose
    from training.objects.cars import sample_car
    from training.tiny_renderer import Camera, TinyRenderer

    with TinyRenderer() as renderer:
        renderer.set_scene(sample_car(np.random.default_rng(11)))
        rgb, mask, _ = render(renderer, sphere_pose(1.3, 30.0, 20.0), Camera(200.0, 160.0, 120.0, 320, 240))
    photo = skimage.data.coffee()[:240, :320]
    scene = np.where(mask[..., None], rgb, photo)
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1))
    found = grabcut_mask(scene, box)
    iou = (found & mask).sum() / (found | mask).sum()
    box_iou = mask.sum() / (box[2] * box[3])  # what the plain box would score
    print(f"GrabCut IoU {iou:.2f}, box IoU {box_iou:.2f}")
    assert iou > 0.8 and iou > box_iou + 0.1
