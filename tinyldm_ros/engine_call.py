"""What one engine call carries between its stages: a worker group's work, and the timing it reports."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyldm_ros.sampler_settings import SamplerSettings


@dataclass
class Timing:
    """Milliseconds spent in each stage of the last call (wall clock, includes host<->device copies).
    `sampler` is "one_step" when the distilled student ran (one network call, `denoise_ms` its time)."""

    preprocess_ms: float = 0.0
    encode_ms: float = 0.0
    denoise_ms: float = 0.0
    decode_ms: float = 0.0
    postprocess_ms: float = 0.0
    total_ms: float = 0.0
    steps: int = 0
    views: int = 0
    denoiser_calls: int = 0
    sampler: str = "ddim"


@dataclass(frozen=True)
class GroupWork:
    """One worker thread's share of a call: its targets' contexts and noise, and what they share."""

    context: np.ndarray  # (n, K)
    start: np.ndarray  # x_T, (n, C, h, w)
    step_noise: np.ndarray | None  # (steps, n, C, h, w) when eta > 0
    colour: np.ndarray | None  # the input's colour summary for a colour-conditioned decoder
    settings: SamplerSettings
    sampler: str = "ddim"  # "one_step": the folder's distilled sampler instead of the DDIM loop
