"""The model folder contract: `model.json` schema, load / validate / save, ONNX signature checks.

A model folder (`models/<name>/`) holds `encoder.onnx`, `denoiser.onnx`, `decoder.onnx`,
`model.json` and a model card `README.md`; a folder whose default sampler is `one_step` also holds
the distilled one-step sampler (`one_step.onnx`, named by model.json's `one_step.file`).
Training writes it (`python -m training.export`, `training.export_student`), the
runtime reads it. This module is the single source of truth for what a valid folder is; it needs
plain Python and tinyldm_ros.schedule (+ onnxruntime for the ONNX checks), never torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tinyldm_ros.numbers import NumberError, checked_number
from tinyldm_ros.sampler_settings import SamplerSettings, SamplerSettingsError
from tinyldm_ros.schedule import TIMESTEP_SPACINGS, ScheduleConfig

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
ONNX_FILES = {"encoder": "encoder.onnx", "denoiser": "denoiser.onnx", "decoder": "decoder.onnx"}
SAMPLER_NAMES = ("ddim", "one_step")
POSE_CONVENTION = "opencv"
PREDICTION_TYPES = ("epsilon",)
# Documented ranges (docs/models.md). A radius or scale beyond them overflows float32 in the pose or
# the latent and gives black views, so the folder is refused instead.
MAX_IMAGE_SIZE = 4096
MAX_LATENT_SCALE = 1e6
MAX_TRAINING_RADIUS = 1e3


class ModelFolderError(ValueError):
    """A model folder is missing, corrupt, or does not match this code's contract."""


def export_command(provenance: Provenance | None, out_dir: str | Path = "models/<name>") -> str:
    """The command that (re-)creates a model folder; the exact one when the folder recorded it."""
    if provenance is not None and provenance.export_command:
        return provenance.export_command
    return (
        "python -m training.export --vae <run>/vae/checkpoint.safetensors "
        f"--unet <run>/unet/checkpoint.safetensors --out {out_dir}"
    )


@dataclass
class ContextLayout:
    """How the K-value conditioning vector is laid out: concat(z_cond.flatten(), rel_pose.flatten())."""

    size: int = 32
    cond_latent: list[int] = field(default_factory=lambda: [0, 16])  # [start, stop) into the vector
    rel_pose: list[int] = field(default_factory=lambda: [16, 32])
    pose_order: str = "row-major 4x4, inv(c2w_cond) @ c2w_target"
    null_context: str = "zeros"  # classifier-free guidance's unconditional context


@dataclass
class SamplerDefaults:
    name: str = "ddim"
    steps: int = 10
    guidance: float = 1.0  # 1.0 = no classifier-free guidance (one denoiser pass per step)
    eta: float = 0.0  # 0 = deterministic DDIM; > 0 draws ancestral noise from the seeded generator
    # x_T = temperature * N(0, I). Below 1 the samples move towards the most likely view (higher PSNR,
    # less variety); 0 with eta 0 makes the view independent of the seed. Absent in older folders: 1.
    temperature: float = 1.0
    spacing: str = "trailing"  # DDIM timestep selection, tinyldm_ros.schedule.ddim_timesteps

    def settings(self) -> SamplerSettings:
        """The defaults a call starts from (checked by SamplerSettings like every call's own)."""
        return SamplerSettings(self.steps, self.guidance, self.temperature, self.eta)


@dataclass
class OneStepInfo:
    """The one-step student (training.distill) that replaces the default sampler: a graph from the
    context to the sample z0 of DDIM at the folder's default sampler settings (temperature 0)."""

    file: str = "one_step.onnx"
    # "": the one-step path decodes with decoder.onnx; else this file (same contract), e.g. an int8
    # quantisation of it that only the one-step path uses (DDIM calls keep decoder.onnx)
    decoder: str = ""
    method: str = ""  # how it was distilled: "regression" or "progressive"
    iterations: int = 0
    student_parameters: int = 0
    wall_time_s: float | None = None
    command: str = ""  # the distillation and export commands
    metrics: dict[str, Any] = field(default_factory=dict)  # student vs teacher on held-out pairs
    verification: dict[str, Any] = field(default_factory=dict)  # ONNX Runtime vs torch, max abs diff


