"""Synthesize novel views from checkpoints into a PNG grid: `python -m training.sample --out runs/paper`.

For each of the first --instances objects of --split: the image of view --cond-view is encoded with
the VAE, and --views target views spread over the object's cameras are generated from it and the
relative poses. Per object, the top row is the conditioning image then the true target images, the
bottom row the synthesized ones.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from training.cli import run_cli
from training.distributed import pick_device
from training.errors import UserError
from training.grid import image_grid
from training.pipeline import load_models, synthesize
from training.views import load_views


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="sample", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path, help="run folder with vae/ and unet/ checkpoints")
    p.add_argument("--unet", type=Path, help="default: <out>/unet/checkpoint.safetensors")
    p.add_argument("--vae", type=Path, help="default: <out>/vae/checkpoint.safetensors")
    p.add_argument("--data", help="dataset root (default: data.root of the run)")
    p.add_argument("--split", default="test")
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--views", type=int, default=6, help="target views per object")
    p.add_argument("--cond-view", type=int, default=0, help="index of the conditioning view in each object")
    p.add_argument("--sampler", choices=["ddim", "ddpm"], help="default: the run's sample.sampler")
    p.add_argument("--steps", type=int, help="default: the run's sample.steps")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the run's)")
    p.add_argument("--temperature", type=float, help="scale of the initial noise, 0..1 (default: the run's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", type=Path, help="default: <out>/samples_<split>.png")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)

    device = pick_device(args.device)
    models, vae_ckpt, unet_ckpt = load_models(
        args.vae or args.out / "vae" / "checkpoint.safetensors",
        args.unet or args.out / "unet" / "checkpoint.safetensors",
        device,
    )
    cfg = unet_ckpt.config
    s = cfg.sample
    s = dataclasses.replace(
        s,
        sampler=args.sampler or s.sampler,
        steps=args.steps or s.steps,
        guidance_scale=s.guidance_scale if args.guidance is None else args.guidance,
        temperature=s.temperature if args.temperature is None else args.temperature,
    )
    if not 0.0 <= s.temperature <= 1.0:
        raise UserError(f"--temperature must be in [0, 1], got {s.temperature}")
    if not 1 <= s.steps <= cfg.diffusion.num_timesteps:
        raise UserError(f"--steps must be in [1, {cfg.diffusion.num_timesteps}], got {s.steps}")

    root = args.data or cfg.data.root
    size = vae_ckpt.config.vae.image_size
    views = load_views(root, args.split, size, max_instances=args.instances, progress=not args.no_progress)
    rows = []
    for k, name in enumerate(views.names):
        lo, hi = int(views.offsets[k]), int(views.offsets[k + 1])
        if not 0 <= args.cond_view < hi - lo:
            raise UserError(f"--cond-view {args.cond_view}: object {name} has {hi - lo} views")
        cond = lo + args.cond_view
        others = np.array([v for v in range(lo, hi) if v != cond] or [cond])
        targets = others[np.linspace(0, len(others) - 1, args.views).round().astype(int)]
        conds = [cond] * len(targets)
        pred = synthesize(
            models,
            views.images[conds].numpy(),
            views.c2w[conds],
            views.c2w[targets],
            f"{s.sampler}-{s.steps}",
            s.guidance_scale,
            seed=args.seed + k,
            temperature=s.temperature,
            spacing=s.spacing,
            eta=s.eta,
        )
        rows.append([views.images[cond].numpy(), *views.images[targets].numpy()])
        rows.append([None, *pred])
        print(f"{name}: cond view {args.cond_view}, targets {(targets - lo).tolist()}")
    png = args.png or args.out / f"samples_{args.split}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    image_grid(rows).save(png)
    print(f"{s.sampler}-{s.steps}, guidance {s.guidance_scale}, temperature {s.temperature}: wrote {png}")


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
