"""nvs_node: camera images + target poses in, synthesized novel views out (see docs/node.md).

    python -m tinyldm_ros.node --ros-args -p model_dir:=models/default -r image:=/camera/image_raw

Threading: callbacks only store messages and put work in the WorkQueue (tinyldm_ros.work_queue); the
worker thread does everything slow (decode, crop, TF lookups with a timeout, the engine, publishing).
Images go through a one-frame slot: a newer frame replaces an unprocessed one (counted as dropped), so
the node never falls behind the camera. Service calls queue (bounded) beside the slot and go first.

The image's path (tinyldm_ros.view_pipeline): its message -> tinyldm_ros.image_preparation (decode,
crop, resize; a frame's object inputs from tinyldm_ros.object_inputs) -> tinyldm_ros.engine (the
model) -> tinyldm_ros.views_message (the SynthesizedViews answer).
"""

# ruff: noqa: E402 - OPENBLAS_NUM_THREADS must be set before numpy loads (ROS messages import it)
from __future__ import annotations

import os

# numpy's OpenBLAS spreads even the crop's tiny area-resize product over every core and spin-waits:
# on a CPU shared with other nodes, 0.2 ms became 8-15 ms (measured on the 2-core dev machine).
# One thread unless the user chose otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import dataclasses
import sys
import threading
import time
from pathlib import Path

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

from tinyldm_ros import node_params
from tinyldm_ros.conversions import ImageConversionError, check_image
from tinyldm_ros.diagnostics import NodeStats, RejectedInput, ThrottledLog, diagnostic_array
from tinyldm_ros.engine import Engine
from tinyldm_ros.object_inputs import ObjectInputs
from tinyldm_ros.package_paths import shipped
from tinyldm_ros.sampler_settings import SamplerSettings
from tinyldm_ros.srv import SynthesizeView
from tinyldm_ros.targets import TargetError, TargetResolver, stream_target_names, target_transforms
from tinyldm_ros.view_outputs import ViewOutputs
from tinyldm_ros.view_pipeline import ViewPipeline
from tinyldm_ros.view_service import call_settings, check_target_count, success_message
from tinyldm_ros.work_queue import Frame, Request, Warmup, WorkQueue


