"""Torch samplers (diffusers-style schedulers) on top of `tinyldm_ros.schedule`.

The schedulers hold no maths of their own: arrays come from the numpy schedule and every update calls
the same functions the runtime calls (they are written for numpy arrays and torch tensors alike).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from tinyldm_ros import schedule as S


class _Scheduler:
    def __init__(self, cfg: S.ScheduleConfig | None = None, spacing: str = "trailing"):
        self.schedule = S.NoiseSchedule(cfg)
        self.spacing = spacing
        self.alphas_cumprod = torch.from_numpy(self.schedule.alphas_cumprod)  # float64, [T]
        self.set_timesteps(self.schedule.num_timesteps)

    @property
    def num_train_timesteps(self) -> int:
        return self.schedule.num_timesteps

    def set_timesteps(self, num_inference_steps: int) -> None:
        ts = self.schedule.timesteps(num_inference_steps, self.spacing)
        self.timesteps = torch.from_numpy(ts)
        self._prev = dict(zip(ts.tolist(), S.previous_timesteps(ts).tolist(), strict=True))

    def prev_timestep(self, t: int) -> int:
        return self._prev[int(t)]

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t for per-sample timesteps t [B] (training)."""
        acp = self.alphas_cumprod.to(x0.device)[t].to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))
        return S.add_noise(x0, noise, acp)

    def _alpha_bars(self, t: int) -> tuple[float, float]:
        return self.schedule.alpha_bar(int(t)), self.schedule.alpha_bar(self.prev_timestep(t))


class DDPMScheduler(_Scheduler):
    """Ancestral DDPM (the paper's sampler); with fewer steps than T it strides the posterior."""

    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        acp_t, acp_prev = self._alpha_bars(int(t))
        noise = None
        if acp_prev < 1.0:  # the last step (to t = -1) has zero variance
            noise = torch.randn(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
        return S.ddpm_step(sample, model_output, acp_t, acp_prev, noise)


class DDIMScheduler(_Scheduler):
    """DDIM; eta = 0 (default) is deterministic."""

    def __init__(self, cfg: S.ScheduleConfig | None = None, spacing: str = "trailing", eta: float = 0.0):
        super().__init__(cfg, spacing)
        self.eta = eta

    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        acp_t, acp_prev = self._alpha_bars(int(t))
        noise = None
        if self.eta > 0.0:
            noise = torch.randn(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
        return S.ddim_step(sample, model_output, acp_t, acp_prev, self.eta, noise)


Scheduler = DDPMScheduler | DDIMScheduler


def parse_sampler(spec: str, num_timesteps: int | None = None) -> tuple[str, int]:
    """'ddim-50' -> ('ddim', 50); with num_timesteps, more steps than the training timesteps are refused."""
    name, _, steps = spec.partition("-")
    if name not in ("ddpm", "ddim") or not steps.isdigit() or int(steps) < 1:
        raise ValueError(f"sampler {spec!r}: expected ddpm-<steps> or ddim-<steps>, e.g. ddim-50")
    if num_timesteps is not None and int(steps) > num_timesteps:
        raise ValueError(f"sampler {spec!r}: {steps} steps > the {num_timesteps} training timesteps")
    return name, int(steps)


def make_scheduler(
    name: str, cfg: S.ScheduleConfig | None = None, spacing: str = "trailing", eta: float = 0.0
) -> Scheduler:
    """The one scheduler factory of training: 'ddpm' or 'ddim' (eta is DDIM's; DDPM has none)."""
    if name == "ddpm":
        return DDPMScheduler(cfg, spacing)
    if name == "ddim":
        return DDIMScheduler(cfg, spacing, eta=eta)
    raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {name!r}")


@torch.no_grad()
def guided_noise(
    unet: nn.Module, x_t: torch.Tensor, t: int, context: torch.Tensor, guidance: float
) -> torch.Tensor:
    """Epsilon with classifier-free guidance; cond and uncond (null context = zeros) in one batch."""
    B = x_t.shape[0]
    if guidance == 1.0:  # guided == cond exactly; skip the unconditional half
        return unet(x_t, torch.full((B,), t, dtype=torch.int64, device=x_t.device), context)
    x_in = torch.cat([x_t, x_t])
    ctx_in = torch.cat([context, torch.zeros_like(context)])
    t_in = torch.full((2 * B,), t, dtype=torch.int64, device=x_t.device)
    eps_cond, eps_uncond = unet(x_in, t_in, ctx_in).chunk(2)
    return S.classifier_free_guidance(eps_uncond, eps_cond, guidance)


@torch.no_grad()
def sample(
    unet: nn.Module,
    context: torch.Tensor,
    scheduler: Scheduler,
    steps: int,
    guidance: float = 1.0,
    generator: torch.Generator | None = None,
    latent_shape: tuple[int, int, int] | None = None,
    x_T: torch.Tensor | None = None,
    callback: Callable[[int], None] | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Denoise from x_T = temperature * N(0, I) (or the given x_T) to a scaled latent z [B, C, h, w].

    `context` [B, K] is the 32-value conditioning vector; `guidance` the classifier-free guidance scale;
    `callback(t)` is called after each step (progress bars).
    """
    if x_T is None:
        if latent_shape is None:
            cfg = unet.cfg
            latent_shape = (cfg.latent_channels, cfg.latent_size, cfg.latent_size)
        x_T = temperature * torch.randn(
            (context.shape[0], *latent_shape), generator=generator, device=context.device, dtype=context.dtype
        )
    scheduler.set_timesteps(steps)
    x = x_T
    for t in scheduler.timesteps.tolist():
        eps = guided_noise(unet, x, t, context, guidance)
        x = scheduler.step(eps, t, x, generator=generator)
        if callback is not None:
            callback(t)
    return x
