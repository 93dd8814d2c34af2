"""The node's shipped configuration: params YAML, RViz config topics, launch files, TF targets."""

from __future__ import annotations

import ast
import importlib.util
import itertools
import time
from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: no ROS 2 in this environment (run `make setup`)")
pytest.importorskip(
    "tinyldm_ros.msg", reason="tinyldm_ros interfaces not built: run `make setup` (colcon build)"
)

from node_harness import TINY_MODEL, Harness, random_image, wait_for  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from tinyldm_ros.msg import SynthesizedViews  # noqa: E402

from tinyldm_ros import node_params, object_inputs  # noqa: E402
from tinyldm_ros.demo.source import DemoSource  # noqa: E402
from tinyldm_ros.node import NvsNode  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HAVE_TF2 = importlib.util.find_spec("tf2_ros") is not None
HAVE_LAUNCH = (
    importlib.util.find_spec("launch") is not None and importlib.util.find_spec("launch_ros") is not None
)
_ns = itertools.count()


pytestmark = pytest.mark.usefixtures("ros_context")


def test_params_yaml_is_what_the_node_declares_and_loads() -> None:
    path = REPO / "config" / "nvs.yaml"
    values = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
    declared = set(node_params.SPECS) | set(object_inputs.SPECS)
    assert set(values) <= declared, set(values) - declared
    node = NvsNode(
        cli_args=["--ros-args", "--params-file", str(path)],
        parameter_overrides=[Parameter("model_dir", value=str(TINY_MODEL))],
    )
    try:
        for name, value in values.items():
            if name != "model_dir":
                cfg = node._objects.cfg if name in object_inputs.SPECS else node.cfg
                assert getattr(cfg, name) == value, name
        # steps / guidance are left to the model's defaults in the YAML
        assert node.cfg.steps == node.engine.info.sampler.steps
    finally:
        node.destroy_node()


def _rviz_topics() -> list[tuple[str, str]]:
    config = yaml.safe_load((REPO / "config" / "nvs.rviz").read_text())
    kinds = {
        "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
        "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
    }
    return [
        (d["Topic"]["Value"], kinds[d["Class"]])
        for d in config["Visualization Manager"]["Displays"]
        if "Topic" in d
    ]


def test_every_topic_the_rviz_config_shows_is_published_with_its_type() -> None:
    """nvs_node and demo_source at the root namespace (as demo.launch.py starts them)."""
    topics = _rviz_topics()
    assert len(topics) >= 5
    nvs = NvsNode(parameter_overrides=[Parameter("model_dir", value=str(TINY_MODEL))])
    source = DemoSource(
        parameter_overrides=[Parameter("data", value=str(REPO / "test" / "data" / "srn_sample"))]
    )
    observer = rclpy.create_node("rviz_stand_in")
    try:

        def published() -> dict[str, set[str]]:
            found: dict[str, set[str]] = {}
            for name, ns in (("nvs_node", "/"), ("demo_source", "/")):
                for topic, types in observer.get_publisher_names_and_types_by_node(name, ns):
                    found.setdefault(topic, set()).update(types)
            return found

        assert wait_for(lambda: all(t in published() for t, _ in topics), 10.0), (topics, published())
        graph = published()
        for topic, msg_type in topics:
            assert msg_type in graph[topic], (topic, graph[topic])
    finally:
        for n in (observer, source, nvs):
            n.destroy_node()


@pytest.mark.parametrize("publish", [True, False])
def test_demo_source_target_poses_can_be_switched_off(publish: bool) -> None:
    """demo.launch.py feeds the node its targets through TF only (publish_target_poses: false)."""
    from geometry_msgs.msg import PoseArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data

    source = DemoSource(
        parameter_overrides=[
            Parameter("data", value=str(REPO / "test" / "data" / "srn_sample")),
            Parameter("rate_hz", value=50.0),
            Parameter("publish_target_poses", value=publish),
        ]
    )
    listener = rclpy.create_node("demo_source_listener")
    images, poses = [], []
    listener.create_subscription(Image, "image", images.append, qos_profile_sensor_data)
    listener.create_subscription(PoseArray, "target_poses", poses.append, 5)
    executor = SingleThreadedExecutor()
    for n in (source, listener):
        executor.add_node(n)
    try:
        deadline = time.monotonic() + 10.0
        while len(images) < 5 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert len(images) >= 5
        assert bool(poses) == publish, (publish, len(poses))
    finally:
        executor.shutdown()
        for n in (listener, source):
            n.destroy_node()


