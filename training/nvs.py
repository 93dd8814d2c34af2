"""Novel-view conditioning and generation with the torch models (training, sampling, evaluation).

The context layout is the design contract: concat(z_cond.flatten(), inv(c2w_cond) @ c2w_target
flattened row-major) with z = vae_mean * latent_scale; the null context of classifier-free guidance is
all zeros. The pose maths is `tinyldm_ros.poses.relative_transform`, the one the runtime uses.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tinyldm_ros.poses import relative_transform
from training import sampler as samplers
from training.config import SampleConfig, TrainConfig


def make_context(z_cond: torch.Tensor, c2w_cond: np.ndarray, c2w_target: np.ndarray) -> torch.Tensor:
    """z_cond [B,C,h,w] (scaled), c2w [B,4,4] each -> context float32 [B, C*h*w + 16] on z_cond's device."""
    rel = torch.from_numpy(relative_transform(c2w_cond, c2w_target).reshape(len(z_cond), 16))
    return torch.cat([z_cond.flatten(1).float(), rel.to(device=z_cond.device, dtype=torch.float32)], dim=1)


@torch.no_grad()
def generate(
    unet: nn.Module,
    context: torch.Tensor,
    cfg: TrainConfig,
    sample: SampleConfig | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Scaled latents [B,C,h,w] for the contexts, with the configured sampler, steps, guidance and
    temperature.

    The initial noise comes from a CPU generator, so a seed gives the same x_T on every device.
    """
    s = sample or cfg.sample
    u = cfg.unet
    g = torch.Generator().manual_seed(seed)
    x_T = s.temperature * torch.randn(
        (len(context), u.latent_channels, u.latent_size, u.latent_size), generator=g
    )
    device_gen = torch.Generator(device=context.device).manual_seed(seed + 1)
    return samplers.sample(
        unet,
        context,
        samplers.make_scheduler(s.sampler, cfg.diffusion, s.spacing, s.eta),
        s.steps,
        guidance=s.guidance_scale,
        generator=device_gen,
        x_T=x_T.to(context.device),
    )
