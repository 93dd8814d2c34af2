"""The one-step student: a residual MLP that maps a diffusion state (x_t, t, context) to a clean-latent
prediction z0.

At temperature 0 the teacher's DDIM sampler is a deterministic map from the 32-value context
(conditioning latent + relative pose) to a latent; the student learns that map. It takes x_t and t
as well so that progressive distillation (which trains a 2-step student first) can use the same
network; for the one-step sampler x_t = 0 and t = T - 1 are constants, and `OneStep` folds them
into the first layer's bias, leaving a plain MLP of the context for ONNX.

The network predicts z0 rather than epsilon: at t = T - 1 alpha_bar is ~0.005, and z0 from an
epsilon prediction would multiply its error by sqrt((1 - a) / a) ~ 14.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class StudentConfig:
    hidden: int = 256  # width of the residual MLP
    blocks: int = 4  # residual blocks (LayerNorm -> Linear -> SiLU -> Linear)
    time_dim: int = 32  # sinusoidal timestep features


def timestep_features(t: torch.Tensor, dim: int, num_timesteps: int) -> torch.Tensor:
    """Sinusoidal features of integer timesteps [B] -> [B, dim] (t scaled to [0, 1] first, so the
    features are smooth over the few timesteps a distilled sampler visits)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(1000.0) / max(half - 1, 1)))
    angle = (t.float() / num_timesteps)[:, None] * freqs[None] * 1000.0
    return torch.cat([angle.sin(), angle.cos()], dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        # zero-initialised output: each block starts as the identity, which keeps a deep MLP trainable
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(nn.functional.silu(self.fc1(self.norm(h))))


class Student(nn.Module):
    """(x_t [B,C,h,w], t [B] int, context [B,K]) -> z0 [B,C,h,w] (scaled latent)."""

    def __init__(
        self, cfg: StudentConfig, latent_shape: tuple[int, int, int], context_size: int, num_timesteps: int
    ) -> None:
        super().__init__()
        self.cfg, self.latent_shape, self.num_timesteps = cfg, tuple(latent_shape), num_timesteps
        self.context_size = context_size
        n = math.prod(latent_shape)
        self.inp = nn.Linear(n + cfg.time_dim + context_size, cfg.hidden)
        self.blocks = nn.ModuleList(ResidualBlock(cfg.hidden) for _ in range(cfg.blocks))
        self.norm = nn.LayerNorm(cfg.hidden)
        self.out = nn.Linear(cfg.hidden, n)

    def features(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        temb = timestep_features(t, self.cfg.time_dim, self.num_timesteps)
        return torch.cat([x.flatten(1), temb, context], dim=1)

    def trunk(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        return self.out(self.norm(h)).view(-1, *self.latent_shape)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.inp(self.features(x, t, context)))


class OneStep(nn.Module):
    """The exported one-step sampler: context [B,K] -> z0 [B,C,h,w], i.e. Student(0, T - 1, context)
    with the constant inputs folded into the first layer's bias (the same function, one Gemm fewer
    inputs for ONNX Runtime)."""

    def __init__(self, student: Student) -> None:
        super().__init__()
        n = math.prod(student.latent_shape)
        td = student.cfg.time_dim
        w, b = student.inp.weight.detach(), student.inp.bias.detach()
        t = torch.tensor([student.num_timesteps - 1])
        temb = timestep_features(t, td, student.num_timesteps)[0]
        self.inp = nn.Linear(w.shape[1] - n - td, w.shape[0])
        with torch.no_grad():
            self.inp.weight.copy_(w[:, n + td :])
            self.inp.bias.copy_(b + w[:, n : n + td] @ temb)
        self.student = student

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.student.trunk(self.inp(context))


def one_step(student: Student, context: torch.Tensor) -> torch.Tensor:
    """Student(x = 0, t = T - 1, context): the one-step sample, as training sees it."""
    b = context.shape[0]
    x = context.new_zeros((b, *student.latent_shape))
    t = torch.full((b,), student.num_timesteps - 1, dtype=torch.long, device=context.device)
    return student(x, t, context)
