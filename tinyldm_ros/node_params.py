"""The node's parameters: one table of names, defaults, ranges and descriptions, and a typed snapshot.

`config/nvs.yaml` sets the same names; `ros2 param describe /nvs_node <name>` shows the descriptions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

from tinyldm_ros.object_isolation import OBJECT_DISTANCE_M
from tinyldm_ros.providers import PROVIDERS
from tinyldm_ros.sampler_settings import SamplerSettings, SamplerSettingsError

# The engine loads these once; changing them means a new engine, i.e. a restart.
READ_ONLY = (
    "model_dir",
    "provider",
    "intra_op_threads",
    "engine_workers",
    "image_qos",
    "service_queue_depth",
)


@dataclass(frozen=True)
class NodeConfig:
    """A consistent snapshot of the parameters; the worker reads one per job (replaced, never mutated)."""

    model_dir: str = ""
    provider: str = "auto"
    intra_op_threads: int = 1
    engine_workers: int = 0
    image_qos: str = "sensor_data"
    service_queue_depth: int = 256
    steps: int = 10
    guidance: float = 1.0
    temperature: float = 1.0
    seed: int = 0
    object_distance: float = 1.0
    training_fov_deg: float = 52.0
    target_frames: list[str] = field(default_factory=list)
    orbit_azimuths_deg: list[float] = field(default_factory=lambda: [90.0, 180.0, 270.0])
    orbit_elevations_deg: list[float] = field(default_factory=lambda: [0.0])
    orbit_up_frame: str = ""
    max_targets: int = 16
    output_size: int = 0
    max_rate_hz: float = 0.0
    publish_mosaic: bool = True
    publish_frustums: bool = True
    tf_timeout_s: float = 0.05
    max_pending_requests: int = 2
    log_throttle_s: float = 5.0
    diagnostics_period_s: float = 1.0


# name -> (description, (min, max) for numbers or None); ints and floats as rclpy will check them
SPECS: dict[str, tuple[str, Any]] = {
    "model_dir": (
        "Model folder (encoder/denoiser/decoder ONNX + model.json); empty = the shipped "
        "models/default. Read at start.",
        None,
    ),
    "provider": (
        f"ONNX Runtime execution provider: one of {PROVIDERS}. 'auto' = CUDA if a GPU is "
        "visible, else CPU; a GPU asked for and not in use is an error. Read at start.",
        None,
    ),
    "intra_op_threads": (
        "ONNX Runtime intra-op threads; 0 = the engine's default. 1 by default: on a CPU shared with "
        "other nodes, more threads spin-wait for each other (measured in benchmarks/bench_node.py). "
        "Read at start.",
        (0, 64),
    ),
    "engine_workers": (
        "Threads that share one image's targets (CPU): each denoises and decodes its group of views "
        "at the same time; 0 = the engine's default (2 on a CPU with 2 or more cores), 1 = all "
        "targets in one batch on one thread. Read at start.",
        (0, 16),
    ),
    "image_qos": (
        "QoS of the image and camera_info subscriptions: 'sensor_data' (best effort, keep last 5; "
        "takes any publisher) or 'reliable' (keep last 5; needs a reliable publisher, and delivers "
        "large images that best-effort DDS can lose between processes). Read at start.",
        None,
    ),
    "service_queue_depth": (
        "Depth of the synthesize_view service's request queue in DDS. ROS 2's default (10) loses the "
        "calls of a burst beyond it without any answer; with a deep queue every call reaches the node "
        "and those beyond max_pending_requests are answered 'busy' at once. Read at start.",
        (1, 100000),
    ),
    "steps": ("DDIM sampling steps (default: the model's). More = slower, often sharper.", (1, 1000)),
    "guidance": ("Classifier-free guidance scale; 1 = off (one denoiser pass per step).", (0.0, 20.0)),
    "temperature": (
        "Scale of the sampler's starting noise (default: the model's). Below 1 the views move towards "
        "the most likely one (sharper agreement with the truth, less variety); 0 makes them independent "
        "of the seed.",
        (0.0, 1.0),
    ),
    "seed": ("Seed of the sampler's noise; the same seed and input give the same views.", (0, 2**31 - 1)),
    "object_distance": (
        "Metres from the camera to the object centre; pose translations are scaled by "
        "training_radius / object_distance.",
        OBJECT_DISTANCE_M,
    ),
    "training_fov_deg": (
        "Field of view of the training camera; with camera_info the node crops the "
        "square with this field of view around the principal point.",
        (1.0, 179.0),
    ),
    "target_frames": ("TF frames (optical frames) of target cameras, each published on views/<frame>.", None),
    "orbit_azimuths_deg": (
        "Orbit targets: azimuth deltas (deg) around the object centre; positive "
        "moves the camera to its right. Published on views/orbit_az<a>_el<e>.",
        None,
    ),
    "orbit_elevations_deg": (
        "Orbit targets: elevation deltas (deg); empty = 0, one value = for all "
        "azimuths, else one per azimuth.",
        None,
    ),
    "orbit_up_frame": (
        "TF frame whose +z is the world's up (e.g. 'base_link' or 'map'): orbits turn about it, as the "
        "training cameras did. Empty = the input camera's own up, right only for a level camera.",
        None,
    ),
    "max_targets": ("Most targets per input (TF + poses + orbit); extra targets are refused.", (1, 256)),
    "output_size": ("Side of the published views in pixels; 0 = the model's size.", (0, 2048)),
    "max_rate_hz": ("Most inputs processed per second; 0 = as fast as the engine goes.", (0.0, 1000.0)),
    "publish_mosaic": ("Publish ~/mosaic (input crop + views in one image).", None),
    "publish_frustums": ("Publish ~/frustums (camera frustum markers for RViz).", None),
    "tf_timeout_s": ("How long the worker waits for a TF transform at the image stamp.", (0.0, 5.0)),
    "max_pending_requests": ("Service calls queued at once; more are refused as busy.", (1, 64)),
    "log_throttle_s": ("Seconds between log lines of one bad-input cause.", (0.0, 3600.0)),
    "diagnostics_period_s": ("Period of the /diagnostics status.", (0.1, 60.0)),
}

_ARRAY_TYPES = {
    "target_frames": Parameter.Type.STRING_ARRAY,
    "orbit_azimuths_deg": Parameter.Type.DOUBLE_ARRAY,
    "orbit_elevations_deg": Parameter.Type.DOUBLE_ARRAY,
}


def descriptor(name: str) -> ParameterDescriptor:
    description, bounds = SPECS[name]
    # Arrays are dynamically typed so that an empty list (which rclpy types as a byte array) can
    # clear them; validate() checks the element types instead.
    d = ParameterDescriptor(
        description=description, read_only=name in READ_ONLY, dynamic_typing=name in _ARRAY_TYPES
    )
    if isinstance(bounds, tuple) and isinstance(bounds[0], int):
        d.integer_range = [IntegerRange(from_value=bounds[0], to_value=bounds[1], step=1)]
    elif isinstance(bounds, tuple):
        d.floating_point_range = [FloatingPointRange(from_value=bounds[0], to_value=bounds[1], step=0.0)]
    return d


def declare(node, names, defaults: NodeConfig) -> None:
    """Declare `names` with their descriptors; YAML / command-line overrides win over the defaults."""
    for name in names:
        value = getattr(defaults, name)
        if name in _ARRAY_TYPES and not value:
            # An empty list has no type for rclpy: declare it unset (read() treats that as empty).
            node.declare_parameter(name, None, descriptor(name))
        else:
            node.declare_parameter(name, value, descriptor(name))


def read(node, base: NodeConfig) -> NodeConfig:
    """A NodeConfig from the node's current parameter values."""
    values = {}
    for f in fields(NodeConfig):
        if not node.has_parameter(f.name):
            continue
        try:
            values[f.name] = value_of(node.get_parameter(f.name))
        except ParameterUninitializedException:  # a typed array declared without a value: empty
            values[f.name] = []
    return NodeConfig(**{**base.__dict__, **values})


