"""Training checkpoints as one safetensors file: weights, EMA weights, optimizer state, RNG states, step.

Tensors are named `model.<param>`, `ema.<param>`, `optim.<index>.<state>` and `rng.<name>`; the
config (JSON), step, stage, optimizer hyper-parameters and anything stage-specific (e.g. the
latent scale) live in the string metadata. Files are written to a temporary name, fsync'ed and
renamed, so a process killed at any moment leaves either the old or the new checkpoint, never half of one
(the killed writer's temporary file is removed by the next save).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from training.config import TrainConfig, config_from_json, config_to_json

FORMAT = "tinyldm-train-checkpoint/1"


@dataclass
class Checkpoint:
    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def stage(self) -> str:
        return str(self.meta["stage"])

    @property
    def config(self) -> TrainConfig:
        return config_from_json(self.meta["config"], f"{self.path} (config metadata)")

    def state_dict(self, prefix: str) -> dict[str, torch.Tensor]:
        p = prefix + "."
        return {k[len(p) :]: v for k, v in self.tensors.items() if k.startswith(p)}

    def has(self, prefix: str) -> bool:
        return any(k.startswith(prefix + ".") for k in self.tensors)

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The EMA weights when the run kept them (what sampling and export should use), else the raw ones."""
        return self.state_dict("ema" if self.has("ema") else "model")


def _rng_tensors() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).view(np.int32).copy())
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)], "python": repr(random.getstate())}
    return tensors, meta


def restore_rng(ckpt: Checkpoint) -> None:
    torch.set_rng_state(ckpt.tensors["rng.torch"])
    cuda = [ckpt.tensors[k] for k in sorted(ckpt.tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    rng_meta = json.loads(ckpt.meta["rng"])
    kind, pos, has_gauss, cached = rng_meta["numpy"]
    keys = ckpt.tensors["rng.numpy"].numpy().view(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    random.setstate(_literal_tuple(rng_meta["python"]))


def _literal_tuple(text: str) -> tuple:
    import ast

    return ast.literal_eval(text)


def _split_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, ckpt: Checkpoint) -> None:
    meta = json.loads(ckpt.meta["optimizer"])
    state: dict[int, dict[str, Any]] = {}
    for key, value in ckpt.tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    path: Path,
    *,
    stage: str,
    step: int,
    config: TrainConfig,
    model: nn.Module,
    ema: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    meta: dict[str, str] = {
        "format": FORMAT,
        "stage": stage,
        "step": str(step),
        "config": config_to_json(config),
        "extra": json.dumps(extra or {}),
    }
    if optimizer is not None:
        opt_tensors, opt_meta = _split_optimizer(optimizer)
        tensors.update(opt_tensors)
        meta["optimizer"] = json.dumps(opt_meta)
    if scaler is not None and scaler.is_enabled():
        meta["grad_scaler"] = json.dumps(scaler.state_dict())
    rng_tensors, rng_meta = _rng_tensors()
    tensors.update(rng_tensors)
    meta["rng"] = json.dumps(rng_meta)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=meta)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    _remove_stale_temporaries(path)
    return path


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of writers killed mid-write (a few MB each, never read again).
    Only those whose process is gone: a live writer's file is left alone."""
    for stale in path.parent.glob(f".{path.name}.tmp*"):
        pid = stale.name.rsplit(".tmp", 1)[1]
        if pid.isdigit() and not _process_alive(int(pid)):
            stale.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def load_checkpoint(path: str | Path, stage: str | None = None) -> Checkpoint:
    """Read a checkpoint; raises FileNotFoundError / ValueError with the path in the message."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise ValueError(f"checkpoint {path} is not a readable safetensors file: {e}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    ckpt = Checkpoint(path, tensors, meta)
    if stage is not None and ckpt.stage != stage:
        raise ValueError(f"checkpoint {path} is a {ckpt.stage!r} checkpoint, expected a {stage!r} one")
    return ckpt


def checkpoint_extra(ckpt: Checkpoint) -> dict[str, Any]:
    return json.loads(ckpt.meta.get("extra", "{}"))


def restore_grad_scaler(scaler: torch.amp.GradScaler, ckpt: Checkpoint) -> None:
    if scaler.is_enabled() and "grad_scaler" in ckpt.meta:
        scaler.load_state_dict(json.loads(ckpt.meta["grad_scaler"]))
