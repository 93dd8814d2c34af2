"""The torch novel-view pipeline: trained models in, novel views out.

    models, vae_ckpt, unet_ckpt = load_models(run / "vae/checkpoint.safetensors", run / "unet/...")
    views = synthesize(models, cond_images, c2w_cond, c2w_target, "ddim-50")   # uint8 (N, S, S, 3)

One chain (encode the conditioning image to its scaled VAE mean, sample a latent from x_T in the
context of that latent and the relative pose, decode it with the conditioning image's colour) for
`training.sample`, `training.evaluate` and `training.export`, which holds the ONNX runtime against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tinyldm_ros.preprocess import postprocess, uint8_to_model
from tinyldm_ros.schedule import ScheduleConfig
from training.checkpoint import Checkpoint, checkpoint_extra, load_checkpoint
from training.config import TrainConfig
from training.errors import UserError
from training.nvs import make_context
from training.sampler import Scheduler, make_scheduler, parse_sampler, sample
from training.unet import UNet
from training.vae import VAE


@dataclass
class Models:
    """What sampling needs: the VAE, the denoiser, the latent scale and the training noise schedule."""

    vae: VAE
    unet: UNet
    latent_scale: float
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def load_models(
    vae_path: str | Path,
    unet_path: str | Path,
    device: torch.device | None = None,
    config: TrainConfig | None = None,
    latent_scale: float | None = None,
) -> tuple[Models, Checkpoint, Checkpoint]:
    """Models from the trainer's checkpoints (EMA weights when present), and the two checkpoints for
    their metadata. `config` builds both modules instead of the configs the checkpoints carry;
    `latent_scale` replaces the one the UNet checkpoint recorded."""
    device = device or torch.device("cpu")
    vae_ckpt = load_checkpoint(vae_path, stage="vae")
    unet_ckpt = load_checkpoint(unet_path, stage="unet")
    cfg = config or unet_ckpt.config
    vae, unet = VAE(config.vae if config else vae_ckpt.config.vae), UNet(cfg.unet)
    for what, module, ckpt in (("VAE", vae, vae_ckpt), ("UNet", unet, unet_ckpt)):
        try:
            module.load_state_dict(ckpt.inference_state_dict())
        except RuntimeError as e:
            raise UserError(f"{ckpt.path}: weights do not fit the {what} config: {e}") from None
    if latent_scale is None:
        latent_scale = checkpoint_extra(unet_ckpt).get("latent_scale")
    if latent_scale is None:
        raise UserError(f"{unet_path}: no latent_scale in the checkpoint metadata")
    models = Models(vae.to(device).eval(), unet.to(device).eval(), float(latent_scale), cfg.diffusion, device)
    return models, vae_ckpt, unet_ckpt


def scheduler_for(
    spec: str, schedule: ScheduleConfig, spacing: str = "trailing", eta: float = 0.0
) -> tuple[Scheduler, int]:
    """'ddim-50' -> (a DDIM scheduler on the training schedule, 50 steps)."""
    name, steps = parse_sampler(spec, schedule.num_timesteps)
    return make_scheduler(name, schedule, spacing, eta), steps


@torch.no_grad()
def novel_views(
    models: Models,
    x_cond: torch.Tensor,
    c2w_cond: np.ndarray,
    c2w_target: np.ndarray,
    scheduler: Scheduler,
    steps: int,
    guidance: float,
    x_T: torch.Tensor,
    generator: torch.Generator | None = None,
    callback: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Conditioning images [N,3,S,S] in [-1, 1] and cameras -> novel views [N,3,S,S] in ~[-1, 1]."""
    z_cond = models.vae.encode(x_cond)[0] * models.latent_scale
    context = make_context(z_cond, c2w_cond, c2w_target)
    z = sample(models.unet, context, scheduler, steps, guidance, generator, x_T=x_T, callback=callback)
    return models.vae.decode(z / models.latent_scale, models.vae.colour(x_cond))


@torch.no_grad()
def synthesize(
    models: Models,
    cond_images: np.ndarray,
    c2w_cond: np.ndarray,
    c2w_target: np.ndarray,
    sampler: str,
    guidance: float = 1.0,
    seed: int = 0,
    batch_size: int = 1024,
    x_T: torch.Tensor | None = None,
    progress: bool = False,
    temperature: float = 1.0,
    *,
    spacing: str = "trailing",
    eta: float = 0.0,
) -> np.ndarray:
    """Novel views uint8 (N, S, S, 3) of the uint8 conditioning images at the target poses.

    x_T (the initial noise, [N, C, h, w]) defaults to temperature times a CPU draw from `seed`, so
    every sampler and device starts from the same noise for a seed.
    """
    scheduler, steps = scheduler_for(sampler, models.schedule, spacing, eta)
    u = models.unet.cfg
    n = len(cond_images)
    if x_T is None:
        gen = torch.Generator().manual_seed(seed)
        x_T = temperature * torch.randn((n, u.latent_channels, u.latent_size, u.latent_size), generator=gen)
    chunks = range(0, n, batch_size)
    bar = tqdm(total=len(chunks) * steps, desc=sampler, unit="step", disable=not progress, dynamic_ncols=True)
    out = []
    for k, s in enumerate(chunks):
        part = slice(s, s + batch_size)
        gen = torch.Generator(device=models.device).manual_seed(seed + 1 + k)  # DDPM's per-step noise
        x = torch.from_numpy(uint8_to_model(cond_images[part])).to(models.device)
        x_T_part = x_T[part].to(models.device)
        views = novel_views(
            models,
            x,
            c2w_cond[part],
            c2w_target[part],
            scheduler,
            steps,
            guidance,
            x_T_part,
            gen,
            callback=lambda _t: bar.update(),
        )
        out.append(postprocess(views.float().cpu().numpy()))
    bar.close()
    return np.concatenate(out)


@torch.no_grad()
def reconstruct(models: Models, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """decode(encode(images)) uint8 (N, S, S, 3): what the latent alone can carry of each image."""
    out = []
    for s in range(0, len(images), batch_size):
        x = torch.from_numpy(uint8_to_model(images[s : s + batch_size])).to(models.device)
        z = models.vae.encode(x)[0]
        out.append(postprocess(models.vae.decode(z, models.vae.colour(x)).float().cpu().numpy()))
    return np.concatenate(out)
