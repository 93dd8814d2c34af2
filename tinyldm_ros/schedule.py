"""DDPM noise schedule and the DDPM / DDIM update maths, shared by training and the runtime.

Numpy only (the runtime imports this; never torch). The update functions use nothing but arithmetic
operators and `** 0.5`, so they run unchanged on numpy arrays *and* torch tensors: the torch samplers in
`training/sampler.py` call these very functions, so training and runtime cannot disagree.

Notation (DDPM): alpha_bar_t = prod_{s<=t} (1 - beta_s);
x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.
Timesteps are integers in [0, T). The step before t = 0 is "t = -1", where alpha_bar = 1 (clean data).
Pass alpha_bar values as Python floats (or arrays broadcastable to the sample for per-sample steps) so
that float32 samples stay float32.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import numpy as np

from tinyldm_ros.numbers import checked_number

Array = TypeVar("Array")  # numpy.ndarray or torch.Tensor: the maths below is written for both

BETA_SCHEDULES = ("linear", "scaled_linear", "cosine")
TIMESTEP_SPACINGS = ("trailing", "leading")


@dataclass
class ScheduleConfig:
    """The training noise schedule; serialised into model.json as `to_dict()`.

    Default = LDM's schedule: 1000 steps, betas "scaled linear" from 0.00085 to 0.012 (LDM's configs
    call it `linear` but square a linspace of square roots; diffusers calls it `scaled_linear`).
    """

    num_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    cosine_s: float = 0.008  # offset of the cosine schedule (Nichol & Dhariwal); unused otherwise

    def __post_init__(self) -> None:
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
        checked_number("num_timesteps", self.num_timesteps, 1, 100_000, integer=True)
        checked_number("beta_start", self.beta_start)
        checked_number("beta_end", self.beta_end)
        checked_number("cosine_s", self.cosine_s)
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScheduleConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown schedule keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**d)


def make_betas(cfg: ScheduleConfig) -> np.ndarray:
    """betas [T], float64."""
    T = cfg.num_timesteps
    if cfg.beta_schedule == "linear":
        return np.linspace(cfg.beta_start, cfg.beta_end, T, dtype=np.float64)
    if cfg.beta_schedule == "scaled_linear":
        return np.linspace(cfg.beta_start**0.5, cfg.beta_end**0.5, T, dtype=np.float64) ** 2
    # cosine (improved DDPM): alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2), betas clipped at 0.999
    steps = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((steps + cfg.cosine_s) / (1 + cfg.cosine_s) * math.pi / 2) ** 2
    return np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)


def alphas_cumprod(betas: np.ndarray) -> np.ndarray:
    """alpha_bar [T] = cumprod(1 - betas), float64, strictly decreasing for betas in (0, 1)."""
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


def alpha_bar_at(acp: np.ndarray, t: int) -> float:
    """alpha_bar_t as a Python float, with alpha_bar_{-1} = 1 (the step after the last one is clean data)."""
    return 1.0 if t < 0 else float(acp[t])


def ddim_timesteps(num_train_steps: int, steps: int, spacing: str = "trailing") -> np.ndarray:
    """The `steps` timesteps a sampler visits, descending, int64.

    "trailing" (default; Lin et al. 2024, "Common diffusion noise schedules and sample steps are
    flawed"): T-1, ..., ending near T/steps - 1. It always starts at T-1, the step the model was trained
    to denoise from (almost) pure noise, which matters most with very few steps (DDIM-5 "leading"
    would start at t = 800, where x_T ~ N(0, I) is not what the model expects). With steps = T both
    give T-1, ..., 0. "leading" (DDIM paper / LDM): 0, k, 2k, ... reversed, with k = T // steps.
    """
    if not 1 <= steps <= num_train_steps:
        raise ValueError(f"steps must be in [1, {num_train_steps}], got {steps}")
    if spacing == "trailing":
        ts = np.round(np.arange(num_train_steps, 0, -num_train_steps / steps)) - 1
    elif spacing == "leading":
        ts = (np.arange(steps) * (num_train_steps // steps))[::-1]
    else:
        raise ValueError(f"spacing must be one of {TIMESTEP_SPACINGS}, got {spacing!r}")
    return ts.astype(np.int64)


def previous_timesteps(timesteps: np.ndarray) -> np.ndarray:
    """For a descending timestep sequence, the step each update lands on (-1 after the last)."""
    return np.append(np.asarray(timesteps, dtype=np.int64)[1:], -1)


# --- update maths: work on numpy arrays and torch tensors alike ------------------------------------


def add_noise(x0: Array, noise: Array, acp_t: float | Array) -> Array:
    """Sample q(x_t | x_0) = N(sqrt(acp_t) x0, (1 - acp_t) I)."""
    return acp_t**0.5 * x0 + (1.0 - acp_t) ** 0.5 * noise


def predict_x0(x_t: Array, eps: Array, acp_t: float | Array) -> Array:
    """x_0 implied by an epsilon prediction (no clipping: latents are unbounded)."""
    return (x_t - (1.0 - acp_t) ** 0.5 * eps) / acp_t**0.5


def predict_eps(x_t: Array, x0: Array, acp_t: float | Array) -> Array:
    """epsilon implied by an x_0 estimate (inverse of predict_x0)."""
    return (x_t - acp_t**0.5 * x0) / (1.0 - acp_t) ** 0.5


def posterior_mean_variance(x0: Array, x_t: Array, acp_t: float, acp_prev: float) -> tuple[Array, float]:
    """q(x_prev | x_t, x_0) for a (possibly strided) step t -> prev: (mean, variance).

    With beta = 1 - acp_t / acp_prev (= beta_t for consecutive steps):
    mean = sqrt(acp_prev) beta / (1 - acp_t) x0 + sqrt(1 - beta) (1 - acp_prev) / (1 - acp_t) x_t,
    variance = beta (1 - acp_prev) / (1 - acp_t) (DDPM's "fixed small" choice; 0 when prev = -1).
    """
    beta = 1.0 - acp_t / acp_prev
    c0 = acp_prev**0.5 * beta / (1.0 - acp_t)
    ct = (1.0 - beta) ** 0.5 * (1.0 - acp_prev) / (1.0 - acp_t)
    return c0 * x0 + ct * x_t, beta * (1.0 - acp_prev) / (1.0 - acp_t)


def ddpm_step(x_t: Array, eps: Array, acp_t: float, acp_prev: float, noise: Array | None = None) -> Array:
    """Ancestral DDPM step: x_prev ~ q(x_prev | x_t, x0_hat(eps)). noise=None returns the mean."""
    mean, var = posterior_mean_variance(predict_x0(x_t, eps, acp_t), x_t, acp_t, acp_prev)
    if noise is None or var <= 0.0:
        return mean
    return mean + var**0.5 * noise


def ddim_sigma(acp_t: float, acp_prev: float, eta: float) -> float:
    """DDIM's sigma_t(eta); eta = 1 gives the DDPM posterior standard deviation."""
    return eta * ((1.0 - acp_prev) / (1.0 - acp_t) * (1.0 - acp_t / acp_prev)) ** 0.5


def ddim_step(
    x_t: Array, eps: Array, acp_t: float, acp_prev: float, eta: float = 0.0, noise: Array | None = None
) -> Array:
    """DDIM step (Song et al. eq. 12): eta = 0 is deterministic; noise is used only when eta > 0."""
    x0 = predict_x0(x_t, eps, acp_t)
    sigma = ddim_sigma(acp_t, acp_prev, eta)
    x_prev = acp_prev**0.5 * x0 + max(1.0 - acp_prev - sigma**2, 0.0) ** 0.5 * eps
    if noise is None or sigma == 0.0:
        return x_prev
    return x_prev + sigma * noise


def classifier_free_guidance(eps_uncond: Array, eps_cond: Array, guidance: float) -> Array:
    """guided = uncond + g * (cond - uncond); g = 1 is the plain conditional prediction."""
    return eps_uncond + guidance * (eps_cond - eps_uncond)


class NoiseSchedule:
    """A ScheduleConfig with its arrays computed once: betas and alphas_cumprod (float64)."""

    def __init__(self, cfg: ScheduleConfig | None = None):
        self.cfg = cfg or ScheduleConfig()
        self.betas = make_betas(self.cfg)
        self.alphas_cumprod = alphas_cumprod(self.betas)

    @property
    def num_timesteps(self) -> int:
        return self.cfg.num_timesteps

    def alpha_bar(self, t: int) -> float:
        return alpha_bar_at(self.alphas_cumprod, t)

    def timesteps(self, steps: int, spacing: str = "trailing") -> np.ndarray:
        return ddim_timesteps(self.num_timesteps, steps, spacing)
