"""The interfaces generated from msg/ by `colcon build` can be served and called over real DDS."""

import importlib
import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: no ROS 2 in this environment (run `make setup`)")
try:
    srv_module = importlib.import_module("tinyldm_ros.srv")
except ImportError as exc:  # pragma: no cover - depends on the build
    pytest.skip(
        f"tinyldm_ros.srv not built ({exc}): run `make setup` (colcon build) and `source scripts/env.sh`",
        allow_module_level=True,
    )

from rclpy.executors import MultiThreadedExecutor  # noqa: E402

SynthesizeView = srv_module.SynthesizeView


def test_generated_service_type_is_named_from_msg_dir() -> None:
    assert SynthesizeView.__module__.startswith("tinyldm_ros.srv")
    assert hasattr(SynthesizeView, "Request") and hasattr(SynthesizeView, "Response")
    # Every version of the service reports whether it worked and why.
    response = SynthesizeView.Response()
    assert hasattr(response, "success") and hasattr(response, "message")


def test_service_round_trip_over_dds() -> None:
    rclpy.init()
    try:
        server = rclpy.create_node("interfaces_test_server")
        client_node = rclpy.create_node("interfaces_test_client")
        seen: list[object] = []

        def handle(request, response):
            seen.append(request)
            response.success = True
            response.message = f"served by {server.get_name()}"
            return response

        server.create_service(SynthesizeView, "synthesize_view", handle)
        client = client_node.create_client(SynthesizeView, "synthesize_view")

        executor = MultiThreadedExecutor()
        executor.add_node(server)
        executor.add_node(client_node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        try:
            assert client.wait_for_service(timeout_sec=20.0), "service never appeared over DDS"
            future = client.call_async(SynthesizeView.Request())
            deadline = time.monotonic() + 20.0
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert future.done(), "no response within 20 s"
            response = future.result()
            assert response.success is True
            assert response.message == "served by interfaces_test_server"
            assert len(seen) == 1
        finally:
            executor.shutdown()
            server.destroy_node()
            client_node.destroy_node()
    finally:
        rclpy.try_shutdown()
