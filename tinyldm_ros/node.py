"""nvs_node: camera images + target poses in, synthesized novel views out (see docs/node.md).

    python -m tinyldm_ros.node --ros-args -p model_dir:=models/default -r image:=/camera/image_raw

Threading: callbacks only store messages and wake the worker thread; the worker does everything
slow (decode, crop, TF lookups with a timeout, the engine, publishing). Images go through a
one-frame slot: a newer frame replaces an unprocessed one (counted as dropped), so the node never
falls behind the camera. Service calls queue (bounded) beside the slot and go first.
"""

# ruff: noqa: E402 - OPENBLAS_NUM_THREADS must be set before numpy loads (ROS messages import it)
from __future__ import annotations

import os

# numpy's OpenBLAS spreads even the crop's tiny area-resize product over every core and spin-waits:
# on a CPU shared with other nodes, 0.2 ms became 8-15 ms (measured on the 2-core dev machine).
# One thread unless the user chose otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import collections
import contextlib
import dataclasses
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.task import Future
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from tinyldm_ros import node_params
from tinyldm_ros.camera_model import training_fov_box, view_camera_info
from tinyldm_ros.conversions import ImageConversionError, check_image, image_to_numpy, numpy_to_image, to_rgb
from tinyldm_ros.diagnostics import NodeStats, ThrottledLog, diagnostic_array
from tinyldm_ros.engine import Engine
from tinyldm_ros.frustums import frustum_markers
from tinyldm_ros.mosaic import mosaic, resize_views
from tinyldm_ros.msg import SynthesizedViews
from tinyldm_ros.node_params import NodeConfig
from tinyldm_ros.package_paths import shipped
from tinyldm_ros.preprocess import centre_crop_box, crop_and_resize, float01_to_uint8
from tinyldm_ros.srv import SynthesizeView
from tinyldm_ros.targets import (
    Target,
    TargetError,
    TfLookup,
    matrix_to_pose,
    orbit_targets,
    pose_to_matrix,
    target_transforms,
    to_model_units,
    topic_safe,
)


