"""The distillation run's checkpoint: one safetensors file with the student, the optimizer state, the
frozen teacher of a progressive stage, and (as metadata) the config, step, wall time and val history.
Written to a temporary name and renamed, so a killed run leaves the previous checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from training.checkpoint import _split_optimizer
from training.distill_config import DistillConfig, distill_config_from_json
from training.distill_steps import ProgressiveStages
from training.student import Student

FORMAT = "tinyldm-distill-checkpoint/1"


def save_distill_checkpoint(
    path: Path,
    cfg: DistillConfig,
    student: Student,
    opt: torch.optim.Optimizer,
    stages: ProgressiveStages | None,
    step: int,
    wall_time_s: float,
    history: list[dict],
) -> Path:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in student.state_dict().items()}
    opt_tensors, opt_meta = _split_optimizer(opt)
    tensors.update(opt_tensors)
    if stages is not None and stages.frozen is not None:
        tensors.update({f"frozen.{k}": v.contiguous() for k, v in stages.frozen.state_dict().items()})
    meta = {
        "format": FORMAT,
        "config": json.dumps(_config_dict(cfg)),
        "step": str(step),
        "stage": str(stages.stage if stages else 0),
        "wall_time_s": repr(wall_time_s),
        "optimizer": json.dumps(opt_meta),
        "history": json.dumps(history),
        "latent_shape": json.dumps(list(student.latent_shape)),
        "num_timesteps": str(student.num_timesteps),
        "context_size": str(student.context_size),
    }
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def _config_dict(cfg: DistillConfig) -> dict:
    from training.config import to_dict

    return to_dict(cfg)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # safetensors raises its own types for damaged files
        raise ValueError(f"checkpoint {path} is not a readable safetensors file: {e}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return tensors, meta


def checkpoint_config(path: Path) -> DistillConfig:
    return distill_config_from_json(_read(path)[1]["config"])


def load_student(path: str | Path) -> tuple[Student, DistillConfig, dict]:
    """The student of a distillation checkpoint (eval mode), its config and metadata."""
    tensors, meta = _read(Path(path))
    cfg = distill_config_from_json(meta["config"])
    student = Student(
        cfg.student,
        tuple(json.loads(meta["latent_shape"])),
        int(meta["context_size"]),
        int(meta["num_timesteps"]),
    )
    student.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    return student.eval(), cfg, meta


def load_distill_checkpoint(
    path: Path, student: Student, opt: torch.optim.Optimizer, stages: ProgressiveStages | None
) -> tuple[int, float, list[dict]]:
    """Restore a run in place; returns (step, wall time so far, val history)."""
    tensors, meta = _read(path)
    student.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_meta = json.loads(meta["optimizer"])
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, values in opt_meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": opt_meta["param_groups"]})
    frozen = {k[7:]: v for k, v in tensors.items() if k.startswith("frozen.")}
    if stages is not None:
        stages.stage = int(meta["stage"])
        if frozen:
            import copy

            stages.frozen = copy.deepcopy(student).eval().requires_grad_(False)
            stages.frozen.load_state_dict(frozen)
    return int(meta["step"]), float(meta["wall_time_s"]), json.loads(meta["history"])
