"""The sampler settings of one synthesis: steps, guidance, temperature, eta, and their one check.

Numpy only (training imports it too). The engine checks every call's settings here; model.json's
`sampler` block and the node's parameters are checked by the same rules, so a value is refused with
the same words wherever it comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyldm_ros.numbers import is_number


class SamplerSettingsError(ValueError):
    """A sampler setting is invalid; `field` names it (steps, guidance, temperature or eta)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SamplerSettings:
    """How the DDIM sampler runs: `steps` denoiser passes, classifier-free `guidance` (1 = off),
    initial-noise `temperature` in [0, 1] and ancestral-noise `eta` in [0, 1] (0 = deterministic)."""

    steps: int
    guidance: float
    temperature: float
    eta: float

    def validate(self, num_train_timesteps: int) -> None:
        """Raise SamplerSettingsError naming the first bad field; steps may not exceed the trained
        timesteps."""
        self.checked(num_train_timesteps)

    def checked(self, num_train_timesteps: int) -> SamplerSettings:
        """These settings as plain int / floats, or SamplerSettingsError naming the first bad field."""
        T = num_train_timesteps
        steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or not 1 <= steps <= T:
            raise SamplerSettingsError(
                "steps", f"steps must be an integer in [1, {T}] (the trained timesteps), got {steps!r}"
            )
        if not is_number(self.guidance):
            raise SamplerSettingsError("guidance", f"guidance must be a number, got {self.guidance!r}")
        if not math.isfinite(self.guidance) or self.guidance < 0:
            raise SamplerSettingsError("guidance", f"guidance must be finite and >= 0, got {self.guidance!r}")
        for name in ("temperature", "eta"):
            value = getattr(self, name)
            if not is_number(value):
                raise SamplerSettingsError(name, f"{name} must be a number, got {value!r}")
            if not 0.0 <= value <= 1.0:  # also refuses NaN
                raise SamplerSettingsError(name, f"{name} must be in [0, 1], got {value!r}")
        return SamplerSettings(int(steps), float(self.guidance), float(self.temperature), float(self.eta))