@dataclass
class Provenance:
    vae_config: dict[str, Any] = field(default_factory=dict)
    unet_config: dict[str, Any] = field(default_factory=dict)
    training_config: dict[str, Any] = field(default_factory=dict)
    dataset: str = ""
    vae_iterations: int | None = None
    unet_iterations: int | None = None
    wall_time_s: float | None = None
    machine: str = ""
    vae_parameters: int = 0
    unet_parameters: int = 0
    vae_checkpoint: str = ""
    unet_checkpoint: str = ""
    random_weights: bool = False
    exported_at: str = ""
    exporter: str = ""
    export_command: str = ""
    # markdown the card carries verbatim: data sources and licences, the training recipe, other metrics
    notes: str = ""


@dataclass
class ModelInfo:
    """Everything the runtime needs to know about a model folder (the parsed `model.json`)."""

    name: str
    image_size: int
    latent_shape: list[int]  # [C, h, w]
    latent_scale: float
    schedule: dict[str, Any]  # tinyldm_ros.schedule.ScheduleConfig.to_dict()
    context: ContextLayout = field(default_factory=ContextLayout)
    prediction_type: str = "epsilon"
    sampler: SamplerDefaults = field(default_factory=SamplerDefaults)
    pose_convention: str = POSE_CONVENTION
    training_radius: float = 1.3
    image_channels: int = 3
    # > 0: the encoder also outputs `colour` (this many values summarising the image's colours) and the
    # decoder takes the conditioning image's as a second input (training.vae colour_cond).
    colour_values: int = 0
    provenance: Provenance = field(default_factory=Provenance)
    metrics: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)  # exporter's ONNX-vs-torch max abs diffs
    # present iff sampler.name == "one_step": the default call runs this graph instead of DDIM
    one_step: OneStepInfo | None = None
    format_version: int = FORMAT_VERSION

    @property
    def num_train_timesteps(self) -> int:
        return int(self.schedule["num_timesteps"])

    def onnx_files(self) -> dict[str, str]:
        """Role -> file name of every graph the folder must hold."""
        files = {**ONNX_FILES, **({"one_step": self.one_step.file} if self.one_step else {})}
        if self.one_step and self.one_step.decoder:
            files["one_step_decoder"] = self.one_step.decoder
        return files

    @property
    def latent_size(self) -> int:
        C, h, w = self.latent_shape
        return C * h * w

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # format_version first so a human (and an old reader) sees it at once
        return {"format_version": d.pop("format_version"), **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = MODEL_JSON) -> ModelInfo:
        if not isinstance(d, dict):
            raise ModelFolderError(f"{source}: expected a JSON object, got {type(d).__name__}")
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            prov = _build(Provenance, d.get("provenance") or {}, f"{source}: provenance", strict=False)
            raise ModelFolderError(
                f"{source}: model folder format version {version!r}, but this code reads version "
                f"{FORMAT_VERSION}. Re-export the model with this code: {export_command(prov)}"
            )
        d = dict(d)
        d["context"] = _build(ContextLayout, d.get("context", {}), f"{source}: context")
        d["sampler"] = _build(SamplerDefaults, d.get("sampler", {}), f"{source}: sampler")
        d["provenance"] = _build(Provenance, d.get("provenance", {}), f"{source}: provenance")
        if d.get("one_step") is not None:
            d["one_step"] = _build(OneStepInfo, d["one_step"], f"{source}: one_step")
        info = _build(cls, d, source)
        info.validate(source)
        return info

    def validate(self, source: str = MODEL_JSON) -> None:
        """Check the facts against each other and the contract; raise ModelFolderError naming the field."""

        def bad(what: str) -> ModelFolderError:
            return ModelFolderError(f"{source}: {what}")

        # tinyldm_ros.numbers: the right type (json `true` is not 1), finite, in range, or the field named.
        try:
            checked_number("image_size", self.image_size, 1, MAX_IMAGE_SIZE, integer=True)
            checked_number("colour_values", self.colour_values, 0, 1024, integer=True)
            if not (isinstance(self.latent_shape, list) and len(self.latent_shape) == 3):
                raise bad(f"latent_shape must be [C, h, w] positive integers, got {self.latent_shape!r}")
            for v in self.latent_shape:
                checked_number("latent_shape", v, 1, MAX_IMAGE_SIZE, integer=True)
            checked_number("latent_scale", self.latent_scale, 0.0, MAX_LATENT_SCALE, low_open=True)
            checked_number("training_radius", self.training_radius, 0.0, MAX_TRAINING_RADIUS, low_open=True)
        except NumberError as e:
            raise bad(str(e)) from None
        if self.image_channels != 3:
            raise bad(f"image_channels must be 3 (RGB), got {self.image_channels!r}")
        ctx = self.context
        if ctx.size != self.latent_size + 16:
            raise bad(f"context.size {ctx.size} != latent size {self.latent_size} + 16 pose values")
        if ctx.cond_latent != [0, self.latent_size] or ctx.rel_pose != [self.latent_size, ctx.size]:
            raise bad(
                f"context layout must be cond_latent [0, {self.latent_size}) then rel_pose "
                f"[{self.latent_size}, {ctx.size}), got {ctx.cond_latent} / {ctx.rel_pose}"
            )
        if ctx.null_context != "zeros":
            raise bad(f"context.null_context must be 'zeros', got {ctx.null_context!r}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise bad(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if self.pose_convention != POSE_CONVENTION:
            raise bad(f"pose_convention must be {POSE_CONVENTION!r}, got {self.pose_convention!r}")
        if not isinstance(self.schedule, dict):
            raise bad(f"schedule must be an object, got {type(self.schedule).__name__}")
        try:
            T = ScheduleConfig.from_dict(self.schedule).num_timesteps
        except (ValueError, TypeError) as e:
            raise bad(f"schedule: {e}") from None
        s = self.sampler
        if s.name not in SAMPLER_NAMES:
            raise bad(f"sampler.name must be one of {SAMPLER_NAMES}, got {s.name!r}")
        try:
            s.settings().validate(T)
        except SamplerSettingsError as e:
            raise bad(f"sampler.{e}") from None
        if (s.name == "one_step") != (self.one_step is not None):
            raise bad("sampler.name 'one_step' and the one_step block go together (one without the other)")
        if self.one_step is not None:
            if s.temperature != 0.0 or s.eta != 0.0:
                raise bad(
                    "sampler: a one_step sampler replaces a deterministic DDIM (temperature 0, eta 0), got "
                    f"temperature {s.temperature}, eta {s.eta}"
                )
            f = self.one_step.file
            if not (
                isinstance(f, str) and f.endswith(".onnx") and "/" not in f and f not in ONNX_FILES.values()
            ):
                raise bad(f"one_step.file must be a new .onnx file name in the folder, got {f!r}")
            d = self.one_step.decoder
            if d and not (isinstance(d, str) and d.endswith(".onnx") and "/" not in d and d != f):
                raise bad(f"one_step.decoder must be '' or a .onnx file name in the folder, got {d!r}")
        if s.spacing not in TIMESTEP_SPACINGS:
            raise bad(f"sampler.spacing must be one of {TIMESTEP_SPACINGS}, got {s.spacing!r}")

    def expected_io(self) -> dict[str, tuple[list[tuple[str, str, list]], list[tuple[str, str, list]]]]:
        """Per ONNX file: (inputs, outputs) as (name, ORT type, shape with None for the batch axis)."""
        C, h, w = self.latent_shape
        S = self.image_size
        f32, i64 = "tensor(float)", "tensor(int64)"
        colour = [("colour", f32, [None, self.colour_values])] if self.colour_values else []
        return {
            "encoder": ([("image", f32, [None, 3, S, S])], [("mean", f32, [None, C, h, w]), *colour]),
            "denoiser": (
                [
                    ("latent", f32, [None, C, h, w]),
                    ("timestep", i64, [None]),
                    ("context", f32, [None, self.context.size]),
                ],
                [("noise", f32, [None, C, h, w])],
            ),
            "decoder": ([("latent", f32, [None, C, h, w]), *colour], [("image", f32, [None, 3, S, S])]),
            "one_step": ([("context", f32, [None, self.context.size])], [("latent", f32, [None, C, h, w])]),
            "one_step_decoder": (
                [("latent", f32, [None, C, h, w]), *colour],
                [("image", f32, [None, 3, S, S])],
            ),
        }


def _build(cls: type, d: Any, source: str, strict: bool = True):
    if not isinstance(d, dict):
        raise ModelFolderError(f"{source}: expected an object, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown and strict:
        raise ModelFolderError(f"{source}: unknown field(s) {unknown} (written by a newer exporter?)")
    try:
        return cls(**{k: v for k, v in d.items() if k in names})
    except TypeError as e:  # a required field is missing
        raise ModelFolderError(f"{source}: {e}") from None


def load_model_info(model_dir: str | Path) -> ModelInfo:
    """Read and validate `model.json` and check that the ONNX files exist (without opening them)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFolderError(
            f"model folder {model_dir} does not exist (create one with: {export_command(None, model_dir)})"
        )
    path = model_dir / MODEL_JSON
    if not path.is_file():
        raise ModelFolderError(f"{path}: missing (is {model_dir} a model folder made by training.export?)")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{path}: corrupt JSON ({e})") from None
    info = ModelInfo.from_dict(d, str(path))
    for role, fname in info.onnx_files().items():
        if not (model_dir / fname).is_file():
            raise ModelFolderError(f"{model_dir / fname}: missing ({role} graph)")
    return info


def save_model_info(info: ModelInfo, model_dir: str | Path) -> Path:
    info.validate()
    path = Path(model_dir) / MODEL_JSON
    path.write_text(json.dumps(info.to_dict(), indent=2) + "\n")
    return path


def check_session_io(session: Any, role: str, info: ModelInfo, path: str | Path) -> None:
    """Check an onnxruntime InferenceSession's inputs/outputs against the contract for `role`."""
    want_in, want_out = info.expected_io()[role]
    for kind, want, got in (
        ("input", want_in, session.get_inputs()),
        ("output", want_out, session.get_outputs()),
    ):
        got_names = [g.name for g in got]
        if got_names != [n for n, _, _ in want]:
            raise ModelFolderError(
                f"{path}: {role} {kind} names {got_names}, expected {[n for n, _, _ in want]}"
            )
        for (name, dtype, shape), g in zip(want, got, strict=True):
            if g.type != dtype:
                raise ModelFolderError(f"{path}: {role} {kind} '{name}' has type {g.type}, expected {dtype}")
            if len(g.shape) != len(shape) or any(
                w is not None and gv != w for w, gv in zip(shape, g.shape, strict=True)
            ):
                raise ModelFolderError(
                    f"{path}: {role} {kind} '{name}' has shape {g.shape}, expected "
                    f"{['batch' if s is None else s for s in shape]}"
                )
            if isinstance(g.shape[0], int) and g.shape[0] >= 0:
                raise ModelFolderError(
                    f"{path}: {role} {kind} '{name}' has a fixed batch axis {g.shape[0]}; "
                    "the contract needs a dynamic one (re-export with training.export)"
                )


def open_session(
    path: str | Path,
    role: str,
    info: ModelInfo,
    providers: list,
    options: Any = None,
    model_bytes: bytes | None = None,
):
    """Create an onnxruntime session for one graph of the folder and check its signature.

    `model_bytes` (the file's content, already read) avoids re-reading the file; `path` names it."""
    import onnxruntime as ort

    try:
        source = model_bytes if model_bytes is not None else str(path)
        session = ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as e:  # ORT raises its own exception types for unreadable/invalid models
        raise ModelFolderError(f"{path}: not a loadable ONNX model ({type(e).__name__}: {e})") from None
    check_session_io(session, role, info, path)
    return session


def validate_model_folder(model_dir: str | Path) -> ModelInfo:
    """Full check: model.json and all its ONNX graphs open on CPU with the contract's signatures."""
    model_dir = Path(model_dir)
    info = load_model_info(model_dir)
    for role, fname in info.onnx_files().items():
        open_session(model_dir / fname, role, info, ["CPUExecutionProvider"])
    return info
