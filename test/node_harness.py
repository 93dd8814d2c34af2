"""Shared set-up for the node tests: a real NvsNode and a client node, each spun by its own executor
thread, talking over DDS (rclpy has no intra-process shortcut, so every message crosses the RMW)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
from rcl_interfaces.msg import Log
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from tinyldm_ros.conversions import numpy_to_image
from tinyldm_ros.node import NvsNode

TINY_MODEL = Path(__file__).resolve().parent / "fixtures" / "tiny_model"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, period: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(period)
    return condition()


def random_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def camera_info_for(height: int, width: int, fx: float, frame_id: str = "camera_optical") -> CameraInfo:
    info = CameraInfo()
    info.header.frame_id = frame_id
    info.height, info.width = height, width
    info.k = [fx, 0.0, width / 2.0, 0.0, fx, height / 2.0, 0.0, 0.0, 1.0]
    return info


class Spinner:
    """One node on its own single-threaded executor thread (as `main()` runs it)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.thread.join(timeout=2.0)


class Harness:
    """nvs_node (namespace `ns`) + a client node that publishes inputs and records outputs."""

    def __init__(self, ns: str, **params) -> None:
        overrides = [Parameter("model_dir", value=str(TINY_MODEL))]
        overrides += [Parameter(k, value=v) for k, v in params.items()]
        self.ns = ns
        self.nvs = Spinner(NvsNode(namespace=ns, parameter_overrides=overrides))
        self.client = rclpy.create_node(f"client_{ns.strip('/').replace('/', '_')}", namespace=ns)
        self.image_pub = self.client.create_publisher(Image, "image", qos_profile_sensor_data)
        self.info_pub = self.client.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.received: dict[str, list] = {}
        self._lock = threading.Lock()
        self.client_spin = Spinner(self.client)

    @property
    def node(self) -> NvsNode:
        return self.nvs.node

    def record(self, msg_type, topic: str, qos=None) -> list:
        """Subscribe to `topic` (relative to the namespace) and return the list its messages go into."""
        store = self.received.setdefault(topic, [])

        def callback(msg) -> None:
            with self._lock:
                store.append((time.monotonic(), msg))

        self.client.create_subscription(msg_type, topic, callback, qos or QoSProfile(depth=50))
        return store

    def connect_service(self) -> None:
        """`self.service`: a synthesize_view client on the client node, once the node offers it."""
        from tinyldm_ros.srv import SynthesizeView

        self.service = self.client.create_client(SynthesizeView, "synthesize_view")
        assert self.service.wait_for_service(timeout_sec=10.0), "synthesize_view never appeared"

    def call(self, request, timeout: float = 20.0):
        """One synthesize_view call through `self.service` (connect_service); its response."""
        future = self.service.call_async(request)
        assert wait_for(future.done, timeout), "no response"
        return future.result()

    def record_log(self) -> list[str]:
        """The node's /rosout lines from now on (and the few it kept), as they arrive."""
        lines: list[str] = []
        name = f"{self.ns.strip('/')}.nvs_node"
        self.client.create_subscription(
            Log,
            "/rosout",
            lambda m: lines.append(m.msg) if m.name == name else None,
            QoSProfile(depth=1000, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL),
        )
        return lines

    def wait_connected(self, publisher, timeout: float = 10.0) -> None:
        assert wait_for(lambda: publisher.get_subscription_count() > 0, timeout), "no DDS match"

    def wait_outputs_matched(self, timeout: float = 10.0) -> None:
        """Until the node sees our output subscriptions (laziness) and we see its image subscription."""
        assert wait_for(lambda: self.image_pub.get_subscription_count() > 0, timeout), "image not matched"
        assert wait_for(self.node._outputs.wants_views, timeout), "node does not see the output subscriptions"

    def publish_image(
        self,
        array: np.ndarray,
        encoding: str = "rgb8",
        frame_id: str = "camera_optical",
        stamp_s: float | None = None,
    ) -> Image:
        msg = numpy_to_image(array, encoding)
        msg.header.frame_id = frame_id
        t = time.time() if stamp_s is None else stamp_s
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int((t % 1) * 1e9)
        self.image_pub.publish(msg)
        return msg

    def close(self) -> None:
        self.client_spin.close()
        self.nvs.close()
