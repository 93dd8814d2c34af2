"""The synthesize_view service over real DDS: image + poses, orbit angles, the latest image, errors."""

from __future__ import annotations

import array
import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: no ROS 2 in this environment (run `make setup`)")
pytest.importorskip(
    "tinyldm_ros.srv", reason="tinyldm_ros interfaces not built: run `make setup` (colcon build)"
)

from geometry_msgs.msg import PoseStamped  # noqa: E402
from node_harness import Harness, random_image, wait_for  # noqa: E402
from tinyldm_ros.srv import SynthesizeView  # noqa: E402

from tinyldm_ros.conversions import image_to_numpy, numpy_to_image  # noqa: E402

_ns = itertools.count()


pytestmark = pytest.mark.usefixtures("ros_context")


@pytest.fixture
def harness():
    h = Harness(f"/nvs_srv_{next(_ns)}", orbit_azimuths_deg=[90.0], steps=2, max_pending_requests=2)
    h.connect_service()
    yield h
    h.close()


def test_request_with_image_and_poses(harness: Harness) -> None:
    request = SynthesizeView.Request()
    request.image = numpy_to_image(random_image(40, 40), "bgr8")
    request.image.header.frame_id = "cam"
    request.image.header.stamp.sec = 42
    for x in (0.3, -0.3):
        pose = PoseStamped()
        pose.header.frame_id = "cam"  # the image's own frame: no TF needed
        pose.pose.position.x = x
        pose.pose.orientation.w = 1.0
        request.target_poses.append(pose)
    request.steps, request.seed = 3, 7
    response = harness.call(request)
    assert response.success, response.message
    result = response.result
    assert len(result.views) == 2 and result.steps == 3 and result.seed == 7
    assert result.sampler == "ddim" and "(ddim, steps 3," in response.message
    assert result.header.stamp.sec == 42
    assert [p.position.x for p in result.poses] == pytest.approx([0.3, -0.3])
    assert all(v.header.stamp.sec == 42 for v in result.views)
    # Deterministic for a seed: the same call gives the same pixels.
    again = harness.call(request).result
    assert all(a.data == b.data for a, b in zip(result.views, again.views, strict=True))
    # The call's own temperature; 0 makes the seed irrelevant. Negative: the node's parameter.
    assert result.temperature == harness.node.cfg.temperature == 1.0
    request.temperature = 0.0
    cold = [harness.call(request).result]
    request.seed = 8
    cold.append(harness.call(request).result)
    assert cold[0].temperature == 0.0 and cold[1].seed == 8
    assert all(a.data == b.data for a, b in zip(cold[0].views, cold[1].views, strict=True))
    assert any(a.data != b.data for a, b in zip(cold[0].views, result.views, strict=True))
    request.temperature = 2.0
    response = harness.call(request)
    assert not response.success and "temperature must be in [0, 1]" in response.message


def test_orbit_angles_on_the_latest_image(harness: Harness) -> None:
    """The README example: only azimuths, the image is the latest one received on `image`."""
    assert wait_for(lambda: harness.image_pub.get_subscription_count() > 0)
    sent = harness.publish_image(random_image(), stamp_s=77.0)
    assert wait_for(lambda: harness.node._latest is not None)
    response = harness.call(SynthesizeView.Request(azimuths_deg=[30.0, 90.0, 180.0]))
    assert response.success, response.message
    result = response.result
    assert result.header.stamp == sent.header.stamp
    assert list(result.target_names) == ["orbit_az30_el0", "orbit_az90_el0", "orbit_az180_el0"]
    # 180 degrees around the object centre: the camera ends up 2 * object_distance ahead.
    d = result.object_distance
    assert result.poses[2].position.z == pytest.approx(2 * d)
    size = harness.node.engine.info.image_size
    assert all(image_to_numpy(v)[0].shape == (size, size, 3) for v in result.views)
    assert "3 views" in response.message


def test_errors_are_responses_not_crashes(harness: Harness) -> None:
    no_image = harness.call(SynthesizeView.Request(azimuths_deg=[10.0]))
    assert not no_image.success and "no image" in no_image.message
    assert wait_for(lambda: harness.image_pub.get_subscription_count() > 0)
    harness.publish_image(random_image())
    assert wait_for(lambda: harness.node._latest is not None)
    cases = {
        "no targets": SynthesizeView.Request(),
        "max_targets": SynthesizeView.Request(azimuths_deg=[float(a) for a in range(100)]),
        "elevations": SynthesizeView.Request(azimuths_deg=[1.0, 2.0], elevations_deg=[1.0, 2.0, 3.0]),
        "pole": SynthesizeView.Request(azimuths_deg=[0.0], elevations_deg=[95.0]),
        "steps": SynthesizeView.Request(azimuths_deg=[0.0], steps=100000),
    }
    bad_pose = PoseStamped()
    bad_pose.pose.orientation.w = float("nan")
    cases["NaN"] = SynthesizeView.Request(target_poses=[bad_pose])
    cases["encoding"] = SynthesizeView.Request(azimuths_deg=[0.0])
    cases["encoding"].image = numpy_to_image(random_image(4, 4), "rgb8")
    cases["encoding"].image.encoding = "yuv422"
    for expected, request in cases.items():
        response = harness.call(request)
        assert not response.success and expected in response.message, (expected, response.message)
    assert harness.node.stats.requests_failed == len(cases) + 1
    assert harness.call(SynthesizeView.Request(azimuths_deg=[10.0])).success  # still serving


