"""The distillation run's config: typed dataclasses read from YAML (training/configs/distill/), with
`--set section.key=value` overrides, like the training configs (training.config)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from training.config import ConfigError, from_dict, to_dict
from training.student import StudentConfig

DISTILL_CONFIG_DIR = Path(__file__).parent / "configs" / "distill"
METHODS = ("regression", "progressive")
LOSSES = ("mse", "l1")


@dataclass
class DistillDataConfig:
    root: str = "data/cars"
    train_split: str = "train"
    val_split: str = "val"
    train_pairs: int = 500_000  # (conditioning view, target view) pairs the teacher labels once
    val_pairs: int = 2_000
    max_instances: int | None = None
    seed: int = 0


@dataclass
class DistillTrainConfig:
    # regression: the one-step student fits the teacher's samples directly. progressive: log2(steps)
    # stages that halve the step count (Salimans & Ho 2022), the iterations split evenly between them.
    method: str = "regression"
    iterations: int = 20_000
    batch_size: int = 256
    lr: float = 1e-3
    warmup_steps: int = 200  # per stage
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    loss: str = "mse"  # on the scaled latent z0
    seed: int = 0
    log_every: int = 200
    checkpoint_every: int = 1_000


@dataclass
class DistillConfig:
    name: str = "one_step"
    teacher: str = "models/default"  # a model folder whose default sampler is deterministic
    data: DistillDataConfig = field(default_factory=DistillDataConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    train: DistillTrainConfig = field(default_factory=DistillTrainConfig)

    def validate(self, source: str = "config") -> DistillConfig:
        t = self.train
        if t.method not in METHODS:
            raise ConfigError(f"{source}: train.method must be one of {METHODS}, got {t.method!r}")
        if t.loss not in LOSSES:
            raise ConfigError(f"{source}: train.loss must be one of {LOSSES}, got {t.loss!r}")
        for key in ("iterations", "batch_size", "log_every", "checkpoint_every"):
            if getattr(t, key) < 1:
                raise ConfigError(f"{source}: train.{key} must be >= 1, got {getattr(t, key)}")
        if not t.lr > 0:
            raise ConfigError(f"{source}: train.lr must be > 0, got {t.lr}")
        if self.data.train_pairs < 1 or self.data.val_pairs < 1:
            raise ConfigError(f"{source}: data.train_pairs and data.val_pairs must be >= 1")
        if self.student.hidden < 1 or self.student.blocks < 0 or self.student.time_dim % 2:
            raise ConfigError(f"{source}: student: hidden >= 1, blocks >= 0, even time_dim")
        return self


def load_distill_config(name_or_path: str, overrides: list[str] | None = None) -> DistillConfig:
    """`one_step` -> training/configs/distill/one_step.yaml (or a YAML path), then the overrides."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml") and len(path.parts) == 1:
        path = DISTILL_CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"distill config {name_or_path!r}: no such file {path}")
    data = yaml.safe_load(path.read_text()) or {}
    cfg = from_dict(DistillConfig, data, str(path))
    return apply_distill_overrides(cfg, overrides or []).validate(str(path))


def apply_distill_overrides(cfg: DistillConfig, overrides: list[str]) -> DistillConfig:
    data = to_dict(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.iterations=5000")
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {item!r}: unknown key {key!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"override {item!r}: unknown key {key!r}")
        node[leaf] = raw.strip() if isinstance(node[leaf], str) else yaml.safe_load(raw)
    return from_dict(DistillConfig, data, "--set override").validate("--set override")


def dump_distill_config(cfg: DistillConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def distill_config_from_json(text: str) -> DistillConfig:
    return from_dict(DistillConfig, json.loads(text), "checkpoint").validate("checkpoint")
