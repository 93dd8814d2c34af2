"""The training loop both stages share: optimizer, LR schedule, AMP, EMA, DDP, checkpoints, logs, NaN guard.

A stage supplies `loss_fn(module, step, generator) -> (loss, metrics)` and optionally
`sample_fn(model, step) -> PIL image`; the loop owns everything else. Steps count finished
optimizer updates: the checkpoint at step k holds the state after k updates, and the loss logged
at step k is the one update k was computed from.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from training.checkpoint import (
    checkpoint_extra,
    load_checkpoint,
    restore_grad_scaler,
    restore_optimizer,
    restore_rng,
    save_checkpoint,
)
from training.config import OptimConfig, TrainConfig
from training.distributed import DistInfo, all_reduce_mean, barrier
from training.run_log import RunLog
from training.views import mix_seed, step_generator

LossFn = Callable[[nn.Module, int, torch.Generator], tuple[torch.Tensor, dict[str, torch.Tensor]]]
SampleFn = Callable[[nn.Module, int], Image.Image]


class NonFiniteLossError(RuntimeError):
    pass


@dataclass
class Stage:
    name: str  # "vae" | "unet": checkpoint stage and output sub-folder
    model: nn.Module  # whose weights are saved
    train_module: nn.Module  # what loss_fn calls (wraps `model`); DDP wraps this one
    opt: OptimConfig
    loss_fn: LossFn
    sample_fn: SampleFn | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # stored in every checkpoint's metadata


def seed_init(seed: int) -> None:
    """Seed the global RNGs before a stage builds its model, so initial weights follow the config's seed."""
    torch.manual_seed(mix_seed(seed, 0xC0FFEE))
    np.random.seed(mix_seed(seed, 0xC0FFEE) % 2**32)
    random.seed(seed)


def lr_at(step: int, o: OptimConfig) -> float:
    """LR for update number `step` (0-based): linear warmup, then constant or cosine decay to 0."""
    if o.warmup_steps and step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.lr_schedule == "cosine":
        span = max(1, o.iterations - o.warmup_steps)
        return 0.5 * o.lr * (1.0 + math.cos(math.pi * min(1.0, (step - o.warmup_steps) / span)))
    return o.lr


def amp_context(
    device: torch.device, amp: str
) -> tuple[contextlib.AbstractContextManager, torch.amp.GradScaler]:
    use = device.type == "cuda" and amp != "fp32"
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    ctx = torch.autocast("cuda", dtype=dtype) if use else contextlib.nullcontext()
    return ctx, torch.amp.GradScaler("cuda", enabled=use and amp == "fp16")


class EMA:
    """An exponential moving average of a model's parameters (buffers copied), updated after each step."""

    def __init__(self, ema_model: nn.Module, model: nn.Module, decay: float):
        self.decay = decay
        # tensor lists built once: walking the module tree every step costs more than the update on CPU
        self.ema_p = list(ema_model.parameters())
        self.model_p = [p.detach() for p in model.parameters()]
        self.ema_b, self.model_b = list(ema_model.buffers()), list(model.buffers())

    @torch.no_grad()
    def update(self, step: int) -> None:
        # warm the average up (LDM/timm style) so early weights do not dominate a short run
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.ema_p, self.model_p, 1.0 - d)
        for b_ema, b in zip(self.ema_b, self.model_b, strict=True):
            b_ema.copy_(b)


def checkpoint_path(out_dir: Path) -> Path:
    return out_dir / "checkpoint.safetensors"


