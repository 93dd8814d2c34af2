"""nvs_node over real DDS: images in, one view per target out, encodings, laziness, parameters."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: no ROS 2 in this environment (run `make setup`)")
pytest.importorskip(
    "tinyldm_ros.msg", reason="tinyldm_ros interfaces not built: run `make setup` (colcon build)"
)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Pose, PoseArray  # noqa: E402
from node_harness import Harness, camera_info_for, random_image, wait_for  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from tinyldm_ros.msg import SynthesizedViews  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from tinyldm_ros.conversions import image_to_numpy, numpy_to_image  # noqa: E402
from tinyldm_ros.targets import orbit_name  # noqa: E402

_ns = itertools.count()


pytestmark = pytest.mark.usefixtures("ros_context")


@pytest.fixture
def harness(request):
    params = getattr(request, "param", {})
    h = Harness(f"/nvs_test_{next(_ns)}", **params)
    yield h
    h.close()


ORBIT = {"orbit_azimuths_deg": [30.0, -90.0], "orbit_elevations_deg": [0.0, 15.0], "steps": 2}


@pytest.mark.parametrize("harness", [ORBIT], indirect=True)
def test_image_in_one_view_per_target_out_with_frames_and_stamps(harness: Harness) -> None:
    names = [orbit_name(30, 0), orbit_name(-90, 15)]
    per_target = {n: harness.record(Image, f"views/{n}") for n in names}
    infos = harness.record(CameraInfo, f"views/{names[0]}/camera_info")
    combined = harness.record(SynthesizedViews, "synthesized_views")
    harness.wait_outputs_matched()
    sent = harness.publish_image(random_image(), stamp_s=1234.5)
    assert wait_for(lambda: combined and all(per_target.values()) and infos), "no views came back"

    _, result = combined[0]
    assert result.header.stamp == sent.header.stamp and result.header.frame_id == "camera_optical"
    assert list(result.target_names) == names
    assert len(result.views) == len(result.poses) == 2
    size = harness.node.engine.info.image_size
    for name in names:
        _, view = per_target[name][0]
        assert view.header.frame_id == name and view.header.stamp == sent.header.stamp
        array, order = image_to_numpy(view)
        assert array.shape == (size, size, 3) and order == "rgb"
    # The orbit poses keep the object centre (object_distance ahead) in view at the same distance.
    for pose in result.poses:
        p = np.array([pose.position.x, pose.position.y, pose.position.z])
        assert np.linalg.norm(p - [0, 0, result.object_distance]) == pytest.approx(result.object_distance)
    assert result.synthesis_ms > 0 and result.total_ms >= result.synthesis_ms
    assert result.provider == "CPUExecutionProvider"
    crop, _ = image_to_numpy(result.input_crop)
    assert crop.shape == (size, size, 3)
    # The view's camera_info (for RViz's Camera display): same frame and stamp, the training FOV.
    info = infos[0][1]
    assert info.header.frame_id == names[0] and info.header.stamp == sent.header.stamp
    fov = 2 * np.degrees(np.arctan(info.width / 2 / info.k[0]))
    assert info.width == size and fov == pytest.approx(harness.node.cfg.training_fov_deg)


ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "rgb16", "bgr16", "rgba16", "bgra16", "mono16"]


@pytest.mark.parametrize("harness", [{"orbit_azimuths_deg": [45.0], "steps": 1}], indirect=True)
def test_every_encoding_gives_the_same_model_input(harness: Harness) -> None:
    """The same picture in every encoding reaches the model as the same RGB crop."""
    combined = harness.record(SynthesizedViews, "synthesized_views")
    harness.wait_outputs_matched()
    rgb = random_image(32, 32)
    crops = {}
    for encoding in ENCODINGS:
        channels = {"mono": 1}.get(encoding[:4], 4 if "a" in encoding[3:5] else 3)
        src = rgb[..., ::-1] if encoding.startswith("bgr") else rgb
        src = src if channels != 1 else rgb[..., :1]
        if channels == 4:
            src = np.concatenate([src, np.full((32, 32, 1), 255, np.uint8)], axis=2)
        if encoding.endswith("16"):
            src = src.astype(np.uint16) * 257
        before = len(combined)
        harness.image_pub.publish(_stamped(numpy_to_image(src, encoding)))
        assert wait_for(lambda b=before: len(combined) > b), f"no output for {encoding}"
        crops[encoding], _ = image_to_numpy(combined[-1][1].input_crop)
    for encoding in ENCODINGS:
        expected = rgb[..., :1].repeat(3, axis=2) if encoding.startswith("mono") else rgb
        assert np.array_equal(crops[encoding], expected), encoding


@pytest.mark.parametrize("harness", [{"orbit_azimuths_deg": [90.0], "steps": 1}], indirect=True)
def test_camera_info_crops_the_training_field_of_view(harness: Harness) -> None:
    """With camera_info the crop is the square of the training FOV around the principal point."""
    combined = harness.record(SynthesizedViews, "synthesized_views")
    harness.wait_outputs_matched()
    # A 128x96 image whose fx makes the 52 deg training FOV exactly 32 px wide: the crop is the
    # central 32x32 square, which the model sees unscaled.
    fov = harness.node.cfg.training_fov_deg
    fx = 16.0 / np.tan(np.radians(fov) / 2)
    image = random_image(96, 128, seed=3)
    harness.wait_connected(harness.info_pub)
    harness.info_pub.publish(camera_info_for(96, 128, fx))
    assert wait_for(lambda: harness.node._latest_info is not None)
    harness.publish_image(image)
    assert wait_for(lambda: combined)
    crop, _ = image_to_numpy(combined[-1][1].input_crop)
    assert np.array_equal(crop, image[48 - 16 : 48 + 16, 64 - 16 : 64 + 16])


@pytest.mark.parametrize("harness", [{"orbit_azimuths_deg": [60.0], "steps": 1}], indirect=True)
def test_lazy_no_synthesis_without_subscribers(harness: Harness) -> None:
    assert wait_for(lambda: harness.image_pub.get_subscription_count() > 0)
    for _ in range(5):
        harness.publish_image(random_image())
    assert wait_for(lambda: harness.node.stats.received == 5)
    assert harness.node.stats.processed == 0 and harness.node.stats.idle == 5


@pytest.mark.parametrize("harness", [{"orbit_azimuths_deg": [], "steps": 1}], indirect=True)
def test_target_poses_and_frustums(harness: Harness) -> None:
    """PoseArray targets in the image's frame need no TF; frustum markers cover input + targets."""
    markers = harness.record(MarkerArray, "nvs_node/frustums")
    poses_pub = harness.client.create_publisher(PoseArray, "target_poses", 5)
    harness.wait_connected(poses_pub)
    array = PoseArray()
    array.header.frame_id = "camera_optical"
    for x in (0.5, -0.5):
        pose = Pose()
        pose.position.x = x
        pose.orientation.w = 1.0
        array.poses.append(pose)
    poses_pub.publish(array)
    assert wait_for(lambda: "pose_1" in harness.node._outputs.view_pubs)
    views = harness.record(Image, "views/pose_1")
    harness.wait_outputs_matched()
    harness.publish_image(random_image())
    assert wait_for(lambda: views and markers)
    frustums = [m for m in markers[-1][1].markers if m.ns == "frustums"]
    assert [m.header.frame_id for m in frustums] == ["camera_optical"] * 3
    assert [m.pose.position.x for m in frustums] == [0.0, 0.5, -0.5]