class RejectedInput(Exception):  # noqa: N818 - not an error of the node: input it refuses
    """Input the node refuses; `cause` keys the throttled log and the diagnostics counter."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass
class Frame:
    image: Image
    camera_info: CameraInfo | None
    received: float  # time.monotonic() at receipt


@dataclass
class Request:
    request: SynthesizeView.Request
    future: Future
    received: float


@dataclass(frozen=True)
class Sampling:
    """The sampler settings of one engine call (the node's parameters, or a service call's own)."""

    steps: int
    seed: int
    guidance: float
    temperature: float


def default_model_dir() -> Path:
    """The installed package's models/default, else the source checkout's."""
    return shipped("models/default", marker="model.json")


class NvsNode(Node):
    def __init__(self, node_name: str = "nvs_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        defaults = NodeConfig()
        node_params.declare(self, node_params.READ_ONLY, defaults)
        start = node_params.read(self, defaults)
        model_dir = Path(start.model_dir) if start.model_dir else default_model_dir()
        self.engine = Engine(
            model_dir,
            provider=start.provider,
            intra_op_threads=start.intra_op_threads or None,
            workers=start.engine_workers or None,
        )
        info = self.engine.info
        self.provider = ",".join(self.engine.providers[:1])
        # Sampler defaults come from the model; YAML / command-line values still override them.
        model_defaults = dataclasses.replace(
            defaults,
            steps=info.sampler.steps,
            guidance=info.sampler.guidance,
            temperature=info.sampler.temperature,
        )
        node_params.declare(
            self, [n for n in node_params.SPECS if n not in node_params.READ_ONLY], model_defaults
        )
        cfg = node_params.read(self, model_defaults)
        problem = node_params.validate(cfg, info.num_train_timesteps)
        if problem:
            raise ValueError(f"invalid parameters: {problem}")
        self.cfg = cfg
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.warm_up(self._targets_per_frame(0))

        self.stats = NodeStats()
        self._rejected_at_last_status = 0
        self.log_bad = ThrottledLog(self.get_logger().warning, cfg.log_throttle_s)
        self._warned_no_camera_info = False
        self._tf: TfLookup | None = None
        self._tf_missing = ""
        try:
            self._tf = TfLookup(self)
        except ImportError as e:
            self._tf_missing = f"tf2_ros is not available ({e}); TF targets need a ROS 2 install with tf2_ros"

        # Latest-frame slot, service queue and the latest image (for requests without one).
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._requests: collections.deque[Request] = collections.deque()
        self._warm_views = 0  # a target count for the worker to warm the engine up for
        self._latest: Frame | None = None
        self._latest_info: CameraInfo | None = None
        self._pose_array: PoseArray | None = None
        self._stop = False
        self._next_frame_at = 0.0
        self._listeners_checked = (0.0, False, False)

        out_qos = QoSProfile(depth=1)
        self._view_pubs: dict[str, rclpy.publisher.Publisher] = {}
        self._view_info_pubs: dict[str, rclpy.publisher.Publisher] = {}
        self._combined_pub = self.create_publisher(SynthesizedViews, "synthesized_views", out_qos)
        self._mosaic_pub = self.create_publisher(Image, "~/mosaic", out_qos)
        self._marker_pub = self.create_publisher(MarkerArray, "~/frustums", out_qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._ensure_view_publishers(self._stream_target_names(cfg))

        image_qos = qos_profile_sensor_data if cfg.image_qos == "sensor_data" else QoSProfile(depth=5)
        self.create_subscription(Image, "image", self._on_image, image_qos)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, image_qos)
        self.create_subscription(PoseArray, "target_poses", self._on_target_poses, 5)
        # Reentrant: a call awaiting the worker must not hold up other calls or the image callbacks
        # (an async callback keeps a mutually exclusive group busy until it returns).
        self.create_service(
            SynthesizeView, "synthesize_view", self._on_synthesize, callback_group=ReentrantCallbackGroup()
        )
        self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)

        self._worker = threading.Thread(target=self._work, name="nvs_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"model {model_dir} ({info.image_size}px, training radius {info.training_radius}) on "
            f"{self.engine.providers[0]} ({self.engine.workers} worker thread(s)); steps {cfg.steps}, "
            f"guidance {cfg.guidance}, temperature {cfg.temperature}; "
            f"targets: {self._stream_target_names(cfg) or 'none yet (target_frames / orbit / target_poses)'}"
        )

    # ------------------------------------------------------------------ callbacks (executor thread)

    def _on_image(self, msg: Image) -> None:
        now = time.monotonic()
        self.stats.count("received")
        try:
            check_image(msg)  # O(1): a malformed message must never displace a good frame
        except ImageConversionError as e:
            self._bad("image", f"image from frame {msg.header.frame_id!r} rejected: {e}")
            return
        frame = Frame(msg, self._latest_info, now)
        with self._cond:
            self._latest = frame
            if not self._has_listeners():
                self.stats.count("idle")
                return
            if self._slot is not None:
                self.stats.count("dropped")
            self._slot = frame
            self._cond.notify()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._latest_info = msg

    def _on_target_poses(self, msg: PoseArray) -> None:
        n = min(len(msg.poses), self.cfg.max_targets)
        if len(msg.poses) > self.cfg.max_targets:
            self._bad(
                "too_many_targets",
                f"target_poses has {len(msg.poses)} poses > max_targets "
                f"{self.cfg.max_targets}; using the first {n}",
            )
        self._ensure_view_publishers([f"pose_{i}" for i in range(n)])
        self._pose_array = msg
        with self._cond:
            self._warm_views = self._targets_per_frame(n)
            self._cond.notify()

    async def _on_synthesize(self, request, response):
        self.stats.count("requests")
        future = Future(executor=self.executor)
        future.add_done_callback(lambda _: None)  # makes set_result (worker thread) wake the executor
        with self._cond:
            if len(self._requests) >= self.cfg.max_pending_requests:
                self.stats.count("requests_failed")
                self._bad("busy", f"{len(self._requests)} service calls already pending; refusing one")
                response.success = False
                response.message = (
                    f"busy: {len(self._requests)} requests already pending (max_pending_requests "
                    f"{self.cfg.max_pending_requests}); try again"
                )
                return response
            self._requests.append(Request(request, future, time.monotonic()))
            self._cond.notify()
        success, message, result = await future
        response.success, response.message = success, message
        if result is not None:
            response.result = result
        if not success:
            self.stats.count("requests_failed")
        return response

    def _on_set_parameters(self, params: list[rclpy.parameter.Parameter]) -> SetParametersResult:
        changes = {p.name: node_params.value_of(p) for p in params if p.name in node_params.SPECS}
        for name in changes:
            if name in node_params.READ_ONLY:
                return SetParametersResult(
                    successful=False, reason=f"{name} is read at start: restart the node"
                )
        try:
            cfg = dataclasses.replace(self.cfg, **changes)
        except TypeError as e:
            return SetParametersResult(successful=False, reason=str(e))
        problem = node_params.validate(cfg, self.engine.info.num_train_timesteps)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        if "diagnostics_period_s" in changes:
            self._diag_timer.cancel()
            self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        self.log_bad.period_s = cfg.log_throttle_s
        self._ensure_view_publishers(self._stream_target_names(cfg))
        self.cfg = cfg  # one assignment: the worker sees the old or the new snapshot, never a mix
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        warnings = []
        if self._tf_missing and self.cfg.target_frames:
            warnings.append("target_frames set but tf2_ros is missing")
        snapshot = self.stats.snapshot()
        new_rejections = snapshot["rejected"] - self._rejected_at_last_status
        self._rejected_at_last_status = snapshot["rejected"]
        if new_rejections:
            warnings.append(f"{new_rejections} inputs rejected since the last status (see rejected_*)")
        self._diag_pub.publish(
            diagnostic_array(
                self.get_clock().now().to_msg(), self.get_name(), self.provider, snapshot, warnings
            )
        )

    # ------------------------------------------------------------------ helpers

    def _targets_per_frame(self, poses: int) -> int:
        return max(1, min(len(self._stream_target_names(self.cfg)) + poses, self.cfg.max_targets))

    def warm_up(self, views: int) -> None:
        """Build the engine's sessions for `views` targets (~0.1-0.3 s per batch size the first time
        it is used) now, not on the next camera frame. The node does it at start for its TF and orbit
        targets and when a target_poses array arrives; call it for a count it cannot know in advance."""
        self.engine.warmup(views, guidance=self.cfg.guidance)  # returns at once when already warm

    def _stream_target_names(self, cfg: NodeConfig) -> list[str]:
        names = [topic_safe(f) for f in cfg.target_frames]
        with contextlib.suppress(TargetError):
            names += [t.name for t in orbit_targets(cfg.orbit_azimuths_deg, cfg.orbit_elevations_deg, 1.0)]
        return names

    def _ensure_view_publishers(self, names: list[str]) -> None:
        for name in names:
            if name not in self._view_pubs:
                self._view_pubs[name] = self.create_publisher(Image, f"views/{name}", QoSProfile(depth=1))
                # for RViz's Camera display, which overlays an image seen through its camera_info
                self._view_info_pubs[name] = self.create_publisher(
                    CameraInfo, f"views/{name}/camera_info", QoSProfile(depth=1)
                )

    def _has_listeners(self) -> bool:
        """Whether anyone subscribes to an output (cached for 0.2 s: it is asked at camera rate)."""
        checked_at, views, markers = self._listeners_checked
        now = time.monotonic()
        if now - checked_at > 0.2:
            views = self._wants_views()
            markers = self.cfg.publish_frustums and self._marker_pub.get_subscription_count() > 0
            self._listeners_checked = (now, views, markers)
        return views or markers

    def _wants_views(self) -> bool:
        pubs = [self._combined_pub, *list(self._view_pubs.values())]
        if self.cfg.publish_mosaic:
            pubs.append(self._mosaic_pub)
        return any(p.get_subscription_count() > 0 for p in pubs)

    def _bad(self, cause: str, message: str) -> None:
        self.stats.reject(cause)
        self.log_bad(cause, message)

    # ------------------------------------------------------------------ worker thread

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    if self._requests or self._warm_views:
                        break
                    wait = self._next_frame_at - time.monotonic()
                    if self._slot is not None and wait <= 0:
                        break
                    self._cond.wait(timeout=wait if self._slot is not None else None)
                if self._stop:
                    return
                warm, self._warm_views = self._warm_views, 0
                job = self._requests.popleft() if self._requests and not warm else None
                frame = None
                if job is None and not warm:
                    frame, self._slot = self._slot, None
            try:
                if warm:
                    self.warm_up(warm)
                elif job is not None:
                    self._serve(job)
                else:
                    rate = self.cfg.max_rate_hz
                    self._next_frame_at = time.monotonic() + (1.0 / rate if rate > 0 else 0.0)
                    self._process_frame(frame)
            except RejectedInput as e:
                self._bad(e.cause, str(e))
            except Exception as e:  # noqa: BLE001 - a bug must not kill the worker; say it loudly
                if not self.context.ok():
                    return  # Ctrl-C: rclpy shut the context down before destroy_node() stopped us
                self.get_logger().error(f"worker: unexpected {type(e).__name__}: {e}")
                self.stats.reject("internal")

    def _process_frame(self, frame: Frame) -> None:
        cfg = self.cfg
        start = time.monotonic()
        views_wanted = self._wants_views()
        markers_wanted = cfg.publish_frustums and self._marker_pub.get_subscription_count() > 0
        if not (views_wanted or markers_wanted):
            self.stats.count("idle")
            return
        header = frame.image.header
        # camera_info travels on its own topic: it may arrive just after the image it belongs to
        info = frame.camera_info or self._latest_info
        crop = self._prepare_image(frame.image, info, cfg) if views_wanted else None
        targets = self._stream_targets(header, cfg)
        if not targets:
            raise RejectedInput(
                "no_targets",
                "no target could be resolved for this image (set target_frames or "
                "orbit_azimuths_deg, or publish target_poses)",
            )
        prepared = time.monotonic()
        if markers_wanted:
            self._marker_pub.publish(
                frustum_markers(header, targets, cfg.training_fov_deg, cfg.object_distance)
            )
        if not views_wanted:
            return
        result, views = self._synthesize(
            frame,
            crop,
            targets,
            cfg,
            Sampling(cfg.steps, cfg.seed, cfg.guidance, cfg.temperature),
            cfg.object_distance,
            start,
            prepared,
        )
        if self._tf is not None:  # the made-up target frames, so that RViz can place their views
            self._tf.broadcast(target_transforms(header, targets))
        for target, view in zip(targets, result.views, strict=True):
            pub = self._view_pubs.get(target.name)
            if pub is not None:
                pub.publish(view)
            info_pub = self._view_info_pubs.get(target.name)
            if info_pub is not None and info_pub.get_subscription_count():
                info_pub.publish(view_camera_info(view.width, cfg.training_fov_deg, view.header))
        if cfg.publish_mosaic:
            self._mosaic_pub.publish(numpy_to_image(mosaic(crop[1], views), "rgb8", header))
        result.total_ms = (time.monotonic() - frame.received) * 1e3
        self._combined_pub.publish(result)
        self.stats.record(result.total_ms, result.synthesis_ms)

    def _serve(self, job: Request) -> None:
        """Answer one service call; every failure becomes an error response, never an exception."""
        start = time.monotonic()
        req, cfg = job.request, self.cfg
        try:
            if req.image.height == 0 and req.image.width == 0 and len(req.image.data) == 0:
                frame = self._latest
                if frame is None:
                    raise RejectedInput(
                        "no_image",
                        "the request has no image and none was received yet on "
                        f"{self.resolve_topic_name('image')}",
                    )
            else:
                frame = Frame(req.image, None, job.received)
            camera_info = req.camera_info if req.camera_info.width > 0 else None
            if camera_info is None and frame is self._latest:
                camera_info = frame.camera_info or self._latest_info
            steps = req.steps if req.steps > 0 else cfg.steps
            seed = req.seed if req.seed >= 0 else cfg.seed
            guidance = float(req.guidance) if req.guidance >= 0 else cfg.guidance
            temperature = float(req.temperature) if req.temperature >= 0 else cfg.temperature
            distance = req.object_distance if req.object_distance > 0 else cfg.object_distance
            if not (math.isfinite(guidance) and math.isfinite(distance)):
                raise RejectedInput("bad_request", "guidance and object_distance must be finite")
            if steps > self.engine.info.num_train_timesteps:
                raise RejectedInput(
                    "bad_request",
                    f"steps {steps} > the model's {self.engine.info.num_train_timesteps} trained timesteps",
                )
            crop = self._prepare_image(frame.image, camera_info, cfg)
            targets = self._request_targets(req, frame.image.header, distance, cfg)
            prepared = time.monotonic()
            result, _ = self._synthesize(
                frame,
                crop,
                targets,
                cfg,
                Sampling(steps, seed, guidance, temperature),
                distance,
                start,
                prepared,
                wait_from=job.received,
            )
            result.total_ms = (time.monotonic() - job.received) * 1e3
            message = (
                f"{len(targets)} views in {result.total_ms:.1f} ms (steps {steps}, guidance "
                f"{guidance:g}, temperature {temperature:g}, seed {seed}, on {self.provider})"
            )
            job.future.set_result((True, message, result))
        except RejectedInput as e:
            self._bad(e.cause, f"service: {e}")
            job.future.set_result((False, f"{e.cause}: {e}", None))
        except Exception as e:  # noqa: BLE001 - the caller gets the reason; the node keeps running
            self.get_logger().error(f"service: unexpected {type(e).__name__}: {e}")
            job.future.set_result((False, f"internal error: {type(e).__name__}: {e}", None))

    def _prepare_image(self, msg: Image, camera_info: CameraInfo | None, cfg: NodeConfig):
        """Decode, crop the training field of view, resize: (float01 SxSx3, uint8 SxSx3)."""
        try:
            array, order = image_to_numpy(msg)
        except ImageConversionError as e:
            raise RejectedInput("image", f"image from frame {msg.header.frame_id!r}: {e}") from None
        rgb = to_rgb(array, order)
        box = self._crop_box(msg, camera_info, cfg)
        x = crop_and_resize(rgb, self.engine.info.image_size, box)
        return x, float01_to_uint8(x)

    def _crop_box(self, msg: Image, info: CameraInfo | None, cfg: NodeConfig):
        if info is None or info.width == 0:
            if not self._warned_no_camera_info:
                self._warned_no_camera_info = True
                self.get_logger().warning(
                    "no camera_info: centre-cropping the image; publish camera_info so the node crops "
                    "the training camera's field of view around the principal point"
                )
            return centre_crop_box(msg.height, msg.width)
        try:
            return training_fov_box(msg.width, msg.height, info, cfg.training_fov_deg)
        except ValueError as e:
            self._bad("camera_info", f"{e}; centre-cropping")
            return centre_crop_box(msg.height, msg.width)

    def _lookup(self, image_frame: str, source_frame: str, stamp, cfg: NodeConfig) -> np.ndarray:
        if self._tf is None:
            raise TargetError(self._tf_missing)
        return self._tf.lookup(image_frame, source_frame, stamp, cfg.tf_timeout_s)

    def _orbit_up(self, header, cfg: NodeConfig) -> np.ndarray | None:
        """+z of `orbit_up_frame` in the image frame at the image stamp; None = the camera's own up."""
        if not cfg.orbit_up_frame:
            return None
        return self._lookup(header.frame_id, cfg.orbit_up_frame, header.stamp, cfg)[:3, 2]

    def _poses_in_image_frame(self, frame_id: str, poses: list[np.ndarray], header, cfg) -> list[np.ndarray]:
        if not frame_id or frame_id == header.frame_id:
            return poses
        T = self._lookup(header.frame_id, frame_id, header.stamp, cfg)
        return [T @ p for p in poses]

    def _stream_targets(self, header, cfg: NodeConfig) -> list[Target]:
        """TF frames, the latest target_poses and the orbit parameters; bad ones are logged and skipped."""
        targets: list[Target] = []
        for frame_id in cfg.target_frames:
            try:
                pose = self._lookup(header.frame_id, frame_id, header.stamp, cfg)
                targets.append(Target(topic_safe(frame_id), frame_id, pose))
            except TargetError as e:
                self._bad("tf", f"target frame {frame_id!r} skipped: {e}")
        pose_array = self._pose_array
        if pose_array is not None:
            try:
                poses = [pose_to_matrix(p) for p in pose_array.poses[: cfg.max_targets]]
                poses = self._poses_in_image_frame(pose_array.header.frame_id, poses, header, cfg)
                targets += [Target(f"pose_{i}", f"pose_{i}", p, broadcast=True) for i, p in enumerate(poses)]
            except TargetError as e:
                self._bad("target_poses", f"target_poses skipped: {e}")
        if cfg.orbit_azimuths_deg:
            try:
                up = self._orbit_up(header, cfg)
                targets += orbit_targets(
                    cfg.orbit_azimuths_deg, cfg.orbit_elevations_deg, cfg.object_distance, up
                )
            except TargetError as e:
                self._bad("orbit", f"orbit targets skipped: {e}")
        if len(targets) > cfg.max_targets:
            self._bad(
                "too_many_targets",
                f"{len(targets)} targets > max_targets {cfg.max_targets}; using the first {cfg.max_targets}",
            )
            targets = targets[: cfg.max_targets]
        return targets

    def _request_targets(self, req, header, distance: float, cfg: NodeConfig) -> list[Target]:
        """All targets of a service call; any bad one fails the call (the caller asked for each)."""
        n = len(req.target_frames) + len(req.target_poses) + len(req.azimuths_deg)
        if n == 0:
            raise RejectedInput("bad_request", "no targets: give target_frames, target_poses or azimuths_deg")
        if n > cfg.max_targets:
            raise RejectedInput("too_many_targets", f"{n} targets > max_targets {cfg.max_targets}")
        try:
            targets = [
                Target(topic_safe(f), f, self._lookup(header.frame_id, f, header.stamp, cfg))
                for f in req.target_frames
            ]
            for i, stamped in enumerate(req.target_poses):
                pose = pose_to_matrix(stamped.pose)
                (pose,) = self._poses_in_image_frame(stamped.header.frame_id, [pose], header, cfg)
                targets.append(Target(f"pose_{i}", f"pose_{i}", pose, broadcast=True))
            if len(req.azimuths_deg):
                up = self._orbit_up(header, cfg)
                targets += orbit_targets(req.azimuths_deg, req.elevations_deg, distance, up)
        except TargetError as e:
            raise RejectedInput("bad_request", f"target: {e}") from None
        return targets

    def _synthesize(
        self,
        frame: Frame,
        crop,
        targets: list[Target],
        cfg: NodeConfig,
        sampling: Sampling,
        distance: float,
        start: float,
        prepared: float,
        wait_from=None,
    ):
        """Run the engine on all targets in one batch and build the SynthesizedViews message."""
        info = self.engine.info
        rel = np.stack([to_model_units(t.pose, info.training_radius, distance) for t in targets])
        t0 = time.monotonic()
        try:
            views = self.engine.synthesize(
                crop[0],
                rel,
                steps=sampling.steps,
                seed=sampling.seed,
                guidance=sampling.guidance,
                temperature=sampling.temperature,
            )
        except ValueError as e:
            raise RejectedInput("engine_input", f"engine refused the input: {e}") from None
        t1 = time.monotonic()
        views = resize_views(views, cfg.output_size)
        header = frame.image.header
        result = SynthesizedViews()
        result.header = header
        result.target_names = [t.name for t in targets]
        for target, view in zip(targets, views, strict=True):
            msg = numpy_to_image(view, "rgb8")
            msg.header.stamp = header.stamp
            msg.header.frame_id = target.frame_id
            result.views.append(msg)
            result.poses.append(matrix_to_pose(target.pose))
        result.input_crop = numpy_to_image(crop[1], "rgb8", header)
        result.steps, result.seed = int(sampling.steps), int(sampling.seed)
        result.guidance, result.temperature = float(sampling.guidance), float(sampling.temperature)
        result.object_distance = float(distance)
        result.wait_ms = (start - (wait_from if wait_from is not None else frame.received)) * 1e3
        result.prepare_ms = (prepared - start) * 1e3
        result.synthesis_ms = (t1 - t0) * 1e3
        result.provider = self.provider
        return result, views

    # ------------------------------------------------------------------ lifecycle

    def destroy_node(self) -> None:
        with self._cond:
            self._stop = True
            pending, self._requests = list(self._requests), collections.deque()
            self._cond.notify_all()
        for job in pending:
            job.future.set_result((False, "node shutting down", None))
        self._worker.join(timeout=5.0)
        if self._tf is not None:
            self._tf.close()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(
        description="tinyldm_ros novel view synthesis node. ROS arguments go after --ros-args, e.g. "
        "--ros-args -p model_dir:=models/default -r image:=/camera/image_raw",
    )
    parser.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    try:
        node = NvsNode()
    except (ValueError, RuntimeError, OSError, ParameterException) as e:
        print(f"nvs_node: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
