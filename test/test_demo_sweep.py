"""The demo sweep's targets keep the input camera's elevation, as the training camera pairs do."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: no ROS 2 in this environment (run `make setup`)")
pytest.importorskip(
    "tinyldm_ros.msg", reason="tinyldm_ros interfaces not built: run `make setup` (colcon build)"
)

from node_harness import TINY_MODEL, wait_for  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from tinyldm_ros.msg import SynthesizedViews  # noqa: E402

from tinyldm_ros.demo.source import find_instances, load_instance  # noqa: E402
from tinyldm_ros.demo.sweep import make_nodes, sweep_target_names  # noqa: E402
from tinyldm_ros.poses import azimuth_elevation, relative_transform, sphere_pose  # noqa: E402
from tinyldm_ros.targets import pose_to_matrix  # noqa: E402

SAMPLE = Path(__file__).resolve().parent / "data" / "srn_sample"


def test_sweep_views_are_level_with_an_elevated_input_camera() -> None:
    """View 0 of the sample looks down at the car from 30 deg: every sweep target must sit at 30 deg
    too, `azimuth` further round (an orbit about the camera's own up would put the 180 deg target
    30 deg below the ground)."""
    c2w = load_instance(find_instances(SAMPLE)[0], max_views=1).views[0].c2w
    azimuth, elevation = (float(v) for v in azimuth_elevation(c2w))
    assert elevation == pytest.approx(30.0, abs=1e-3)
    radius = float(np.linalg.norm(c2w[:3, 3]))
    azimuths = [90.0, 180.0, 270.0]
    args = argparse.Namespace(
        model=TINY_MODEL, rate=20.0, frames=1, azimuths=azimuths, object_distance=radius
    )
    rclpy.init()
    try:
        nvs, source = make_nodes(args, SAMPLE)
        source.loop = True  # repeat the one view until discovery is done; its targets never go stale
        sink = rclpy.create_node("sweep_sink")
        results: list = []
        sink.create_subscription(SynthesizedViews, "synthesized_views", results.append, 10)
        executor = SingleThreadedExecutor()  # as tinyldm_ros.demo runs them
        for node in (nvs, source, sink):
            executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        wanted = sweep_target_names(azimuths)
        assert wait_for(lambda: any(set(wanted) <= set(r.target_names) for r in results), 30.0)
        msg = next(r for r in results if set(wanted) <= set(r.target_names))
        executor.shutdown()
        for node in (sink, source, nvs):
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
    names = list(msg.target_names)
    for name, d_azimuth in zip(wanted, azimuths, strict=True):
        expected = relative_transform(c2w, sphere_pose(radius, azimuth + d_azimuth, elevation))
        got = pose_to_matrix(msg.poses[names.index(name)])
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=name)