def _launch_arguments(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "DeclareLaunchArgument"
        and isinstance(node.args[0], ast.Constant)
    }


def test_launch_files_declare_the_documented_arguments() -> None:
    nvs = _launch_arguments(REPO / "launch" / "nvs.launch.py")
    assert {"model", "image", "camera_info", "target_frames", "params_file", "namespace", "use_rviz"} <= nvs
    assert {"model", "data", "use_rviz"} <= _launch_arguments(REPO / "launch" / "demo.launch.py")


@pytest.mark.skipif(
    not HAVE_LAUNCH, reason="launch / launch_ros not installed (ROS 2 from PyPI has no launch)"
)
def test_launch_descriptions_load() -> None:  # pragma: no cover - needs a system ROS 2
    from launch.actions import DeclareLaunchArgument
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    for name, expected in (("nvs.launch.py", {"model", "image", "use_rviz"}), ("demo.launch.py", {"data"})):
        description = get_launch_description_from_python_launch_file(str(REPO / "launch" / name))
        declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
        assert expected <= declared


@pytest.mark.skipif(not HAVE_TF2, reason="tf2_ros not installed (ROS 2 from PyPI has no tf2_ros)")
def test_tf_target_frames() -> None:  # pragma: no cover - needs a system ROS 2
    import tf2_ros
    from geometry_msgs.msg import TransformStamped

    h = Harness(
        f"/nvs_tf_{next(_ns)}",
        target_frames=["left_optical", "missing_optical"],
        orbit_azimuths_deg=[],
        steps=1,
        tf_timeout_s=0.05,
    )
    try:
        broadcaster = tf2_ros.StaticTransformBroadcaster(h.client)
        tf = TransformStamped()
        tf.header.frame_id, tf.child_frame_id = "camera_optical", "left_optical"
        tf.transform.translation.x = -0.4
        tf.transform.rotation.w = 1.0
        broadcaster.sendTransform(tf)
        views = h.record(Image, "views/left_optical")
        combined = h.record(SynthesizedViews, "synthesized_views")
        h.wait_outputs_matched()
        assert wait_for(
            lambda: h.node._targets.tf.buffer.can_transform(
                "camera_optical", "left_optical", rclpy.time.Time()
            ),
            10.0,
        )
        h.publish_image(random_image())
        assert wait_for(lambda: views and combined, 10.0)
        assert views[0][1].header.frame_id == "left_optical"
        assert combined[0][1].poses[0].position.x == pytest.approx(-0.4)
        assert h.node.stats.rejected["tf"] >= 1  # missing_optical: logged and skipped, not fatal
    finally:
        h.close()


@pytest.mark.skipif(not HAVE_TF2, reason="tf2_ros not installed (ROS 2 from PyPI has no tf2_ros)")
def test_orbit_view_frames_are_on_tf() -> None:  # pragma: no cover - needs a system ROS 2
    """RViz places a view by its frame_id: the orbit frames the node names must be on TF."""
    h = Harness(f"/nvs_tfb_{next(_ns)}", orbit_azimuths_deg=[90.0], steps=1)
    try:
        views = h.record(Image, "views/orbit_az90_el0")
        h.wait_outputs_matched()
        h.publish_image(random_image())
        assert wait_for(lambda: views, 10.0)
        stamp = rclpy.time.Time.from_msg(views[0][1].header.stamp)
        buffer = h.node._targets.tf.buffer
        assert wait_for(lambda: buffer.can_transform("camera_optical", "orbit_az90_el0", stamp), 10.0)
        tf = buffer.lookup_transform("camera_optical", "orbit_az90_el0", stamp)
        # a quarter orbit to the right: the camera sits beside the object centre, object_distance ahead
        d = h.node.cfg.object_distance
        assert (tf.transform.translation.x, tf.transform.translation.z) == pytest.approx((d, d), abs=1e-6)
    finally:
        h.close()


def test_node_modules_never_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'test');"
        "import tinyldm_ros.node, tinyldm_ros.demo.sweep, tinyldm_ros.demo.source, bad_inputs;"
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO).returncode == 0