@pytest.mark.parametrize("harness", [{"orbit_azimuths_deg": [10.0], "steps": 1}], indirect=True)
def test_dynamic_parameters_safe_ones_apply_others_refused(harness: Harness) -> None:
    node = harness.node
    results = node.set_parameters(
        [
            Parameter("steps", value=3),
            Parameter("guidance", value=2.0),
            Parameter("temperature", value=0.5),
            Parameter("target_frames", value=["cam2"]),
        ]
    )
    assert all(r.successful for r in results)
    assert node.cfg.steps == 3 and node.cfg.guidance == 2.0 and node.cfg.target_frames == ["cam2"]
    assert node.cfg.temperature == 0.5
    assert "cam2" in node._outputs.view_pubs
    refused = node.set_parameters([Parameter("model_dir", value="/elsewhere")])[0]
    assert not refused.successful and "read" in refused.reason
    too_many = node.set_parameters([Parameter("orbit_azimuths_deg", value=[float(a) for a in range(40)])])[0]
    assert not too_many.successful and "max_targets" in too_many.reason
    out_of_range = node.set_parameters([Parameter("steps", value=0)])[0]
    assert not out_of_range.successful
    assert not node.set_parameters([Parameter("temperature", value=1.5)])[0].successful
    assert node.cfg.steps == 3