class NvsNode(Node):
    def __init__(self, node_name: str = "nvs_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        start = node_params.declare_read_only(self)
        model_dir = (
            Path(start.model_dir) if start.model_dir else shipped("models/default", marker="model.json")
        )
        self.engine = Engine(
            model_dir,
            provider=start.provider,
            intra_op_threads=start.intra_op_threads or None,
            workers=start.engine_workers or None,
        )
        info = self.engine.info
        self.provider = ",".join(self.engine.providers[:1])
        self.cfg = cfg = node_params.declare_the_rest(self, start, info.sampler, info.num_train_timesteps)
        # As ros2/demos does: refuse a bad change before it is set, apply a good one after.
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.warm_up(self._targets_per_frame(0))

        self.stats = NodeStats()
        self.log_bad = ThrottledLog(self.get_logger().warning, cfg.log_throttle_s)
        self._targets = TargetResolver.on(self)

        self._queue = WorkQueue()
        self._latest: Frame | None = None  # the latest image, for service calls without one
        self._latest_info: CameraInfo | None = None
        self._pose_array: PoseArray | None = None

        self._outputs = ViewOutputs(self, lambda: self.cfg)
        self._outputs.ensure(stream_target_names(cfg))
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        image_qos = qos_profile_sensor_data if cfg.image_qos == "sensor_data" else QoSProfile(depth=5)
        self.create_subscription(Image, "image", self._on_image, image_qos)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, image_qos)
        self._objects = ObjectInputs(self, image_qos)  # mask / depth / roi / detections, optional
        self._pipeline = ViewPipeline(
            self.engine, self.provider, self._targets, self._objects, self._bad, self.get_logger().warning
        )
        self.create_subscription(PoseArray, "target_poses", self._on_target_poses, 5)
        # Reentrant: a call awaiting the worker must not hold up other calls or the image callbacks
        # (an async callback keeps a mutually exclusive group busy until it returns).
        # A deep request queue: with ROS 2's default (10) a burst loses calls in DDS without any answer;
        # those that reach the node beyond max_pending_requests get the prompt `busy` instead.
        self.create_service(
            SynthesizeView,
            "synthesize_view",
            self._on_synthesize,
            qos_profile=QoSProfile(depth=cfg.service_queue_depth),
            callback_group=ReentrantCallbackGroup(),
        )
        self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)

        self._worker = threading.Thread(target=self._work, name="nvs_worker", daemon=True)
        self._worker.start()
        settings = self.engine.settings(cfg.steps, cfg.guidance, cfg.temperature)
        sampler = "one-step student" if self.engine.sampler_for(settings) == "one_step" else "DDIM"
        self.get_logger().info(
            f"model {model_dir} ({info.image_size}px, training radius {info.training_radius}) on "
            f"{self.engine.providers[0]} ({self.engine.workers} worker thread(s)); {sampler} at steps "
            f"{cfg.steps}, guidance {cfg.guidance}, temperature {cfg.temperature}; "
            f"targets: {stream_target_names(cfg) or 'none yet (target_frames / orbit / target_poses)'}"
        )

    # ------------------------------------------------------------------ callbacks (executor thread)

    def _on_image(self, msg: Image) -> None:
        now = time.monotonic()
        self.stats.count("received")
        try:
            check_image(msg)  # O(1): a malformed message must never displace a good frame
        except ImageConversionError as e:
            self._bad("image", f"image from frame {msg.header.frame_id!r} rejected: {e}", e.cause)
            return
        frame = Frame(msg, self._latest_info, now)
        self._latest = frame
        if not self._outputs.has_listeners():
            self.stats.count("idle")
            return
        if self._queue.put_frame(frame):
            self.stats.count("dropped")

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
        self._outputs.ensure([f"pose_{i}" for i in range(n)])
        self._pose_array = msg
        self._queue.put_warmup(self._targets_per_frame(n))

    async def _on_synthesize(self, request, response):
        self.stats.count("requests")
        future = Future(executor=self.executor)
        future.add_done_callback(lambda _: None)  # makes set_result (worker thread) wake the executor
        pending = self._queue.put_request(
            Request(request, future, time.monotonic()), self.cfg.max_pending_requests
        )
        if pending is not None:
            self.stats.count("requests_failed")
            self._bad("busy", f"{pending} service calls already pending; refusing one")
            response.success = False
            response.message = (
                f"busy: {pending} requests already pending (max_pending_requests "
                f"{self.cfg.max_pending_requests}); try again"
            )
            self.stats.count("requests_answered")
            return response
        success, message, result = await future
        response.success, response.message = success, message
        if result is not None:
            response.result = result
        if not success:
            self.stats.count("requests_failed")
        self.stats.count("requests_answered")
        return response

    def _validate_parameters(self, params: list[rclpy.parameter.Parameter]) -> SetParametersResult:
        try:
            node_params.updated(self.cfg, params, self.engine.info.num_train_timesteps)
        except ValueError as e:
            return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[rclpy.parameter.Parameter]) -> None:
        cfg = node_params.updated(self.cfg, params, self.engine.info.num_train_timesteps)
        if any(p.name == "diagnostics_period_s" for p in params):
            self._diag_timer.cancel()
            self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        self.log_bad.period_s = cfg.log_throttle_s
        self._outputs.ensure(stream_target_names(cfg))
        self.cfg = cfg  # one assignment: the worker sees the old or the new snapshot, never a mix

    def _publish_diagnostics(self) -> None:
        warnings = []
        if self._targets.tf_missing and self.cfg.target_frames:
            warnings.append("target_frames set but tf2_ros is missing")
        snapshot = self.stats.snapshot()
        new_rejections = self.stats.rejected_since_last_status(snapshot)
        if new_rejections:
            warnings.append(f"{new_rejections} inputs rejected since the last status (see rejected_*)")
        self._diag_pub.publish(
            diagnostic_array(
                self.get_clock().now().to_msg(), self.get_name(), self.provider, snapshot, warnings
            )
        )

    def _targets_per_frame(self, poses: int) -> int:
        return max(1, min(len(stream_target_names(self.cfg)) + poses, self.cfg.max_targets))

    def warm_up(self, views: int) -> None:
        """Build the engine's sessions for `views` targets now (~0.1-0.3 s per new batch size), not on
        the next frame; the node does it for the counts it knows, call it for others."""
        self.engine.warmup(views, guidance=self.cfg.guidance)  # returns at once when already warm

    def _bad(self, cause: str, message: str, kind: str = "") -> None:
        """Count bad input under `cause`; log it per cause and `kind` (e.g. image: encoding, size,
        step, data_length), one throttle each, so that every kind of reason is seen."""
        self.stats.reject(cause)
        self.log_bad(f"{cause}_{kind}" if kind else cause, message)

    # ------------------------------------------------------------------ worker thread

    def _work(self) -> None:
        while (job := self._queue.take()) is not None:
            try:
                if isinstance(job, Warmup):
                    self.warm_up(job.views)
                elif isinstance(job, Request):
                    self._serve(job)
                else:
                    self._queue.pace(self.cfg.max_rate_hz)
                    self._process_frame(job)
            except RejectedInput as e:
                self._bad(e.cause, str(e), e.kind)
            except Exception as e:  # noqa: BLE001 - a bug must not kill the worker; say it loudly
                if not self.context.ok():
                    return  # Ctrl-C: rclpy shut the context down before destroy_node() stopped us
                self.get_logger().error(f"worker: unexpected {type(e).__name__}: {e}")
                self.stats.reject("internal")

    def _process_frame(self, frame: Frame) -> None:
        cfg = self.cfg
        start = time.monotonic()
        views_wanted = self._outputs.wants_views()
        markers_wanted = self._outputs.wants_markers()
        if not (views_wanted or markers_wanted):
            self.stats.count("idle")
            return
        header = frame.image.header
        # camera_info travels on its own topic: it may arrive just after the image it belongs to
        info = frame.camera_info or self._latest_info
        image, distance = None, cfg.object_distance
        if views_wanted:  # depth's distance, the virtual camera's orbit centre (the parameter without)
            image, distance = self._pipeline.prepare_frame(frame.image, info, cfg)
        view = image.view if image else None
        cfg = dataclasses.replace(cfg, object_distance=distance)
        targets = self._targets.stream(header, cfg, self._pose_array, self._bad, view)
        if not targets:
            raise RejectedInput(
                "no_targets",
                "no target could be resolved for this image (set target_frames or "
                "orbit_azimuths_deg, or publish target_poses)",
            )
        prepared = time.monotonic()
        if markers_wanted:
            self._outputs.publish_markers(header, targets, cfg)
        if not views_wanted:
            return
        settings = SamplerSettings(cfg.steps, cfg.guidance, cfg.temperature, self.engine.info.sampler.eta)
        result, views = self._pipeline.synthesize(
            frame, image, targets, cfg, settings, cfg.seed, distance, start, prepared
        )
        if self._targets.tf is not None:  # the made-up target frames, so that RViz can place their views
            self._targets.tf.broadcast(target_transforms(header, targets))
        self._outputs.publish_views(result, targets, cfg)
        if cfg.publish_mosaic:
            self._outputs.publish_mosaic(image.crop, views, header)
        result.total_ms = (time.monotonic() - frame.received) * 1e3
        self._outputs.publish_result(result)
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
            settings, seed, distance = call_settings(req, cfg, self.engine.info.sampler.eta)
            image = self._pipeline.prepare(frame.image, camera_info, cfg)
            check_target_count(req, cfg.max_targets)
            try:
                targets = self._targets.request(req, frame.image.header, distance, cfg)
            except TargetError as e:
                raise RejectedInput("bad_request", f"target: {e}") from None
            prepared = time.monotonic()
            result, _ = self._pipeline.synthesize(
                frame, image, targets, cfg, settings, seed, distance, start, prepared, wait_from=job.received
            )
            result.total_ms = (time.monotonic() - job.received) * 1e3
            job.future.set_result((True, success_message(result, settings, seed), result))
        except RejectedInput as e:
            self._bad(e.cause, f"service: {e}", e.kind)
            job.future.set_result((False, f"{e.cause}: {e}", None))
        except Exception as e:  # noqa: BLE001 - the caller gets the reason; the node keeps running
            self.get_logger().error(f"service: unexpected {type(e).__name__}: {e}")
            job.future.set_result((False, f"internal error: {type(e).__name__}: {e}", None))

    # ------------------------------------------------------------------ lifecycle

    def destroy_node(self) -> None:
        for job in self._queue.close():
            job.future.set_result((False, "node shutting down", None))
        self._worker.join(timeout=5.0)
        if self._targets.tf is not None:
            self._targets.tf.close()
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
