"""Engine to answer: one batch of views for a prepared image and its targets, as the SynthesizedViews
message that the node publishes and the service returns."""

from __future__ import annotations

import time

import numpy as np

from tinyldm_ros.conversions import numpy_to_image
from tinyldm_ros.engine import Engine
from tinyldm_ros.image_preparation import PreparedImage
from tinyldm_ros.mosaic import resize_views
from tinyldm_ros.msg import SynthesizedViews
from tinyldm_ros.sampler_settings import SamplerSettings
from tinyldm_ros.targets import Target, matrix_to_pose


def synthesize_views(
    engine: Engine,
    header,
    image: PreparedImage,
    targets: list[Target],
    relative_poses: np.ndarray,
    settings: SamplerSettings,
    seed: int,
    output_size: int,
) -> tuple[SynthesizedViews, np.ndarray]:
    """All targets in one engine call (its InputError / SettingsError pass through); the message
    and the views resized to output_size (0: the model's size). The caller adds object_distance,
    provider and the wait / prepare times."""
    t0 = time.monotonic()
    views = engine.synthesize(
        image.pixels,
        relative_poses,
        steps=settings.steps,
        seed=seed,
        guidance=settings.guidance,
        temperature=settings.temperature,
        eta=settings.eta,
    )
    synthesis_ms = (time.monotonic() - t0) * 1e3
    views = resize_views(views, output_size)
    result = SynthesizedViews()
    result.header = header
    result.target_names = [t.name for t in targets]
    for target, view in zip(targets, views, strict=True):
        msg = numpy_to_image(view, "rgb8")
        msg.header.stamp = header.stamp
        msg.header.frame_id = target.frame_id
        result.views.append(msg)
        result.poses.append(matrix_to_pose(target.pose))
    result.input_crop = numpy_to_image(image.crop, "rgb8", header)
    result.steps, result.seed = int(settings.steps), int(seed)
    # from the settings, not engine.last_timing, which another thread's call may have replaced
    checked = engine.settings(settings.steps, settings.guidance, settings.temperature, settings.eta)
    result.sampler = engine.sampler_for(checked)
    result.guidance, result.temperature = float(settings.guidance), float(settings.temperature)
    result.synthesis_ms = synthesis_ms
    return result, views