def value_of(param: Parameter):
    value = param.value
    if param.type_ == Parameter.Type.NOT_SET or value is None:
        return []
    if param.type_ == Parameter.Type.BYTE_ARRAY and len(value) == 0:
        return []  # how rclpy types an untyped empty list
    return list(value) if isinstance(value, list | tuple) or hasattr(value, "tolist") else value


def validate(cfg: NodeConfig, num_train_timesteps: int) -> str | None:
    """Why `cfg` cannot be used, or None. (Ranges are checked by rclpy from the descriptors.)"""
    if cfg.image_qos not in ("sensor_data", "reliable"):
        return f"image_qos must be 'sensor_data' or 'reliable', got {cfg.image_qos!r}"
    if cfg.provider not in PROVIDERS:
        return f"provider must be one of {PROVIDERS}, got {cfg.provider!r}"
    try:  # eta is the model's: the node has no parameter for it
        SamplerSettings(cfg.steps, cfg.guidance, cfg.temperature, 0.0).validate(num_train_timesteps)
    except SamplerSettingsError as e:
        return str(e)
    for name in _ARRAY_TYPES:
        if not isinstance(getattr(cfg, name), list):
            return f"{name} must be a list"
    if any(
        not isinstance(v, int | float) or isinstance(v, bool)
        for v in [*cfg.orbit_azimuths_deg, *cfg.orbit_elevations_deg]
    ):
        return "orbit angles must be numbers (degrees)"
    if any(not f or not isinstance(f, str) for f in cfg.target_frames):
        return "target_frames must be non-empty frame names"
    if len(set(cfg.target_frames)) != len(cfg.target_frames):
        return "target_frames has duplicates"
    az, el = cfg.orbit_azimuths_deg, cfg.orbit_elevations_deg
    if not all(math.isfinite(v) for v in [*az, *el]):
        return "orbit angles must be finite"
    if len(el) > 1 and len(el) != len(az):
        return f"{len(el)} orbit_elevations_deg for {len(az)} orbit_azimuths_deg (give 0, 1 or one each)"
    if any(abs(v) >= 90.0 for v in el):
        return "orbit_elevations_deg must be within (-90, 90)"
    n = len(cfg.target_frames) + len(az)
    if n > cfg.max_targets:
        return f"{n} targets (target_frames + orbit_azimuths_deg) > max_targets {cfg.max_targets}"
    return None