def test_concurrent_calls_beyond_the_queue_are_refused_as_busy(harness: Harness) -> None:
    assert wait_for(lambda: harness.image_pub.get_subscription_count() > 0)
    harness.publish_image(random_image())
    assert wait_for(lambda: harness.node._latest is not None)
    slow = SynthesizeView.Request(azimuths_deg=[float(a) for a in range(16)], steps=50)
    futures = [harness.service.call_async(slow) for _ in range(8)]
    start = time.monotonic()
    assert wait_for(lambda: all(f.done() for f in futures), 60.0)
    responses = [f.result() for f in futures]
    busy = [r for r in responses if not r.success]
    assert all("busy" in r.message for r in busy)
    assert any(r.success for r in responses) and busy, [r.message for r in responses]
    assert time.monotonic() - start < 60.0
    assert np.all([len(r.result.views) == 16 for r in responses if r.success])


def test_a_running_call_does_not_hold_up_the_camera_stream(harness: Harness) -> None:
    assert wait_for(lambda: harness.image_pub.get_subscription_count() > 0)
    harness.publish_image(random_image())
    assert wait_for(lambda: harness.node._latest is not None)
    # 16 views x 1000 steps: seconds of work on any CPU, however fast the engine gets
    slow = harness.service.call_async(
        SynthesizeView.Request(azimuths_deg=[float(a) for a in range(16)], steps=1000)
    )
    received_when_answered: list[int] = []
    slow.add_done_callback(lambda _: received_when_answered.append(harness.node.stats.received))
    time.sleep(0.05)
    received = harness.node.stats.received
    for _ in range(10):
        harness.publish_image(random_image())
        time.sleep(0.01)
    assert wait_for(slow.done, 120.0) and slow.result().success, slow.result().message
    assert wait_for(lambda: received_when_answered, 5.0)
    # the image callbacks ran while the call was still being served, not after it
    assert received_when_answered[0] >= received + 8, (received, received_when_answered)


def _documented_calls() -> list[str]:
    """The YAML of every `ros2 service call /synthesize_view ...` example in docs/node.md."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "node.md").read_text().replace("\\\n", " ")
    prefix = "ros2 service call /synthesize_view tinyldm_ros/srv/SynthesizeView"
    return [line.split(prefix, 1)[1].strip().strip('"') for line in text.splitlines() if prefix in line]


def _fill(request, values: dict):
    """What `ros2 service call` does with the YAML (rosidl_runtime_py.set_message_fields, which PyPI
    ROS lacks): sequences become arrays of the field's type, scalars are converted by the field's type."""
    for name, value in values.items():
        field = getattr(request, name)  # AttributeError: the docs name a field the .srv lacks
        if isinstance(field, array.array):
            value = array.array(field.typecode, value)
        elif not isinstance(field, list):
            value = type(field)(value)
        setattr(request, name, value)
    return request


def test_documented_service_calls_work_as_typed(harness: Harness) -> None:
    calls = _documented_calls()
    assert len(calls) >= 3 and any(c == "{azimuths_deg: [30, 90, 180]}" for c in calls)
    assert wait_for(lambda: harness.image_pub.get_subscription_count() > 0)
    harness.publish_image(random_image())
    assert wait_for(lambda: harness.node._latest is not None)
    frames = {f for text in calls for f in (yaml.safe_load(text).get("target_frames") or [])}
    if harness.node._targets.tf is not None and frames:  # TF here: put the documented frames on it first
        import tf2_ros
        from geometry_msgs.msg import TransformStamped

        broadcaster = tf2_ros.StaticTransformBroadcaster(harness.client)
        tfs = []
        for i, frame in enumerate(sorted(frames)):
            tf = TransformStamped()
            tf.header.frame_id, tf.child_frame_id = "camera_optical", frame
            tf.transform.translation.x = -0.3 * (i + 1)
            tf.transform.rotation.w = 1.0
            tfs.append(tf)
        broadcaster.sendTransform(tfs)
        buffer = harness.node._targets.tf.buffer
        assert wait_for(
            lambda: all(buffer.can_transform("camera_optical", f, rclpy.time.Time()) for f in frames)
        )
    for text in calls:
        values = yaml.safe_load(text)
        response = harness.call(_fill(SynthesizeView.Request(), values))
        if "target_frames" in values and harness.node._targets.tf is None:
            assert not response.success and "tf2_ros" in response.message  # no TF here: says why
        else:
            assert response.success, (text, response.message)
            expected = sum(len(values.get(k, [])) for k in ("target_frames", "target_poses", "azimuths_deg"))
            assert len(response.result.views) == expected, text
