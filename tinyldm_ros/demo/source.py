"""demo_source: replays rendered SRN-layout views as a camera, with orbiting target cameras.

    python -m tinyldm_ros.demo.source --ros-args -p data:=data/cars/test/<instance>

Publishes, at `rate_hz`, each view of one object as `image` (rgb8) + `camera_info` in the optical
frame `frame_id`, and target cameras that orbit the object: as a `target_poses` PoseArray in the
camera's frame (unless `publish_target_poses` is false) and as TF frames `<target_prefix><i>` (parent
`frame_id`) where tf2_ros exists, so the node can be fed either way. A node fed both ways would
synthesize every target twice: demo.launch.py uses TF only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PoseArray, TransformStamped
from PIL import Image as PILImage
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from tinyldm_ros.conversions import numpy_to_image
from tinyldm_ros.package_paths import shipped
from tinyldm_ros.poses import check_rigid, orbit_poses
from tinyldm_ros.targets import matrix_to_pose, matrix_to_transform


@dataclass
class SrnView:
    rgb: np.ndarray  # (H, W, 3) uint8
    c2w: np.ndarray  # 4x4 camera-to-world (object at the origin)


@dataclass
class SrnInstance:
    name: str
    views: list[SrnView]
    f: float
    cx: float
    cy: float


def default_demo_data() -> Path:
    """The package's demo car: installed share/tinyldm_ros/demo, else the checkout's demo/."""
    return shipped("demo")


def find_instances(path: str | Path) -> list[Path]:
    """Instance directories under `path`: an instance itself, a split, or a data root."""
    path = Path(path)
    if (path / "rgb").is_dir():
        return [path]
    found = sorted(p.parent for p in path.glob("*/rgb") if p.is_dir())
    found = found or sorted(p.parent for p in path.glob("*/*/rgb") if p.is_dir())
    if not found:
        raise FileNotFoundError(
            f"{path}: no SRN-layout instance (<instance>/rgb/*.png + pose/ + intrinsics.txt)"
        )
    return found


def load_instance(path: str | Path, max_views: int = 0) -> SrnInstance:
    """Read one SRN instance directory (rgb/*.png, pose/*.txt, intrinsics.txt)."""
    path = Path(path)
    rgb_files = sorted((path / "rgb").glob("*.png"))
    if max_views:
        rgb_files = rgb_files[:max_views]
    if not rgb_files:
        raise FileNotFoundError(f"{path / 'rgb'}: no PNG views")
    lines = (path / "intrinsics.txt").read_text().split("\n")
    f, cx, cy = (float(v) for v in lines[0].split()[:3])
    views = []
    for rgb_file in rgb_files:
        pose_file = path / "pose" / (rgb_file.stem + ".txt")
        c2w = check_rigid(np.loadtxt(pose_file).reshape(4, 4), str(pose_file))
        image = PILImage.open(rgb_file)
        if image.mode == "RGBA":  # SRN renders have a white background under the alpha
            background = PILImage.new("RGBA", image.size, (255, 255, 255, 255))
            image = PILImage.alpha_composite(background, image)
        views.append(SrnView(np.asarray(image.convert("RGB")), c2w))
    return SrnInstance(path.name, views, f, cx, cy)


class DemoSource(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("demo_source", **kwargs)
        self.declare_parameter("data", "")  # empty: the package's demo car (demo/)
        self.declare_parameter("rate_hz", 10.0)
        self.declare_parameter("frame_id", "demo_camera_optical")
        self.declare_parameter("target_prefix", "demo_target_")
        self.declare_parameter("target_azimuths_deg", [60.0, 180.0, 300.0])
        self.declare_parameter("orbit_speed_deg_s", 30.0)
        self.declare_parameter("max_views", 0)
        self.declare_parameter("loop", True)
        self.declare_parameter("publish_target_poses", True)
        p = {name: self.get_parameter(name).value for name in self._parameters}
        self.frame_id, self.prefix, self.loop = p["frame_id"], p["target_prefix"], p["loop"]
        self.publish_target_poses = p["publish_target_poses"]
        self.azimuths = list(p["target_azimuths_deg"])
        self.speed = p["orbit_speed_deg_s"]
        self.period_s = 1.0 / p["rate_hz"]
        self.instance = load_instance(find_instances(p["data"] or default_demo_data())[0], p["max_views"])
        self.index = 0
        self.sent = 0
        self.done = False
        self.image_pub = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.poses_pub = self.create_publisher(PoseArray, "target_poses", 5)
        self.tf_broadcaster = None
        try:
            import tf2_ros

            self.tf_broadcaster = tf2_ros.TransformBroadcaster(self)
        except ImportError:
            self.get_logger().info("tf2_ros not available: target cameras go out on target_poses only")
        self.timer = self.create_timer(self.period_s, self._tick)
        self.get_logger().info(
            f"replaying {len(self.instance.views)} views of {self.instance.name} at {p['rate_hz']} Hz"
        )

    def target_poses(self, c2w: np.ndarray, t: float) -> np.ndarray:
        """Target cameras orbiting the object centre (the world origin), in the camera's frame."""
        distance = float(np.linalg.norm(c2w[:3, 3]))
        # the world's up (+z) seen from the camera keeps the orbit level with the object
        up = c2w[:3, :3].T @ np.array([0.0, 0.0, 1.0])
        start = np.array(self.azimuths) + self.speed * t
        return np.stack([orbit_poses(np.eye(4), distance, [a], 0.0, up=up)[0] for a in start])

    def _tick(self) -> None:
        if self.done:
            return
        view = self.instance.views[self.index]
        stamp = self.get_clock().now().to_msg()
        image = numpy_to_image(view.rgb, "rgb8")
        image.header.stamp, image.header.frame_id = stamp, self.frame_id
        info = CameraInfo()
        info.header = image.header
        info.height, info.width = image.height, image.width
        inst = self.instance
        info.k = [inst.f, 0.0, inst.cx, 0.0, inst.f, inst.cy, 0.0, 0.0, 1.0]
        info.p = [inst.f, 0.0, inst.cx, 0.0, 0.0, inst.f, inst.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        poses = self.target_poses(view.c2w, self.sent * self.period_s)
        array = PoseArray()
        array.header = image.header
        array.poses = [matrix_to_pose(T) for T in poses]
        if self.tf_broadcaster is not None:
            transforms = []
            for i, T in enumerate(poses):
                tf = TransformStamped()
                tf.header = image.header
                tf.child_frame_id = f"{self.prefix}{i}"
                tf.transform = matrix_to_transform(T)
                transforms.append(tf)
            self.tf_broadcaster.sendTransform(transforms)
        # camera_info and targets first, so the image never arrives before what goes with it
        self.info_pub.publish(info)
        if self.publish_target_poses:
            self.poses_pub.publish(array)
        self.image_pub.publish(image)
        self.sent += 1
        self.index += 1
        if self.index == len(self.instance.views):
            self.index = 0
            self.done = not self.loop


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=sys.argv if argv is None else argv)
    try:
        node = DemoSource()
    except (FileNotFoundError, ValueError) as e:
        print(f"demo_source: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
