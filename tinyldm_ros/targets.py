"""Target cameras for the node: ROS pose messages <-> 4x4 matrices, orbit targets, TF lookups, and
the resolution of a frame's or a service call's targets into camera poses (TargetResolver).

Every target ends up as a camera-to-input-camera 4x4 (optical axes, metres), the pose the model is
conditioned on once its translation is scaled to training units (`to_model_units`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from geometry_msgs.msg import Pose, Transform, TransformStamped

from tinyldm_ros.poses import check_rigid, orbit_poses

if TYPE_CHECKING:
    from geometry_msgs.msg import PoseArray

    from tinyldm_ros.node_params import NodeConfig

# A quaternion further than this from unit length is a bad message, not rounding noise.
QUATERNION_NORM_TOLERANCE = 1e-2


class TargetError(ValueError):
    """A target cannot be resolved (bad pose, unknown frame, TF timeout); the message says why."""


@dataclass
class Target:
    """One view to synthesize: `name` is the topic suffix, `frame_id` the view's header frame."""

    name: str
    frame_id: str
    pose: np.ndarray  # camera-to-input-camera 4x4, metres
    # The node made `frame_id` up (orbit and pose targets): it broadcasts it on TF as a child of the
    # input image's frame, so that RViz can place the view. TF frames given by the user are not.
    broadcast: bool = False


def target_transforms(header, targets: list[Target]) -> list[TransformStamped]:
    """TF transforms (parent: the input image's frame, at its stamp) of the targets the node names."""
    out = []
    for t in targets:
        if t.broadcast:
            tf = TransformStamped()
            tf.header.stamp = header.stamp
            tf.header.frame_id = header.frame_id
            tf.child_frame_id = t.frame_id
            tf.transform = matrix_to_transform(t.pose)
            out.append(tf)
    return out