def train(
    stage: Stage,
    cfg: TrainConfig,
    out_dir: Path,
    info: DistInfo,
    resume: bool,
    show_progress: bool = True,
    until: int | None = None,
) -> Path:
    """Run (or continue) a stage to `stage.opt.iterations`, or only up to step `until` (a checkpoint is
    written there, and `resume` continues as if the run had never stopped); returns the checkpoint path."""
    o = stage.opt
    ckpt_file = checkpoint_path(out_dir)
    model = stage.model.to(info.device)
    train_module = stage.train_module.to(info.device)
    ema = copy.deepcopy(model).requires_grad_(False) if o.ema_decay > 0 else None
    params = [p for p in model.parameters() if p.requires_grad]
    # foreach: one multi-tensor update, not a Python loop over ~200 tensors (the default on CUDA only)
    optimizer = torch.optim.AdamW(
        params, lr=o.lr, betas=tuple(o.adam_betas), weight_decay=o.weight_decay, foreach=True
    )
    autocast, scaler = amp_context(info.device, o.amp)

    start = 0
    wall_before = 0.0  # training wall time of earlier sittings of this run (provenance for the export)
    t_start = time.perf_counter()
    if resume:
        ckpt = load_checkpoint(ckpt_file, stage=stage.name)
        wall_before = float(checkpoint_extra(ckpt).get("wall_time_s", 0.0))
        model.load_state_dict(ckpt.state_dict("model"))
        if ema is not None:
            # an EMA switched on at resume (--set ...ema_decay) starts from the resumed weights, not init
            ema.load_state_dict(ckpt.state_dict("ema" if ckpt.has("ema") else "model"))
        restore_optimizer(optimizer, ckpt)
        # load_state_dict brings back the checkpoint's hyper-parameters; --set on a resume must win
        # (lr is set every step)
        for group in optimizer.param_groups:
            group.update(betas=tuple(o.adam_betas), weight_decay=o.weight_decay)
        restore_grad_scaler(scaler, ckpt)
        restore_rng(ckpt)
        start = ckpt.step
        if info.is_main:
            print(f"resuming {stage.name} from {ckpt_file} at step {start} (the checkpoint's config + --set)")

    ema_avg = EMA(ema, model, o.ema_decay) if ema is not None else None
    if info.ddp:
        # 1x1 convs' gradients come back with strides DDP's buckets do not expect: harmless, only a copy
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        device_ids = [info.device.index] if info.device.type == "cuda" else None
        train_module = DistributedDataParallel(train_module, device_ids=device_ids)

    if o.compile != "none" and info.device.type == "cuda":
        # CUDA only: these models are launch-bound on a GPU, which compile (CUDA graphs) fixes, while on
        # a CPU it would only add minutes of compilation. Weights are still saved from `model`.
        train_module = torch.compile(train_module, mode=o.compile)

    log = RunLog(out_dir, start) if info.is_main else None
    last_good = ckpt_file if resume else None
    if info.is_main:
        (out_dir / "samples").mkdir(parents=True, exist_ok=True)

    def save(step: int) -> None:
        nonlocal last_good
        if info.is_main:
            save_checkpoint(
                ckpt_file,
                stage=stage.name,
                step=step,
                config=cfg,
                model=model,
                ema=ema,
                optimizer=optimizer,
                scaler=scaler,
                extra={**stage.extra, "wall_time_s": wall_before + time.perf_counter() - t_start},
            )
            last_good = ckpt_file
        barrier(info)

    def write_samples(step: int) -> None:
        if info.is_main and stage.sample_fn is not None:
            was_training = model.training
            eval_model = (ema if ema is not None else model).eval()
            with torch.no_grad():
                stage.sample_fn(eval_model, step).save(out_dir / "samples" / f"step_{step:07d}.png")
            model.train(was_training)

    bar = tqdm(
        total=o.iterations,
        initial=start,
        desc=f"train {stage.name}",
        disable=not (info.is_main and show_progress),
        dynamic_ncols=True,
    )
    model.train()
    t_last, n_last = time.perf_counter(), start
    stop = o.iterations if until is None else min(until, o.iterations)
    # dropout is the only consumer of the global RNG inside the models; reseeding it per step keeps
    # resumed runs exact even on several ranks (checkpoints hold rank 0's RNG state only)
    reseed_global = any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    pending: list[torch.Tensor] = []  # losses not yet checked: the GPU is only synced at log/checkpoint steps

    def check_losses(done: int) -> float:
        """Raise on the first non-finite loss since the last check; returns the latest (rank-mean) loss."""
        values = all_reduce_mean(torch.stack(pending).float(), info).tolist()
        first = done - len(values) + 1
        pending.clear()
        for i, v in enumerate(values):
            if not math.isfinite(v):
                where = (
                    f"{last_good} (step {load_checkpoint(last_good).step})"
                    if last_good
                    else "none written yet"
                )
                raise NonFiniteLossError(
                    f"{stage.name} training stopped: the loss is {v} at step {first + i}; "
                    f"last good checkpoint: {where}. Lower {stage.name}_train.lr or check the data."
                )
        return values[-1]

    for step in range(start, stop):
        lr = lr_at(step, o)
        for group in optimizer.param_groups:
            group["lr"] = lr
        g = step_generator(o.seed, step, info.rank)
        if reseed_global:
            torch.manual_seed(mix_seed(o.seed, step, info.rank, 1))
        with autocast:
            loss, metrics = stage.loss_fn(train_module, step, g)
        pending.append(loss.detach())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        grad_norm = None
        if o.grad_clip > 0:
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if ema_avg is not None:
            ema_avg.update(step)
        done = step + 1
        bar.update(1)

        log_now = done % o.log_every == 0 or done == stop
        ckpt_now = done % o.checkpoint_every == 0 or done == stop
        sample_now = bool(o.sample_every) and (done % o.sample_every == 0 or done == o.iterations)
        if not (log_now or ckpt_now or sample_now):
            continue
        loss_value = check_losses(done)  # before anything is written: no checkpoint ever holds NaN weights
        if log_now:
            # every rank joins the all-reduce of the metrics; only rank 0 writes them
            scalars = {"loss": loss_value, "lr": lr}
            scalars.update({k: all_reduce_mean(v.detach().float(), info).item() for k, v in metrics.items()})
            if grad_norm is not None:
                scalars["grad_norm"] = float(grad_norm)
            if log is not None:
                now = time.perf_counter()
                scalars["it_per_s"] = (done - n_last) / max(now - t_last, 1e-9)
                t_last, n_last = now, done
                log.log(done, scalars)
                bar.set_postfix(loss=f"{loss_value:.4f}")
        if ckpt_now:
            save(done)
        if sample_now:
            write_samples(done)
    bar.close()
    if start >= o.iterations and not ckpt_file.exists():
        save(start)
    if log is not None:
        log.close()
    return ckpt_file