def updated(cfg: NodeConfig, params: list[Parameter], num_train_timesteps: int) -> NodeConfig:
    """`cfg` with a parameter change applied, or ValueError saying why the change is refused."""
    deleted = [p.name for p in params if p.type_ == Parameter.Type.NOT_SET]
    if deleted:
        # rclpy would undeclare them (`ros2 param delete`): the node would then read them as empty
        # and refuse every later set as "undeclared" until restarted.
        raise ValueError(
            f"{', '.join(deleted)}: the node's parameters cannot be deleted; set an empty list or "
            "another value instead"
        )
    changes = {p.name: value_of(p) for p in params if p.name in SPECS}
    for name in changes:
        if name in READ_ONLY:
            raise ValueError(f"{name} is read at start: restart the node")
    try:
        new = replace(cfg, **changes)
    except TypeError as e:
        raise ValueError(str(e)) from None
    problem = validate(new, num_train_timesteps)
    if problem:
        raise ValueError(problem)
    return new


def declare_read_only(node) -> NodeConfig:
    """Declare the parameters read at start (the engine's); the snapshot they give."""
    declare(node, READ_ONLY, NodeConfig())
    return read(node, NodeConfig())


def declare_the_rest(node, start: NodeConfig, sampler, num_train_timesteps: int) -> NodeConfig:
    """Declare the other parameters, the sampler's defaulting to the model's `sampler` (model.json);
    YAML / command-line values still override them. ValueError when the result is invalid."""
    defaults = replace(start, steps=sampler.steps, guidance=sampler.guidance, temperature=sampler.temperature)
    declare(node, [n for n in SPECS if n not in READ_ONLY], defaults)
    cfg = read(node, defaults)
    problem = validate(cfg, num_train_timesteps)
    if problem:
        raise ValueError(f"invalid parameters: {problem}")
    return cfg
