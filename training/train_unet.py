"""Train the conditional denoiser on pre-encoded latents: `python -m training.train_unet --out runs/paper`.

Each example is a (conditioning view, target view) pair of one object: the UNet learns to predict
the noise added to the target's latent given the context concat(z_cond, inv(c2w_cond) @ c2w_target);
with probability `cond_dropout` the context is the all-zero null context (classifier-free guidance).
Loss: L1 (paper) between predicted and true noise. Needs <out>/latents.safetensors
(`training.encode_latents`); writes <out>/unet/ like train_vae writes <out>/vae/. Sample grids: per
object, top row = conditioning view then the true target views (VAE round trip), bottom row = samples.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinyldm_ros import schedule as S
from training.checkpoint import checkpoint_extra, load_checkpoint
from training.cli import (
    add_config_args,
    add_run_args,
    apply_threads,
    run_cli,
    run_stage,
    stage_config,
    write_config,
)
from training.config import TrainConfig
from training.distributed import DistInfo, setup, teardown
from training.encode_latents import Latents
from training.errors import UserError
from training.grid import image_grid, to_uint8
from training.nvs import generate, make_context
from training.run_lock import run_lock
from training.sampler import DDPMScheduler
from training.trainer import Stage, seed_init
from training.unet import UNet
from training.vae import VAE, count_parameters
from training.views import EpochOrder, pair_targets


def check_latents(cfg: TrainConfig, z: torch.Tensor, source: Path) -> None:
    want = (cfg.unet.latent_channels, cfg.unet.latent_size, cfg.unet.latent_size)
    if tuple(z.shape[1:]) != want:
        raise UserError(
            f"{source} holds latents of shape {tuple(z.shape[1:])} but the UNet config expects {want} "
            "(train the VAE and the UNet with matching configs)"
        )


def check_resume_latents(ckpt_path: Path, latents: Latents) -> None:
    """A resumed UNet must keep training on the latents (and latent_scale) it started with: re-encoded
    latents of another VAE would silently change the data and the scale stored with the weights."""
    was = checkpoint_extra(load_checkpoint(ckpt_path, stage="unet")).get("latent_scale")
    if was is not None and float(was) != latents.latent_scale:
        raise UserError(
            f"{latents.path} has latent_scale {latents.latent_scale:.6g} but {ckpt_path} was trained with "
            f"{float(was):.6g} (latents re-encoded since?); resume with the original latents or start a new "
            "run"
        )


def build_stage(cfg: TrainConfig, latents: Latents, info: DistInfo, vae: VAE | None) -> Stage:
    o = cfg.unet_train
    seed_init(o.seed)
    unet = UNet(cfg.unet)
    z_all, c2w, offsets = latents.split(cfg.data.train_split)
    check_latents(cfg, z_all, latents.path)
    instance_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    z_dev = z_all.to(info.device)
    order = EpochOrder(len(z_all), o.batch_size, o.seed, info.rank, info.world_size)
    # q(x_t | x_0) with the shared schedule's arrays and add_noise maths, alpha_bar kept on the device
    acp = DDPMScheduler(cfg.diffusion).alphas_cumprod.to(info.device, torch.float32)
    T = cfg.diffusion.num_timesteps

    def loss_fn(module: nn.Module, step: int, g: torch.Generator):
        cond = order.batch(step)
        target = pair_targets(cond, offsets, instance_of, g, o.distinct_views)
        B = len(cond)
        t = torch.randint(0, T, (B,), generator=g)
        noise = torch.randn((B, *z_all.shape[1:]), generator=g)
        keep = (torch.rand(B, generator=g) >= o.cond_dropout).float()
        context = make_context(z_dev[cond.to(info.device)], c2w[cond.numpy()], c2w[target.numpy()])
        context = context * keep.to(info.device)[:, None]
        t, noise = t.to(info.device), noise.to(info.device)
        x_t = S.add_noise(z_dev[target.to(info.device)], noise, acp[t].view(B, 1, 1, 1))
        pred = module(x_t, t, context).float()
        loss = F.l1_loss(pred, noise) if o.loss == "l1" else F.mse_loss(pred, noise)
        return loss, {}

    sample_fn = None
    if vae is not None:
        split = cfg.data.val_split if cfg.data.val_split in latents.splits else cfg.data.train_split
        vz, vc2w, voffs = latents.split(split)
        vcol = latents.colour(split)
        picks = []  # (cond view, target views) per object, targets spread over the object's views
        for k in range(min(cfg.sample.num_instances, len(voffs) - 1)):
            lo, hi = int(voffs[k]), int(voffs[k + 1])
            others = np.arange(lo + 1, hi) if hi - lo > 1 else np.array([lo])
            targets = others[np.linspace(0, len(others) - 1, cfg.sample.num_views).round().astype(int)]
            picks.append((lo, targets))

        def sample_fn(model: nn.Module, step: int):
            cond = np.concatenate([[c] * len(ts) for c, ts in picks])
            tgt = np.concatenate([ts for _, ts in picks])
            ctx = make_context(vz[cond].to(info.device), vc2w[cond], vc2w[tgt])
            z = generate(model, ctx, cfg, seed=cfg.unet_train.seed)
            conds = [c for c, _ in picks]

            def decode(z: torch.Tensor, colour_rows) -> torch.Tensor:
                colour = None if vcol is None else vcol[colour_rows].to(info.device)
                return to_uint8(vae.decode(z.to(info.device) / latents.latent_scale, colour))

            pred = decode(z, cond)  # the colour comes from the conditioning view, as at inference
            truth = decode(vz[tgt], tgt)
            cond_img = decode(vz[conds], conds)
            rows, n = [], cfg.sample.num_views
            for k in range(len(picks)):
                rows.append([cond_img[k], *truth[k * n : (k + 1) * n]])
                rows.append([None, *pred[k * n : (k + 1) * n]])
            return image_grid(rows)

    extra = {
        "params": count_parameters(unet),
        "latent_scale": latents.latent_scale,
        "latents": str(latents.path),
    }
    extra["vae_checkpoint"] = latents.meta.get("vae_checkpoint", "")
    return Stage("unet", unet, unet, o, loss_fn, sample_fn, extra)


def load_decoder(path: Path, device: torch.device) -> VAE | None:
    if not path.is_file():
        print(f"note: no VAE checkpoint at {path}; training without sample grids")
        return None
    ckpt = load_checkpoint(path, stage="vae")
    vae = VAE(ckpt.config.vae)
    vae.load_state_dict(ckpt.inference_state_dict())
    return vae.to(device).eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="train_unet", description=__doc__.split("\n")[0])
    add_config_args(p)
    add_run_args(p)
    p.add_argument("--latents", type=Path, help="default: <out>/latents.safetensors")
    p.add_argument(
        "--vae", type=Path, help="VAE checkpoint for sample grids (default: the one the latents came from)"
    )
    args = p.parse_args(argv)
    apply_threads(args)
    with run_lock(args.out, "train_unet"):  # a second training on this --out is refused
        stage_dir = args.out / "unet"
        cfg = stage_config(args, stage_dir)
        latents = Latents(args.latents or args.out / "latents.safetensors")
        if args.resume:
            check_resume_latents(stage_dir / "checkpoint.safetensors", latents)
        info = setup(args.ddp, args.device)
        try:
            vae = None
            if info.is_main and cfg.unet_train.sample_every:
                vae = load_decoder(args.vae or Path(latents.meta.get("vae_checkpoint", "")), info.device)
            stage = build_stage(cfg, latents, info, vae)
            if info.is_main:
                write_config(cfg, stage_dir)
                z, _, offs = latents.split(cfg.data.train_split)
                print(
                    f"UNet {stage.extra['params']:,} params | {len(offs) - 1} objects, {len(z)} views, "
                    f"latent_scale {latents.latent_scale:.4g} | {cfg.unet_train.iterations} iterations, "
                    f"batch {cfg.unet_train.batch_size} | device {info.device}"
                    + (f" x{info.world_size} (DDP)" if info.ddp else "")
                )
            run_stage(stage, cfg, stage_dir, info, args, "UNet")
        finally:
            teardown(info)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
