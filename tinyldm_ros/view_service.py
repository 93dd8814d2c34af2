"""The synthesize_view service's own rules: a request's values where it gives them, else the node's
parameters; how many targets a call may ask for; what a successful answer says. The node's worker runs
the call like a camera frame (tinyldm_ros.node)."""

from __future__ import annotations

from tinyldm_ros.diagnostics import RejectedInput
from tinyldm_ros.msg import SynthesizedViews
from tinyldm_ros.node_params import SPECS, NodeConfig
from tinyldm_ros.numbers import NumberError, checked_number
from tinyldm_ros.sampler_settings import SamplerSettings
from tinyldm_ros.srv import SynthesizeView

OBJECT_DISTANCE_M = SPECS["object_distance"][1]  # a call's distance has the parameter's range


def call_settings(
    req: SynthesizeView.Request, cfg: NodeConfig, eta: float
) -> tuple[SamplerSettings, int, float]:
    """(sampler settings, seed, object_distance) of a call: a value <= 0 (< 0 where 0 is valid) means
    the node's parameter. A NaN or infinite field, or an object_distance outside the parameter's
    range, is refused naming the field (NaN compares false and would silently become the default).
    The engine checks the settings; eta is the model's."""
    try:
        for name in ("guidance", "temperature", "object_distance"):
            checked_number(name, getattr(req, name))
        distance = cfg.object_distance
        if req.object_distance > 0:
            distance = checked_number("object_distance", req.object_distance, *OBJECT_DISTANCE_M)
    except NumberError as e:
        raise RejectedInput("bad_request", str(e)) from None
    settings = SamplerSettings(
        req.steps if req.steps > 0 else cfg.steps,
        float(req.guidance) if req.guidance >= 0 else cfg.guidance,
        float(req.temperature) if req.temperature >= 0 else cfg.temperature,
        eta,
    )
    seed = req.seed if req.seed >= 0 else cfg.seed
    return settings, seed, distance


def check_target_count(req: SynthesizeView.Request, max_targets: int) -> None:
    n = len(req.target_frames) + len(req.target_poses) + len(req.azimuths_deg)
    if n == 0:
        raise RejectedInput("bad_request", "no targets: give target_frames, target_poses or azimuths_deg")
    if n > max_targets:
        raise RejectedInput("too_many_targets", f"{n} targets > max_targets {max_targets}")


def success_message(result: SynthesizedViews, settings: SamplerSettings, seed: int) -> str:
    return (
        f"{len(result.views)} views in {result.total_ms:.1f} ms ({result.sampler}, steps {settings.steps}, "
        f"guidance {settings.guidance:g}, temperature {settings.temperature:g}, seed {seed}, "
        f"on {result.provider})"
    )