def topic_safe(name: str) -> str:
    """A frame or target name as a valid ROS topic token (views/<token>)."""
    token = re.sub(r"[^A-Za-z0-9_]", "_", name.strip("/")) or "target"
    return token if not token[0].isdigit() else f"t{token}"


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    q = np.array([x, y, z, w], dtype=np.float64)
    if not np.all(np.isfinite(q)):
        raise TargetError(f"quaternion has NaN or infinite values: {q.tolist()}")
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise TargetError(f"quaternion is not unit length (|q| = {norm:.4g}): not a rotation")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (Shepperd's method, stable for every angle)."""
    m = R
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        w, x, y, z = (m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        w, x, y, z = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        w, x, y, z = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s
    return float(x), float(y), float(z), float(w)


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """geometry_msgs/Pose -> rigid 4x4; TargetError for NaN or a non-unit quaternion."""
    T = np.eye(4)
    q = pose.orientation
    T[:3, :3] = quaternion_to_matrix(q.x, q.y, q.z, q.w)
    T[:3, 3] = (pose.position.x, pose.position.y, pose.position.z)
    return _rigid(T, "pose")


def transform_to_matrix(transform: Transform) -> np.ndarray:
    """geometry_msgs/Transform (as in a TransformStamped) -> rigid 4x4."""
    T = np.eye(4)
    q = transform.rotation
    T[:3, :3] = quaternion_to_matrix(q.x, q.y, q.z, q.w)
    T[:3, 3] = (transform.translation.x, transform.translation.y, transform.translation.z)
    return _rigid(T, "transform")


def matrix_to_pose(T: np.ndarray) -> Pose:
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    q = pose.orientation
    q.x, q.y, q.z, q.w = matrix_to_quaternion(T[:3, :3])
    return pose


def matrix_to_transform(T: np.ndarray) -> Transform:
    transform = Transform()
    transform.translation.x, transform.translation.y, transform.translation.z = (float(v) for v in T[:3, 3])
    r = transform.rotation
    r.x, r.y, r.z, r.w = matrix_to_quaternion(T[:3, :3])
    return transform


def orbit_name(azimuth_deg: float, elevation_deg: float) -> str:
    """A topic-safe name for an orbit target, e.g. orbit_az30_el0, orbit_azm45_el10p5."""

    def fmt(v: float) -> str:
        return f"{v:g}".replace("-", "m").replace(".", "p")

    return f"orbit_az{fmt(azimuth_deg)}_el{fmt(elevation_deg)}"


def orbit_targets(
    azimuths_deg, elevations_deg, object_distance: float, up=None, view: np.ndarray | None = None
) -> list[Target]:
    """Targets on a sphere around the object centre `object_distance` ahead of the input camera (or
    of `view`, the virtual camera aimed at the object: tinyldm_ros.virtual_camera).

    elevations_deg: empty -> 0 for all, one value -> for all, else one per azimuth.
    up: the world's up direction in the input camera's frame; None = the camera's own up, which
    matches the training cameras (world up +z) only for a level camera.
    """
    az = np.asarray(list(azimuths_deg), dtype=np.float64)
    el = np.asarray(list(elevations_deg), dtype=np.float64)
    if az.size == 0:
        return []
    if el.size == 0:
        el = np.zeros_like(az)
    elif el.size == 1:
        el = np.full_like(az, el[0])
    elif el.size != az.size:
        raise TargetError(f"{el.size} elevations for {az.size} azimuths (give 0, 1 or one per azimuth)")
    if not (np.all(np.isfinite(az)) and np.all(np.isfinite(el))):
        raise TargetError("orbit angles contain NaN or infinite values")
    try:
        poses = orbit_poses(np.eye(4) if view is None else view, object_distance, az, el, up)
    except ValueError as e:
        raise TargetError(str(e)) from None
    return [
        Target(orbit_name(a, e), orbit_name(a, e), pose, broadcast=True)
        for a, e, pose in zip(az, el, poses, strict=True)
    ]


def to_model_units(pose: np.ndarray, training_radius: float, object_distance: float) -> np.ndarray:
    """Scale a metric relative pose so that the object distance becomes the training radius."""
    scaled = np.array(pose, dtype=np.float64, copy=True)
    scaled[..., :3, 3] *= training_radius / object_distance
    return scaled


class TfLookup:
    """Blocking TF lookups for the node's worker thread (never called on the executor), and the
    broadcaster of the frames the node names (`target_transforms`).

    Wraps a tf2_ros Buffer filled by a TransformListener on the node itself: the node's executor
    serves /tf and /tf_static, and the lookups wait on the worker thread, so they never hold up a
    callback. (`spin_thread=True` would not help: adding the node to its executor takes it out of the
    listener's, whose thread then spins nothing and dies with a traceback at Ctrl-C; ros2/geometry2
    #743, #930.)
    """

    def __init__(self, node) -> None:
        import tf2_ros  # only a system ROS install has it; the node runs without TF targets otherwise

        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node, spin_thread=False)
        self.broadcaster = tf2_ros.TransformBroadcaster(node)

    def broadcast(self, transforms: list[TransformStamped]) -> None:
        if transforms:
            self.broadcaster.sendTransform(transforms)

    def lookup(self, target_frame: str, source_frame: str, stamp, timeout_s: float) -> np.ndarray:
        """Pose of `source_frame` in `target_frame` at `stamp` (a builtin_interfaces/Time) as a 4x4."""
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            tf = self.buffer.lookup_transform(
                target_frame, source_frame, Time.from_msg(stamp), timeout=Duration(seconds=timeout_s)
            )
        except (
            self._tf2.LookupException,
            self._tf2.ConnectivityException,
            self._tf2.ExtrapolationException,
            self._tf2.InvalidArgumentException,
        ) as e:
            raise TargetError(f"TF {source_frame} -> {target_frame}: {type(e).__name__}: {e}") from None
        except self._tf2.TransformException as e:  # timeouts and anything else tf2 reports
            raise TargetError(f"TF {source_frame} -> {target_frame}: {type(e).__name__}: {e}") from None
        return transform_to_matrix(tf.transform)

    def close(self) -> None:
        unregister = getattr(self.listener, "unregister", None)
        if unregister is not None:
            unregister()


def stream_target_names(cfg: NodeConfig) -> list[str]:
    """The names of the targets the parameters ask for on every frame (TF frames and orbits)."""
    names = [topic_safe(f) for f in cfg.target_frames]
    with contextlib.suppress(TargetError):
        names += [t.name for t in orbit_targets(cfg.orbit_azimuths_deg, cfg.orbit_elevations_deg, 1.0)]
    return names


class TargetResolver:
    """Targets as camera poses in the input image's frame at its stamp, looked up on TF where needed
    (`tf` None: tf2_ros is missing, and `tf_missing` says so for every TF target)."""

    def __init__(self, tf: TfLookup | None, tf_missing: str = "") -> None:
        self.tf = tf
        self.tf_missing = tf_missing

    @classmethod
    def on(cls, node) -> TargetResolver:
        """A resolver with TF lookups on `node`, or without them where tf2_ros is not installed."""
        try:
            return cls(TfLookup(node))
        except ImportError as e:
            return cls(None, f"tf2_ros is not available ({e}); TF targets need a ROS 2 install with tf2_ros")

    def lookup(self, image_frame: str, source_frame: str, stamp, cfg: NodeConfig) -> np.ndarray:
        if self.tf is None:
            raise TargetError(self.tf_missing)
        return self.tf.lookup(image_frame, source_frame, stamp, cfg.tf_timeout_s)

    def orbit_up(self, header, cfg: NodeConfig) -> np.ndarray | None:
        """+z of `orbit_up_frame` in the image frame at the image stamp; None = the camera's own up."""
        if not cfg.orbit_up_frame:
            return None
        return self.lookup(header.frame_id, cfg.orbit_up_frame, header.stamp, cfg)[:3, 2]

    def in_image_frame(
        self, frame_id: str, poses: list[np.ndarray], header, cfg: NodeConfig
    ) -> list[np.ndarray]:
        if not frame_id or frame_id == header.frame_id:
            return poses
        T = self.lookup(header.frame_id, frame_id, header.stamp, cfg)
        return [T @ p for p in poses]

    def stream(
        self,
        header,
        cfg: NodeConfig,
        pose_array: PoseArray | None,
        skip: Callable[[str, str], None],
        view: np.ndarray | None = None,
    ) -> list[Target]:
        """TF frames, the latest target_poses and the orbit parameters (around the object ahead of
        `view`, the virtual camera, if given); a bad one is reported to skip(cause, message) and left
        out, and at most max_targets are kept."""
        targets: list[Target] = []
        for frame_id in cfg.target_frames:
            try:
                pose = self.lookup(header.frame_id, frame_id, header.stamp, cfg)
                targets.append(Target(topic_safe(frame_id), frame_id, pose))
            except TargetError as e:
                skip("tf", f"target frame {frame_id!r} skipped: {e}")
        if pose_array is not None:
            try:
                poses = [pose_to_matrix(p) for p in pose_array.poses[: cfg.max_targets]]
                poses = self.in_image_frame(pose_array.header.frame_id, poses, header, cfg)
                targets += [Target(f"pose_{i}", f"pose_{i}", p, broadcast=True) for i, p in enumerate(poses)]
            except TargetError as e:
                skip("target_poses", f"target_poses skipped: {e}")
        if cfg.orbit_azimuths_deg:
            try:
                up = self.orbit_up(header, cfg)
                targets += orbit_targets(
                    cfg.orbit_azimuths_deg, cfg.orbit_elevations_deg, cfg.object_distance, up, view
                )
            except TargetError as e:
                skip("orbit", f"orbit targets skipped: {e}")
        if len(targets) > cfg.max_targets:
            skip(
                "too_many_targets",
                f"{len(targets)} targets > max_targets {cfg.max_targets}; using the first {cfg.max_targets}",
            )
            targets = targets[: cfg.max_targets]
        return targets

    def request(self, req, header, distance: float, cfg: NodeConfig) -> list[Target]:
        """All targets of a service call (TargetError for the first bad one: the caller asked for each)."""
        targets = [
            Target(topic_safe(f), f, self.lookup(header.frame_id, f, header.stamp, cfg))
            for f in req.target_frames
        ]
        for i, stamped in enumerate(req.target_poses):
            pose = pose_to_matrix(stamped.pose)
            (pose,) = self.in_image_frame(stamped.header.frame_id, [pose], header, cfg)
            targets.append(Target(f"pose_{i}", f"pose_{i}", pose, broadcast=True))
        if len(req.azimuths_deg):
            up = self.orbit_up(header, cfg)
            targets += orbit_targets(req.azimuths_deg, req.elevations_deg, distance, up)
        return targets


def _rigid(T: np.ndarray, what: str) -> np.ndarray:
    try:
        return check_rigid(T, what)
    except ValueError as e:
        raise TargetError(str(e)) from None
