"""Distil a model folder's default sampler (DDIM at temperature 0) into a one-step student.

    python -m training.distill --teacher models/default --data data/cars --out runs/one_step \
        [--method regression|progressive] [--config one_step] [--set train.iterations=20000] \
        [--resume] [--threads 1] [--no-progress]

The teacher is the model folder itself, run by ONNX Runtime (training.distill_data labels the pairs
once). Methods, same network and budget (`train.iterations` updates of `train.batch_size`):
- regression: Student(0, T - 1, context) fits the teacher's sample z0 directly;
- progressive (Salimans & Ho 2022): stage 1 trains a sampler of half the teacher's steps to land where
  two teacher steps land, stage 2 halves that one, ...; the iterations are split evenly between the
  stages, each stage starting from the previous student with a fresh optimizer and warmup.

Writes `<out>/checkpoint.safetensors` (weights, optimizer, RNG, step, config; `--resume` continues),
`<out>/config.yaml` and, at the end, `<out>/metrics.json`: the one-step student against the teacher on
the val pairs (latent RMSE; PSNR / SSIM / CIEDE2000 of the decoded views against the teacher's views
and against the true views). `python -m training.export_student` puts the student into the folder.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tinyldm_ros.engine import Engine
from training.cli import run_cli
from training.distill_checkpoint import load_distill_checkpoint, save_distill_checkpoint
from training.distill_config import DistillConfig, dump_distill_config, load_distill_config
from training.distill_data import Pairs, cached_pairs, teacher_engine
from training.distill_steps import ProgressiveStages, regression_loss
from training.errors import UserError
from training.metrics import all_metrics
from training.student import Student, one_step


def lr_at(step: int, cfg: DistillConfig, stage_len: int) -> float:
    """Warmup then cosine decay, restarting with each progressive stage."""
    t = cfg.train
    s = step % stage_len
    if s < t.warmup_steps:
        return t.lr * (s + 1) / t.warmup_steps
    return (
        0.5
        * t.lr
        * (1 + math.cos(math.pi * min(1.0, (s - t.warmup_steps) / max(1, stage_len - t.warmup_steps))))
    )


@torch.no_grad()
def predict(student: Student, context: np.ndarray, batch: int = 4096) -> np.ndarray:
    student.eval()
    out = [
        one_step(student, torch.from_numpy(context[i : i + batch])).numpy()
        for i in range(0, len(context), batch)
    ]
    student.train()
    return np.concatenate(out)


def latent_rmse(student: Student, val: Pairs) -> float:
    return float(np.sqrt(np.mean((predict(student, val.context) - val.teacher) ** 2)))


def view_metrics(engine: Engine, student: Student, val: Pairs) -> dict:
    """The one-step student's and the teacher's decoded views against each other and the truth."""
    from tinyldm_ros.preprocess import postprocess

    def views(z: np.ndarray) -> np.ndarray:
        colour = val.colour if engine.info.colour_values else None
        out = [
            postprocess(engine.decode(z[i : i + 512], None if colour is None else colour[i : i + 512]))
            for i in range(0, len(z), 512)
        ]
        return np.concatenate(out)

    z_student = predict(student, val.context)
    student_views, teacher_views = views(z_student), views(val.teacher)

    def means(pred: np.ndarray, truth: np.ndarray) -> dict:
        return {k: float(np.mean(v)) for k, v in all_metrics(pred, truth).items()}

    return {
        "pairs": len(val.context),
        "latent_rmse": float(np.sqrt(np.mean((z_student - val.teacher) ** 2))),
        "student_vs_teacher": means(student_views, teacher_views),
        "student_vs_truth": means(student_views, val.target),
        "teacher_vs_truth": means(teacher_views, val.target),
    }


def build_student(cfg: DistillConfig, engine: Engine) -> Student:
    info = engine.info
    return Student(cfg.student, tuple(info.latent_shape), info.context.size, info.num_train_timesteps)


def distill(cfg: DistillConfig, out: Path, resume: bool, progress: bool, until: int | None = None) -> Path:
    engine = teacher_engine(cfg.teacher)
    train_pairs = cached_pairs(
        engine, out, cfg.data.root, cfg.data.train_split, cfg.data.train_pairs, cfg.data.seed,
        max_instances=cfg.data.max_instances, progress=progress,
    )  # fmt: skip
    val = cached_pairs(
        engine,
        out,
        cfg.data.root,
        cfg.data.val_split,
        cfg.data.val_pairs,
        cfg.data.seed + 1,
        progress=progress,
        targets=True,
    )
    torch.manual_seed(cfg.train.seed)
    student = build_student(cfg, engine)
    t = cfg.train
    opt = torch.optim.AdamW(student.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    stages = ProgressiveStages(engine, train_pairs) if t.method == "progressive" else None
    stage_len = t.iterations // stages.count if stages else t.iterations
    ckpt_path = out / "checkpoint.safetensors"
    step, wall, history = 0, 0.0, []
    if resume:
        if not ckpt_path.is_file():
            raise UserError(f"--resume: no checkpoint at {ckpt_path}")
        step, wall, history = load_distill_checkpoint(ckpt_path, student, opt, stages)
    elif ckpt_path.exists():
        raise UserError(f"{ckpt_path} exists: pass --resume to continue that run, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_distill_config(cfg))
    rng = np.random.default_rng([t.seed, step])
    stop = min(t.iterations, until or t.iterations)
    bar = tqdm(
        total=stop, initial=step, desc=f"distil ({t.method})", disable=not progress, dynamic_ncols=True
    )
    start = time.perf_counter()

    def save() -> None:
        save_distill_checkpoint(
            ckpt_path, cfg, student, opt, stages, step, wall + time.perf_counter() - start, history
        )

    losses = []
    while step < stop:
        new_stage = stages is not None and step % stage_len == 0 and step // stage_len < stages.count
        if new_stage and stages.enter(step // stage_len, student):
            opt = torch.optim.AdamW(student.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        idx = rng.integers(len(train_pairs.context), size=t.batch_size)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg, stage_len)
        loss = (
            stages.loss(student, idx, rng, t.loss)
            if stages
            else regression_loss(student, train_pairs, idx, t.loss)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), t.grad_clip)
        opt.step()
        loss = loss.detach()
        if not torch.isfinite(loss):
            raise UserError(f"non-finite loss at step {step}: lower train.lr")
        losses.append(loss.item())
        step += 1
        bar.update()
        if step % t.log_every == 0 or step == stop:
            rmse = latent_rmse(student, val)
            history.append({"step": step, "loss": float(np.mean(losses)), "val_latent_rmse": rmse})
            losses = []
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", val_rmse=f"{rmse:.4f}")
            if not progress:
                print(f"step {step}: loss {history[-1]['loss']:.5f}, val latent RMSE {rmse:.5f}", flush=True)
        if step % t.checkpoint_every == 0 or step == stop:
            save()
    bar.close()
    if step >= t.iterations:
        metrics = {
            "method": t.method,
            "iterations": step,
            "batch_size": t.batch_size,
            "wall_time_s": wall + time.perf_counter() - start,
            "student_parameters": sum(p.numel() for p in student.parameters()),
            "teacher": cfg.teacher,
            "teacher_sampler": vars(engine.info.sampler),
            "val": view_metrics(engine, student, val),
            "history": history,
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        v = metrics["val"]
        print(
            f"val ({v['pairs']} pairs): latent RMSE {v['latent_rmse']:.4f}; PSNR vs teacher "
            f"{v['student_vs_teacher']['psnr']:.2f} dB; vs truth student "
            f"{v['student_vs_truth']['psnr']:.2f} / "
            f"teacher {v['teacher_vs_truth']['psnr']:.2f} dB"
        )
    print(f"student checkpoint: {ckpt_path}")
    return ckpt_path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="training.distill", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="one_step", help="training/configs/distill/<name>.yaml or a path")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--teacher", help="model folder to distil (overrides teacher)")
    p.add_argument("--data", help="dataset root, SRN layout (overrides data.root)")
    p.add_argument("--method", choices=["regression", "progressive"], help="overrides train.method")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.safetensors")
    p.add_argument("--until", type=int, metavar="STEP", help="stop at this step with a checkpoint")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest on a shared CPU)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = list(args.overrides)
    overrides += [f"teacher={args.teacher}"] if args.teacher else []
    overrides += [f"data.root={args.data}"] if args.data else []
    overrides += [f"train.method={args.method}"] if args.method else []
    if args.resume and (args.out / "checkpoint.safetensors").is_file():
        from training.distill_checkpoint import checkpoint_config
        from training.distill_config import apply_distill_overrides

        cfg = apply_distill_overrides(checkpoint_config(args.out / "checkpoint.safetensors"), overrides)
    else:
        cfg = load_distill_config(args.config, overrides)
    distill(cfg, args.out, args.resume, not args.no_progress, args.until)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
