"""Which sampler a call runs: the folder's distilled one-step sampler, or DDIM on the denoiser.

A model folder whose `sampler.name` is `one_step` ships a student (training.distill) that computes,
in one network call, what DDIM computes at the folder's default settings (its `steps`, `guidance`,
temperature 0, eta 0). The student replaces exactly that call and nothing else:

- `sampler=None` (the default): the student when the call's settings are the folder's defaults, else
  DDIM (other steps, guidance, a temperature > 0 or eta > 0 are diffusion samples the student never
  learnt);
- `sampler="ddim"`: DDIM at the call's settings, e.g. the teacher itself at the defaults;
- `sampler="one_step"`: the student; an error when the settings are not the ones it replaces.
"""

from __future__ import annotations

from tinyldm_ros.model_folder import ModelInfo
from tinyldm_ros.sampler_settings import SamplerSettings, SamplerSettingsError

SAMPLERS = ("ddim", "one_step")


def choose_sampler(info: ModelInfo, settings: SamplerSettings, requested: str | None = None) -> str:
    """ "one_step" or "ddim" for a call with these (checked) settings; SamplerSettingsError (field
    "sampler") when `requested` is unknown or asks for a student this call cannot use."""
    if requested is not None and requested not in SAMPLERS:
        raise SamplerSettingsError("sampler", f"sampler must be one of {SAMPLERS} or None, got {requested!r}")
    replaces = info.sampler.settings() if info.one_step is not None else None
    if requested == "ddim":
        return "ddim"
    if requested == "one_step":
        if replaces is None:
            raise SamplerSettingsError("sampler", f"model {info.name!r} has no one-step sampler")
        if settings != replaces:
            raise SamplerSettingsError(
                "sampler",
                f"the one-step sampler replaces DDIM at {_describe(replaces)} only; this call asks for "
                f"{_describe(settings)} (use sampler='ddim' or the defaults)",
            )
        return "one_step"
    return "one_step" if replaces is not None and settings == replaces else "ddim"


def _describe(s: SamplerSettings) -> str:
    return f"steps {s.steps}, guidance {s.guidance:g}, temperature {s.temperature:g}, eta {s.eta:g}"
