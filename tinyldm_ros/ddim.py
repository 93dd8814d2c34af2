"""The DDIM scheduler of the runtime: which timesteps a call visits, each step's coefficients, and the
noise it draws. The pipeline that runs the denoiser lives in tinyldm_ros.engine (diffusers' split of
scheduler and pipeline).

Noise is defined here so that any other implementation can reproduce it exactly: the generator is
`numpy.random.default_rng(seed)`; it first draws the initial latent with
`standard_normal((N, C, h, w), dtype=float32)`, which times the temperature (float32) is `x_T`, then
(only when eta > 0) one array of that shape per DDIM step, in step order.
"""

from __future__ import annotations

import numpy as np

from tinyldm_ros import schedule as S

# One DDIM step is x_prev = c_x * x_t + c_eps * eps + c_noise * noise; a plan holds one row per step.
Coefficients = tuple[np.float32, np.float32, np.float32]


class DdimScheduler:
    """A noise schedule with its timestep spacing; plans are computed once per (steps, eta)."""

    def __init__(self, schedule: S.NoiseSchedule, spacing: str = "trailing") -> None:
        self.schedule = schedule
        self.spacing = spacing
        self._plans: dict[tuple[int, float], tuple[np.ndarray, list[Coefficients]]] = {}

    def plan(self, steps: int, eta: float = 0.0) -> tuple[np.ndarray, list[Coefficients]]:
        """Timesteps (descending int64) and per-step float32 coefficients (c_x, c_eps, c_noise).

        The coefficients are read off tinyldm_ros.schedule.ddim_step itself (the step is linear in x_t,
        eps and noise), so the runtime and the torch sampler share one implementation of the maths.
        """
        key = (steps, float(eta))
        plan = self._plans.get(key)
        if plan is None:
            ts = self.schedule.timesteps(steps, self.spacing)
            coefs = np.empty((len(ts), 3), np.float64)
            for i, (t, prev) in enumerate(zip(ts, S.previous_timesteps(ts), strict=True)):
                a, ap = self.schedule.alpha_bar(int(t)), self.schedule.alpha_bar(int(prev))
                coefs[i] = (
                    S.ddim_step(1.0, 0.0, a, ap, eta, 0.0),
                    S.ddim_step(0.0, 1.0, a, ap, eta, 0.0),
                    S.ddim_step(0.0, 0.0, a, ap, eta, 1.0),
                )
            plan = self._plans[key] = (ts, [tuple(np.float32(c) for c in row) for row in coefs])
        return plan


def draw_noise(
    latent_shape: tuple[int, ...] | list[int], n: int, steps: int, seed: int, eta: float, temperature: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """(x_T, step_noise) by the rule in the module docstring; step_noise is None when eta == 0.
    The caller has checked the arguments (tinyldm_ros.sampler_settings, a seed >= 0)."""
    rng = np.random.default_rng(int(seed))
    shape = (n, *latent_shape)
    x_T = rng.standard_normal(shape, dtype=np.float32)
    if temperature != 1.0:
        x_T *= np.float32(temperature)
    step_noise = rng.standard_normal((steps, *shape), dtype=np.float32) if eta > 0 else None
    return x_T, step_noise
