"""nvs_node with object inputs over real DDS: image + mask + depth from a client node give the views
the engine gives on the same isolated crop; late, missing and bad inputs fall back as documented."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: no ROS 2 in this environment (run `make setup`)")
pytest.importorskip("tinyldm_ros.msg", reason="tinyldm_ros interfaces not built: run `make setup`")

from node_harness import TINY_MODEL, Harness, wait_for  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from scene_render import camera_info, render  # noqa: E402
from sensor_msgs.msg import Image, RegionOfInterest  # noqa: E402
from tinyldm_ros.msg import SynthesizedViews  # noqa: E402

from tinyldm_ros.conversions import image_to_numpy, numpy_to_image  # noqa: E402
from tinyldm_ros.engine import Engine  # noqa: E402
from tinyldm_ros.image_preparation import model_poses, prepare_image  # noqa: E402
from tinyldm_ros.object_isolation import ObjectCues  # noqa: E402
from tinyldm_ros.poses import look_at, sphere_pose  # noqa: E402
from tinyldm_ros.targets import orbit_targets  # noqa: E402
from training.objects.cars import sample_car  # noqa: E402
from training.tiny_renderer import Camera, TinyRenderer  # noqa: E402

_ns = itertools.count()
pytestmark = pytest.mark.usefixtures("ros_context")
WIDE = Camera(180.0, 160.0, 120.0, 320, 240)


@pytest.fixture(scope="module")
def scene():
    """A car 2.6 m (twice the training radius) from a camera aimed 0.5 m to its right: off-centre."""
    with TinyRenderer() as renderer:
        renderer.set_scene(sample_car(np.random.default_rng(3)))
        c2w = sphere_pose(1.3, 30.0, 15.0)
        c2w = look_at(c2w[:3, 3], c2w[:3, 0] * 0.5, up=(0, 0, 1))
        rgb, mask, depth = render(renderer, c2w, WIDE)
    background = np.random.default_rng(0).integers(0, 256, rgb.shape, dtype=np.uint8)
    rgb = np.where(mask[..., None], rgb, background)  # clutter behind the car
    return rgb, mask, depth * 2.0  # the same picture of a car twice the size, twice as far


def _stamped(msg: Image, t: float, frame_id: str = "camera_optical") -> Image:
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int((t % 1) * 1e9)
    return msg


class ObjectPublisher:
    def __init__(self, h: Harness) -> None:
        qos = qos_profile_sensor_data
        self.mask = h.client.create_publisher(Image, "mask", qos)
        self.depth = h.client.create_publisher(Image, "depth", qos)
        self.roi = h.client.create_publisher(RegionOfInterest, "roi", qos)
        for pub in (self.mask, self.depth, self.roi, h.info_pub):
            h.wait_connected(pub)


def _expected(node, rgb, mask_msg, depth_msg, info):
    """What the node should publish, computed here with the same modules and a fresh engine."""
    cfg = node.cfg
    image = prepare_image(
        numpy_to_image(rgb, "rgb8"), info, 32, cfg.training_fov_deg, ObjectCues(mask_msg, depth_msg)
    )
    targets = orbit_targets(cfg.orbit_azimuths_deg, [], image.object_distance, None, image.view)
    engine = Engine(TINY_MODEL)
    rel = model_poses(
        np.stack([t.pose for t in targets]), image, engine.info.training_radius, image.object_distance
    )
    views = engine.synthesize(
        image.pixels, rel, steps=cfg.steps, seed=cfg.seed, guidance=cfg.guidance, temperature=cfg.temperature
    )
    return image, views


def test_image_mask_and_depth_give_the_engine_views_of_the_isolated_crop(scene) -> None:
    rgb, mask, depth = scene
    h = Harness(f"/nvs_obj_{next(_ns)}", orbit_azimuths_deg=[90.0, 200.0], steps=2)
    try:
        out = h.record(SynthesizedViews, "synthesized_views")
        pubs = ObjectPublisher(h)
        h.wait_outputs_matched()
        info = camera_info(WIDE)
        info.header.frame_id = "camera_optical"
        h.info_pub.publish(info)
        assert wait_for(lambda: h.node._latest_info is not None)
        mask_msg = numpy_to_image(mask.astype(np.uint8) * 255, "mono8")
        depth_msg = numpy_to_image(np.round(depth * 1000).astype(np.uint16), "16UC1")
        t = time.time()
        pubs.mask.publish(_stamped(mask_msg, t))
        pubs.depth.publish(_stamped(depth_msg, t))
        time.sleep(0.05)
        h.image_pub.publish(_stamped(numpy_to_image(rgb, "rgb8"), t))
        assert wait_for(lambda: out, 15.0)
        result = out[-1][1]
        image, views = _expected(h.node, rgb, mask_msg, depth_msg, info)
        crop, _ = image_to_numpy(result.input_crop)
        assert np.array_equal(crop, image.crop)
        assert image.isolated_by == "mask" and result.object_distance == pytest.approx(image.object_distance)
        # the car's centre is 2.6 m away; the surface-to-centre factor is a mean over cars (+-8 %)
        assert image.object_distance == pytest.approx(2.6, rel=0.15)
        for view_msg, view in zip(result.views, views, strict=True):
            assert np.array_equal(image_to_numpy(view_msg)[0], view)
        # The isolated crop is the car on white: its corners are white, not the clutter.
        assert crop[:3, :3].min() > 240 and crop[-3:, -3:].min() > 240

        # A mask 50 ms late (a slow segmentation): the worker waits for it (object_wait_s 0.1 s).
        t2 = time.time()
        before = len(out)
        h.image_pub.publish(_stamped(numpy_to_image(rgb, "rgb8"), t2))
        time.sleep(0.05)
        pubs.mask.publish(_stamped(mask_msg, t2))
        pubs.depth.publish(_stamped(depth_msg, t2))
        assert wait_for(lambda: len(out) > before, 15.0)
        assert np.array_equal(image_to_numpy(out[-1][1].input_crop)[0], image.crop)

        # They stop coming: after object_wait_s the frame goes on without them, logged per cause.
        before = len(out)
        h.image_pub.publish(_stamped(numpy_to_image(rgb, "rgb8"), time.time()))
        assert wait_for(lambda: len(out) > before, 15.0)
        plain = prepare_image(numpy_to_image(rgb, "rgb8"), info, 32, h.node.cfg.training_fov_deg)
        assert np.array_equal(image_to_numpy(out[-1][1].input_crop)[0], plain.crop)
        assert h.node.stats.rejected["mask_late"] >= 1 and h.node.stats.rejected["depth_late"] >= 1
    finally:
        h.close()


def test_fuzzed_object_inputs_are_logged_and_the_node_keeps_up(scene) -> None:
    rgb, mask, depth = scene
    h = Harness(
        f"/nvs_obj_{next(_ns)}", orbit_azimuths_deg=[90.0], steps=1, log_throttle_s=60.0, object_wait_s=0.02
    )
    try:
        out = h.record(SynthesizedViews, "synthesized_views")
        lines = h.record_log()
        pubs = ObjectPublisher(h)
        h.wait_outputs_matched()
        info = camera_info(WIDE)
        h.info_pub.publish(info)
        assert wait_for(lambda: h.node._latest_info is not None)
        H, W = mask.shape
        good_mask = numpy_to_image(mask.astype(np.uint8), "mono8")
        bad_masks = [
            numpy_to_image(np.zeros((H, W), np.uint8), "mono8"),  # empty
            numpy_to_image(np.ones((H // 2, W), np.uint8), "mono8"),  # wrong size
            numpy_to_image(np.ones((H, W, 3), np.uint8), "rgb8"),  # wrong encoding
        ]
        bad_depths = [
            numpy_to_image(np.zeros((H, W), np.uint16), "16UC1"),  # no reading
            numpy_to_image(np.full((H, W), np.nan, np.float32), "32FC1"),
            numpy_to_image(np.ones((H, W, 3), np.uint8), "bgr8"),
        ]
        rng = np.random.default_rng(0)
        sent = 0
        for i in range(24):
            t = time.time()
            pubs.mask.publish(_stamped(bad_masks[i % 3] if i % 2 else good_mask, t))
            pubs.depth.publish(_stamped(bad_depths[(i // 2) % 3], t))
            x = int(rng.integers(W, 2 * W))
            pubs.roi.publish(RegionOfInterest(x_offset=x, y_offset=0, width=10, height=10))  # outside
            h.image_pub.publish(_stamped(numpy_to_image(rgb, "rgb8"), t))
            sent += 1
            time.sleep(0.06)
        assert wait_for(lambda: h.node._queue.slot is None and len(out) >= sent // 2, 20.0)
        rejected = h.node.stats.rejected
        for cause in ("mask", "mask_empty", "depth", "roi"):
            assert rejected[cause] >= 1, (cause, dict(rejected))
        # Each kind of bad mask and depth has its own throttled log line (log_throttle_s 60): a second
        # kind is not hidden behind the first; the count stays under the cause.
        keys = ("mask_shape", "mask_encoding", "mask_empty", "depth_no_reading", "depth_encoding", "roi")
        assert wait_for(lambda: all(any(f"[{k}]" in line for line in lines) for k in keys), 10.0), lines
        for key in keys:
            assert sum(f"[{key}]" in line for line in lines) == 1, (key, lines)
        assert rejected.get("internal", 0) == 0 and h.node._worker.is_alive()
    finally:
        h.close()
