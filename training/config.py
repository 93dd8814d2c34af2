"""Typed training configuration: dataclasses loaded from YAML, overridable from the command line.

A config file is the YAML dump of `TrainConfig` (`training/configs/<name>.yaml`); every field is
typed, unknown keys are errors, and `dump_config(load_config(f))` reproduces the file's YAML, so a
run's `config.yaml` (and the JSON stored in each checkpoint) is the whole truth about that run.
Why each default was chosen where the paper is silent: `training/configs/README.md`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tinyldm_ros.schedule import ScheduleConfig
from training.unet import UNetConfig
from training.vae import VAEConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
POSE_VALUES = 16  # the flattened 4x4 relative transform in the context


class ConfigError(ValueError):
    """A config file or override that does not match the dataclasses (message names key and source)."""


@dataclass
class DataConfig:
    root: str = "data/cars"
    train_split: str = "train"
    val_split: str = "val"  # sample grids during training; falls back to train_split if missing
    image_size: int = 32
    max_instances: int | None = None  # cap on objects loaded per split (None = all)


@dataclass
class OptimConfig:
    """One training stage's optimisation and bookkeeping."""

    iterations: int = 1000
    batch_size: int = 64  # global batch: split evenly over DDP ranks
    lr: float = 1.0e-4
    lr_schedule: str = "constant"  # constant | cosine (after warmup)
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_betas: tuple[float, ...] = (0.9, 0.999)
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    ema_decay: float = 0.0  # 0 disables the EMA copy of the weights
    amp: str = "bf16"  # bf16 | fp16 | fp32 (autocast dtype on CUDA; CPU always runs fp32)
    compile: str = "none"  # none | default | reduce-overhead | max-autotune: torch.compile mode (CUDA only)
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 1000
    sample_every: int = 1000  # 0 disables sample grids during training


@dataclass
class VAETrainConfig(OptimConfig):
    l1_weight: float = 1.0
    kl_weight: float = 5.0
    kl_norm: str = "ldm"  # see training.vae.vae_loss
    # vae.colour_cond only: whose colour summary the decoder gets in training. "self" = the image being
    # reconstructed; "other_view" = another view of the same object, as at inference (where it is the
    # conditioning view's), so the decoder learns an object's colour, not one view's statistics.
    colour_from: str = "self"
    # False: the encoder is frozen (a decoder-only fine-tune that keeps the encoded latents, and a UNet
    # trained on them, valid). Resume a finished run with --set vae_train.train_encoder=false.
    train_encoder: bool = True
    # A model folder (e.g. models/default) whose exported VAE starts this run instead of a random init:
    # a fine-tune of a shipped model on new data. Its VAE config must equal `vae`. Empty: random init.
    init_from: str = ""


@dataclass
class UNetTrainConfig(OptimConfig):
    loss: str = "l1"  # l1 | l2 on the predicted noise
    cond_dropout: float = 0.1  # probability of the all-zero null context (classifier-free guidance)
    distinct_views: bool = True  # never pair a view with itself


@dataclass
class SampleConfig:
    """Sampler used for grids during training and as the default of `training.sample`."""

    sampler: str = "ddim"  # ddim | ddpm
    steps: int = 50
    guidance_scale: float = 1.0  # 1.0 = plain conditional sampling
    eta: float = 0.0  # DDIM only: 0 = deterministic
    temperature: float = 1.0  # x_T = temperature * N(0, I); the exported model's default too
    spacing: str = "trailing"  # timestep spacing, see tinyldm_ros.schedule.ddim_timesteps
    num_instances: int = 4
    num_views: int = 6


