"""The data path that the node's two jobs share (a camera frame, a service call): image message ->
tinyldm_ros.image_preparation (with a frame's object inputs) -> tinyldm_ros.views_message (the
engine, the SynthesizedViews answer). Every refusal becomes a RejectedInput with the node's cause, and
every crop fallback or unusable object cue is reported; the node's worker thread runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from tinyldm_ros.conversions import ImageConversionError
from tinyldm_ros.diagnostics import RejectedInput
from tinyldm_ros.engine import Engine
from tinyldm_ros.image_preparation import NO_CAMERA_INFO, PreparedImage, model_poses, prepare_image
from tinyldm_ros.msg import SynthesizedViews
from tinyldm_ros.node_params import NodeConfig
from tinyldm_ros.object_inputs import ObjectInputs
from tinyldm_ros.object_isolation import ObjectCues
from tinyldm_ros.sampler_settings import SamplerSettings, SamplerSettingsError
from tinyldm_ros.targets import Target, TargetError, TargetResolver
from tinyldm_ros.view_checks import ViewsError
from tinyldm_ros.views_message import synthesize_views
from tinyldm_ros.work_queue import Frame


class ViewPipeline:
    """Prepares images and synthesizes their views for the node; `report(cause, message, kind)` is
    the node's counted, throttled log of bad input, `warn` its logger's warning."""

    def __init__(
        self,
        engine: Engine,
        provider: str,
        targets: TargetResolver,
        objects: ObjectInputs,
        report: Callable[..., None],
        warn: Callable[[str], None],
    ) -> None:
        self.engine = engine
        self.provider = provider
        self.targets = targets
        self.objects = objects
        self.report = report
        self.warn = warn
        self._warned_no_camera_info = False

    def prepare_frame(
        self, msg: Image, camera_info: CameraInfo | None, cfg: NodeConfig
    ) -> tuple[PreparedImage, float]:
        """A camera frame with the object inputs matched to its stamp (may wait object_wait_s): the
        prepared image and the object distance (from depth, else the parameter)."""
        cues = self.objects.cues_for(msg.header, self.report)
        image = self.prepare(msg, camera_info, cfg, cues)
        return image, image.object_distance or cfg.object_distance

    def prepare(
        self, msg: Image, camera_info: CameraInfo | None, cfg: NodeConfig, cues: ObjectCues | None = None
    ) -> PreparedImage:
        """tinyldm_ros.image_preparation, with its refusals, crop fallbacks and unusable cues reported."""
        up = None  # the world's up levels the virtual camera (docs/node.md); the camera's own without
        if cues is not None and cfg.orbit_up_frame:
            with contextlib.suppress(TargetError):
                up = self.targets.orbit_up(msg.header, cfg)
        size, feather = self.engine.info.image_size, self.objects.cfg.mask_feather_px
        try:
            image = prepare_image(msg, camera_info, size, cfg.training_fov_deg, cues, feather, up)
        except ImageConversionError as e:
            where = f"image from frame {msg.header.frame_id!r}: {e}"
            raise RejectedInput("image", where, e.cause) from None
        for problem in image.problems:
            self.report(problem.cause, problem.message, problem.kind)
        if image.centre_crop_because == NO_CAMERA_INFO:
            if not self._warned_no_camera_info:
                self._warned_no_camera_info = True
                self.warn(
                    "no camera_info: centre-cropping the image; publish camera_info so the node crops "
                    "the training camera's field of view around the principal point"
                )
        elif image.centre_crop_because:
            self.report("camera_info", f"{image.centre_crop_because}; centre-cropping")
        return image

    def synthesize(
        self,
        frame: Frame,
        image: PreparedImage,
        targets: list[Target],
        cfg: NodeConfig,
        settings: SamplerSettings,
        seed: int,
        distance: float,
        start: float,
        prepared: float,
        wait_from: float | None = None,
    ) -> tuple[SynthesizedViews, np.ndarray]:
        """tinyldm_ros.views_message.synthesize_views, its refusals mapped to the node's causes.
        `start` / `prepared`: when the job began / its input was ready; `wait_from`: when it was asked
        for (default: the frame's receipt)."""
        poses = np.stack([t.pose for t in targets])
        rel = model_poses(poses, image, self.engine.info.training_radius, distance)
        try:
            result, views = synthesize_views(
                self.engine, frame.image.header, image, targets, rel, settings, seed, cfg.output_size
            )
        except SamplerSettingsError as e:
            raise RejectedInput("bad_request", str(e)) from None
        except ViewsError as e:
            raise RejectedInput("bad_views", f"no views published: {e}") from None
        except ValueError as e:
            raise RejectedInput("engine_input", f"engine refused the input: {e}") from None
        result.object_distance = float(distance)
        result.provider = self.provider
        result.wait_ms = (start - (wait_from if wait_from is not None else frame.received)) * 1e3
        result.prepare_ms = (prepared - start) * 1e3
        return result, views
