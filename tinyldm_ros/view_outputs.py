"""The node's outputs: views/<target> (+ camera_info for RViz), synthesized_views, ~/mosaic and
~/frustums, and whether anyone listens to them (the node skips the engine when nobody does)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from tinyldm_ros.camera_model import view_camera_info
from tinyldm_ros.conversions import numpy_to_image
from tinyldm_ros.frustums import frustum_markers
from tinyldm_ros.mosaic import mosaic
from tinyldm_ros.msg import SynthesizedViews
from tinyldm_ros.node_params import NodeConfig
from tinyldm_ros.targets import Target


class ViewOutputs:
    def __init__(self, node: Node, config: Callable[[], NodeConfig]) -> None:
        self._node = node
        self._config = config  # the node's current parameters (publish_mosaic, publish_frustums)
        out_qos = QoSProfile(depth=1)
        self.view_pubs: dict[str, Publisher] = {}
        self.view_info_pubs: dict[str, Publisher] = {}
        self._combined_pub = node.create_publisher(SynthesizedViews, "synthesized_views", out_qos)
        self._mosaic_pub = node.create_publisher(Image, "~/mosaic", out_qos)
        self._marker_pub = node.create_publisher(MarkerArray, "~/frustums", out_qos)
        self._listeners_checked = (0.0, False, False)

    def ensure(self, names: list[str]) -> None:
        """A views/<name> publisher (and its camera_info) for each target name."""
        for name in names:
            if name not in self.view_pubs:
                self.view_pubs[name] = self._node.create_publisher(
                    Image, f"views/{name}", QoSProfile(depth=1)
                )
                # for RViz's Camera display, which overlays an image seen through its camera_info
                self.view_info_pubs[name] = self._node.create_publisher(
                    CameraInfo, f"views/{name}/camera_info", QoSProfile(depth=1)
                )

    def has_listeners(self) -> bool:
        """Whether anyone subscribes to an output (cached for 0.2 s: it is asked at camera rate)."""
        checked_at, views, markers = self._listeners_checked
        now = time.monotonic()
        if now - checked_at > 0.2:
            views, markers = self.wants_views(), self.wants_markers()
            self._listeners_checked = (now, views, markers)
        return views or markers

    def wants_views(self) -> bool:
        pubs = [self._combined_pub, *list(self.view_pubs.values())]
        if self._config().publish_mosaic:
            pubs.append(self._mosaic_pub)
        return any(p.get_subscription_count() > 0 for p in pubs)

    def wants_markers(self) -> bool:
        return self._config().publish_frustums and self._marker_pub.get_subscription_count() > 0

    def publish_markers(self, header, targets: list[Target], cfg: NodeConfig) -> None:
        self._marker_pub.publish(frustum_markers(header, targets, cfg.training_fov_deg, cfg.object_distance))

    def publish_views(self, result: SynthesizedViews, targets: list[Target], cfg: NodeConfig) -> None:
        """Each view on its target's topic (with its camera_info where RViz listens)."""
        for target, view in zip(targets, result.views, strict=True):
            pub = self.view_pubs.get(target.name)
            if pub is not None:
                pub.publish(view)
            info_pub = self.view_info_pubs.get(target.name)
            if info_pub is not None and info_pub.get_subscription_count():
                info_pub.publish(view_camera_info(view.width, cfg.training_fov_deg, view.header))

    def publish_mosaic(self, crop: np.ndarray, views: np.ndarray, header) -> None:
        self._mosaic_pub.publish(numpy_to_image(mosaic(crop, views), "rgb8", header))

    def publish_result(self, result: SynthesizedViews) -> None:
        self._combined_pub.publish(result)