@dataclass
class TrainConfig:
    name: str = "paper"
    data: DataConfig = field(default_factory=DataConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: ScheduleConfig = field(default_factory=ScheduleConfig)
    vae_train: VAETrainConfig = field(default_factory=VAETrainConfig)
    unet_train: UNetTrainConfig = field(default_factory=UNetTrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def validate(self, source: str = "config") -> TrainConfig:
        """Cross-field checks; raises ConfigError naming the fields and `source`."""
        levels = len(self.vae.channel_mult) - 1
        if self.data.image_size != self.vae.image_size:
            raise ConfigError(
                f"{source}: data.image_size={self.data.image_size} but the VAE is built for "
                f"vae.image_size={self.vae.image_size}; set both to the same value"
            )
        if self.vae.image_size <= 0 or self.vae.image_size % (2**levels) != 0:
            raise ConfigError(
                f"{source}: image size {self.vae.image_size} cannot be taken by a VAE with {levels} "
                f"downsamplings (vae.channel_mult={list(self.vae.channel_mult)}): it must be a positive "
                f"multiple of {2**levels}"
            )
        if self.unet.latent_channels != self.vae.latent_channels:
            raise ConfigError(
                f"{source}: unet.latent_channels={self.unet.latent_channels} != "
                f"vae.latent_channels={self.vae.latent_channels}"
            )
        if self.unet.latent_size != self.vae.latent_size:
            raise ConfigError(
                f"{source}: unet.latent_size={self.unet.latent_size} but the VAE makes "
                f"{self.vae.latent_size}x{self.vae.latent_size} latents"
            )
        want_ctx = self.vae.latent_channels * self.vae.latent_size**2 + POSE_VALUES
        if self.unet.context_dim != want_ctx:
            raise ConfigError(
                f"{source}: unet.context_dim={self.unet.context_dim} but the context is the conditioning "
                f"latent ({want_ctx - POSE_VALUES} values) + the flattened 4x4 pose (16) = {want_ctx}"
            )
        if self.vae_train.colour_from not in ("self", "other_view"):
            raise ConfigError(
                f"{source}: vae_train.colour_from must be self or other_view, "
                f"got {self.vae_train.colour_from!r}"
            )
        for stage in ("vae_train", "unet_train"):
            o: OptimConfig = getattr(self, stage)
            if o.amp not in ("bf16", "fp16", "fp32"):
                raise ConfigError(f"{source}: {stage}.amp must be bf16, fp16 or fp32, got {o.amp!r}")
            if o.compile not in ("none", "default", "reduce-overhead", "max-autotune"):
                raise ConfigError(
                    f"{source}: {stage}.compile must be none, default, reduce-overhead or max-autotune, "
                    f"got {o.compile!r}"
                )
            if o.lr_schedule not in ("constant", "cosine"):
                raise ConfigError(
                    f"{source}: {stage}.lr_schedule must be constant or cosine, got {o.lr_schedule!r}"
                )
            if o.iterations < 0 or o.batch_size < 1:
                raise ConfigError(f"{source}: {stage}.iterations must be >= 0 and batch_size >= 1")
        if self.unet_train.loss not in ("l1", "l2"):
            raise ConfigError(f"{source}: unet_train.loss must be l1 or l2, got {self.unet_train.loss!r}")
        if not 0.0 <= self.unet_train.cond_dropout < 1.0:
            raise ConfigError(f"{source}: unet_train.cond_dropout must be in [0, 1)")
        if self.sample.sampler not in ("ddim", "ddpm"):
            raise ConfigError(f"{source}: sample.sampler must be ddim or ddpm, got {self.sample.sampler!r}")
        if self.sample.spacing not in ("trailing", "leading"):
            raise ConfigError(
                f"{source}: sample.spacing must be trailing or leading, got {self.sample.spacing!r}"
            )
        if not 1 <= self.sample.steps <= self.diffusion.num_timesteps:
            raise ConfigError(f"{source}: sample.steps must be in [1, diffusion.num_timesteps]")
        t = self.sample.temperature
        if not 0.0 <= t <= 1.0:  # also refuses NaN; the range the runtime accepts in model.json
            raise ConfigError(f"{source}: sample.temperature must be in [0, 1], got {t}")
        return self


# --- dict <-> dataclass -------------------------------------------------------------------------


def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain YAML/JSON types (tuples become lists), in field order."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: expected {what}, got {value!r}")

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise ConfigError(f"{source}: {key}: unsupported field type {tp!r}")
        return _coerce(value, inner[0], key, source)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad(f"a mapping of {tp.__name__} fields")
        return from_dict(tp, value, source, key + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        return tuple(_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise bad("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad("a string")
    raise ConfigError(f"{source}: {key}: unsupported field type {tp!r}")


def from_dict(cls: type, data: dict, source: str = "config", prefix: str = "") -> Any:
    """Build dataclass `cls` from `data`; missing keys take defaults, unknown keys raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            raise ConfigError(
                f"{source}: unknown key {prefix + str(k)!r} "
                f"(valid keys of {cls.__name__}: {', '.join(names)})"
            )
    kwargs = {k: _coerce(v, hints[k], prefix + k, source) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as e:  # a dataclass's own __post_init__ checks (e.g. ScheduleConfig)
        raise ConfigError(f"{source}: {prefix.rstrip('.') or cls.__name__}: {e}") from None


# --- files and overrides ------------------------------------------------------------------------


def resolve_config_path(name_or_path: str) -> Path:
    """`paper` -> training/configs/paper.yaml; anything with a suffix or a slash is a path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or len(p.parts) > 1:
        return p
    return CONFIG_DIR / f"{name_or_path}.yaml"


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    path = resolve_config_path(str(name_or_path))
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(f"config {name_or_path!r}: no such file {path} (built-in configs: {known})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    cfg = from_dict(TrainConfig, data, str(path))
    return apply_overrides(cfg, overrides or []).validate(str(path))


def config_from_json(text: str, source: str = "checkpoint") -> TrainConfig:
    return from_dict(TrainConfig, json.loads(text), source).validate(source)


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply `section.key=value` strings (value parsed as YAML, except for string fields, then typed by
    the dataclass field)."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. unet_train.lr=1e-4")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"override {item!r}: unknown key {'.'.join(parts[: i + 1])!r}")
            if i == len(parts) - 1:
                # A string field takes the text as it is: a path named `123`, `yes` or `null` is still a path.
                node[part] = (
                    raw.strip()
                    if isinstance(node[part], str)
                    else (yaml.safe_load(raw) if raw.strip() else "")
                )
            else:
                node = node[part]
    return from_dict(TrainConfig, data, "--set override") if overrides else cfg


class _Dumper(yaml.SafeDumper):
    """Block mappings, one-line lists: a config reads like a settings file."""


_Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def dump_config(cfg: TrainConfig) -> str:
    return yaml.dump(to_dict(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def config_to_json(cfg: TrainConfig) -> str:
    return json.dumps(to_dict(cfg), sort_keys=False)
