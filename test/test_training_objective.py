"""The UNet stage's training example, read back from what its loss function feeds the denoiser.

Checks the contract end to end on synthetic latents: the context is concat(z_cond, inv(c2w_cond) @
c2w_target) with z = mean * latent_scale, the target is another view of the same object, x_t is
q(x_t | z_target) at the sampled timestep, the loss regresses exactly the noise that made x_t, and
classifier-free-guidance dropout replaces the *whole* context by the runtime's all-zero null context.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from tinyldm_ros import schedule as S
from tinyldm_ros.poses import look_at, relative_transform
from training import encode_latents, train_unet
from training.config import apply_overrides, load_config
from training.distributed import setup
from training.views import step_generator

LATENT_SCALE = 2.5
OBJECTS, VIEWS = 3, 5


class Recorder(nn.Module):
    """Stands in for the UNet: remembers its inputs and predicts zero noise."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.x_t, self.t, self.context = x_t, t, context
        return torch.zeros_like(x_t)


def make_latents(tmp_path: Path) -> tuple[encode_latents.Latents, torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    n = OBJECTS * VIEWS
    means = torch.from_numpy(rng.standard_normal((n, 1, 4, 4)).astype(np.float32))
    az = rng.uniform(0, 2 * np.pi, n)  # distinct cameras, so a relative pose names its target view
    eyes = np.stack([1.3 * np.cos(az), 1.3 * np.sin(az), rng.uniform(0.2, 0.8, n)], 1)
    c2w = np.stack([look_at(e, np.zeros(3)) for e in eyes])
    offsets = np.arange(0, n + 1, VIEWS, dtype=np.int64)
    path = tmp_path / "latents.safetensors"
    tensors = {
        "train.mean": means,
        "train.c2w": torch.from_numpy(c2w),
        "train.offsets": torch.from_numpy(offsets),
    }
    meta = {
        "format": encode_latents.FORMAT,
        "latent_scale": repr(LATENT_SCALE),
        "splits": '["train"]',
        "names": "{}",
    }
    save_file(tensors, str(path), metadata=meta)
    return encode_latents.Latents(path), means * LATENT_SCALE, c2w


def build(tmp_path: Path, cond_dropout: float):
    cfg = apply_overrides(
        load_config("tiny"), [f"unet_train.cond_dropout={cond_dropout}", "unet_train.batch_size=24"]
    )
    latents, z, c2w = make_latents(tmp_path)
    stage = train_unet.build_stage(cfg, latents, setup(False, "cpu"), vae=None)
    return cfg, stage, z, c2w


def run_step(cfg, stage, step: int) -> tuple[Recorder, torch.Tensor]:
    rec = Recorder()
    loss, _ = stage.loss_fn(rec, step, step_generator(cfg.unet_train.seed, step, 0))
    return rec, loss


def test_context_target_noise_and_loss_follow_the_contract(tmp_path: Path):
    cfg, stage, z, c2w = build(tmp_path, cond_dropout=0.0)
    acp = S.NoiseSchedule(cfg.diffusion).alphas_cumprod
    flat = z.flatten(1)
    for step in range(3):
        rec, loss = run_step(cfg, stage, step)
        noise = []
        for x_t, t, ctx in zip(rec.x_t, rec.t.tolist(), rec.context, strict=True):
            assert 0 <= t < cfg.diffusion.num_timesteps
            (cond,) = torch.nonzero((flat == ctx[:16]).all(1)).flatten().tolist()  # scaled cond latent
            obj = cond // VIEWS
            rel = relative_transform(c2w[cond], c2w[obj * VIEWS : (obj + 1) * VIEWS])
            err = np.abs(rel.reshape(VIEWS, 16) - ctx[16:].double().numpy()).max(1)
            assert err.min() < 1e-6 and np.sort(err)[1] > 1e-3  # exactly one view of the object matches
            target = obj * VIEWS + int(err.argmin())
            assert target != cond  # distinct_views
            # x_t = sqrt(acp) z_target + sqrt(1 - acp) eps: the eps it implies is what the loss regresses
            noise.append((x_t.double() - acp[t] ** 0.5 * z[target].double()) / (1 - acp[t]) ** 0.5)
        # the recorder predicts 0, so an L1 loss on the true noise is mean |eps|
        expected = torch.stack(noise).abs().mean()
        assert abs(float(loss) - float(expected)) < 1e-5
        assert 0.5 < float(expected) < 1.1  # and that eps is standard normal, not something else


def test_cond_dropout_zeroes_the_whole_context(tmp_path: Path):
    cfg, stage, z, _ = build(tmp_path, cond_dropout=0.5)
    flat = z.flatten(1)
    dropped = kept = 0
    for step in range(8):
        rec, _ = run_step(cfg, stage, step)
        for ctx in rec.context:
            if not ctx.any():
                dropped += 1
            else:
                assert (flat == ctx[:16]).all(1).any() and ctx[16:].abs().max() > 0  # a full context
                kept += 1
    assert dropped + kept == 8 * 24 and 0.3 < dropped / (dropped + kept) < 0.7