def _stamped(msg):
    msg.header.frame_id = "camera_optical"
    msg.header.stamp.sec = 1
    return msg


@pytest.mark.parametrize(
    "harness",
    [{"orbit_azimuths_deg": [20.0], "steps": 1, "max_rate_hz": 5.0, "output_size": 64}],
    indirect=True,
)
def test_rate_cap_output_size_and_diagnostics(harness: Harness) -> None:
    views = harness.record(Image, f"views/{orbit_name(20, 0)}")
    diagnostics = harness.record(DiagnosticArray, "/diagnostics")
    harness.wait_outputs_matched()
    start = time.monotonic()
    while time.monotonic() - start < 1.0:  # 30 Hz for one second
        harness.publish_image(random_image())
        time.sleep(1 / 30)
    assert wait_for(lambda: harness.node._queue.slot is None and views)
    # 5 Hz cap: about 5 outputs in that second (+1 for the frame taken at once, +1 for the latest).
    assert 3 <= len(views) <= 7, len(views)
    assert image_to_numpy(views[-1][1])[0].shape == (64, 64, 3)
    name = f"{harness.node.get_name()}: novel view synthesis"

    def ours() -> dict[str, str]:
        for _, array in reversed(diagnostics):
            for status in array.status:
                if status.name == name and status.hardware_id == "CPUExecutionProvider":
                    return {kv.key: kv.value for kv in status.values}
        return {}

    assert wait_for(lambda: int(ours().get("processed", 0)) == len(views), 5.0), ours()
    values = ours()
    assert int(values["dropped"]) > 0 and float(values["latency_p50_ms"]) > 0
    assert values["execution_provider"] == "CPUExecutionProvider"


@pytest.mark.parametrize(
    "harness", [{"orbit_azimuths_deg": [15.0], "steps": 1, "image_qos": "reliable"}], indirect=True
)
def test_reliable_image_qos_for_large_images(harness: Harness) -> None:
    from rclpy.qos import QoSProfile

    reliable = harness.client.create_publisher(Image, "image", QoSProfile(depth=5))
    combined = harness.record(SynthesizedViews, "synthesized_views")
    harness.wait_connected(reliable)
    assert harness.image_pub.get_subscription_count() == 0  # best effort cannot feed a reliable reader
    assert wait_for(harness.node._outputs.wants_views)
    for i in range(5):
        reliable.publish(_stamped(numpy_to_image(random_image(480, 640, seed=i), "rgb8")))
        time.sleep(0.05)
    assert wait_for(lambda: len(combined) >= 3)


WARM = {"orbit_azimuths_deg": [30.0, 90.0, 150.0, 210.0, 270.0, 330.0], "engine_workers": 1}


@pytest.mark.parametrize("harness", [WARM, {**WARM, "guidance": 1.5}], indirect=True)
def test_node_builds_its_target_count_sessions_at_start(harness: Harness) -> None:
    # 6 orbit targets: the denoiser's batch is 6, or 12 with classifier-free guidance.
    batch = 6 if harness.node.cfg.guidance == 1.0 else 12
    built = harness.node.engine.specialised
    assert ("denoiser", batch) in built and ("decoder", 6) in built, built


@pytest.mark.parametrize("harness", [{"orbit_azimuths_deg": [], "engine_workers": 1}], indirect=True)
def test_target_poses_warm_the_engine_up_for_their_count(harness: Harness) -> None:
    """A PoseArray of 5 targets builds the batch-5 sessions before any camera image arrives."""
    assert ("denoiser", 5) not in harness.node.engine.specialised
    poses_pub = harness.client.create_publisher(PoseArray, "target_poses", 5)
    harness.wait_connected(poses_pub)
    array = PoseArray()
    array.header.frame_id = "camera_optical"
    for x in np.linspace(-0.5, 0.5, 5):
        pose = Pose()
        pose.position.x = float(x)
        pose.orientation.w = 1.0
        array.poses.append(pose)
    poses_pub.publish(array)
    built = harness.node.engine
    assert wait_for(lambda: {("denoiser", 5), ("decoder", 5)} <= set(built.specialised)), built.specialised
