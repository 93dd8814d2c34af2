"""Verification of an export: each ONNX graph against its PyTorch module, and the runtime engine
against the torch pipeline (training.pipeline).

Each graph is run on random inputs (batch 1 and a larger batch, so the dynamic batch axis is
exercised) and, when given, on real images, poses and latents; the largest absolute difference is
recorded and the export fails above the tolerance. The whole pipeline (encode, DDIM, decode) is then
run by the runtime engine and compared with the torch pipeline on identical noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tinyldm_ros import schedule as S
from tinyldm_ros.model_folder import ModelInfo
from tinyldm_ros.preprocess import postprocess
from training.pipeline import Models, novel_views
from training.sampler import make_scheduler

TOLERANCE = 1e-4
PIPELINE_TOLERANCE = 1e-3  # whole DDIM loop: float32 rounding compounds over the steps


class ExportError(RuntimeError):
    """Export or verification failed (the message names the graph and the difference)."""


def module_outputs(module: nn.Module, args: tuple) -> tuple[torch.Tensor, ...]:
    """The module's outputs as a tuple, one per ONNX graph output (a graph may have one or several)."""
    outs = module(*args)
    return outs if isinstance(outs, tuple) else (outs,)


def _ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _compare(name: str, torch_out: torch.Tensor, ort_out: np.ndarray, tol: float, diffs: dict) -> None:
    ref = torch_out.detach().cpu().numpy()
    if ref.shape != ort_out.shape:
        raise ExportError(f"{name}: ONNX output shape {ort_out.shape} != PyTorch {ref.shape}")
    d = float(np.max(np.abs(ref - ort_out))) if ref.size else 0.0
    diffs[name] = d
    if not d <= tol:  # also catches NaN
        raise ExportError(f"{name}: max abs difference ONNX vs PyTorch {d:.3g} > tolerance {tol:g}")


def random_rigid(n: int, gen: torch.Generator, radius: float = 1.3) -> np.ndarray:
    """n random rigid transforms (rotation via QR, translation of length ~radius), float32."""
    A = torch.randn(n, 3, 3, generator=gen, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))[:, None, :]
    Q[torch.det(Q) < 0, :, 0] *= -1
    T = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    T[:, :3, :3] = Q
    T[:, :3, 3] = torch.randn(n, 3, generator=gen, dtype=torch.float64) * radius
    return T.numpy().astype(np.float32)


def random_inputs(info: ModelInfo, batch: int, gen: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
    C, h, w = info.latent_shape
    S_ = info.image_size
    T = info.num_train_timesteps
    poses = torch.from_numpy(random_rigid(batch, gen)).reshape(batch, 16)
    return {
        "encoder": {"image": torch.rand(batch, 3, S_, S_, generator=gen) * 2 - 1},
        "denoiser": {
            "latent": torch.randn(batch, C, h, w, generator=gen),
            "timestep": torch.randint(0, T, (batch,), generator=gen, dtype=torch.int64),
            "context": torch.cat([torch.randn(batch, info.latent_size, generator=gen), poses], dim=1),
        },
        "decoder": {
            "latent": torch.randn(batch, C, h, w, generator=gen) / info.latent_scale,
            **_colour_input(info, batch, gen),
        },
    }


def _colour_input(info: ModelInfo, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A colour-conditioned decoder's second input: plausible summaries (means in [-1, 1], stds in [0, 1])."""
    if not info.colour_values:
        return {}
    half = info.colour_values // 2
    mean = torch.rand(batch, half, generator=gen) * 2 - 1
    std = torch.rand(batch, info.colour_values - half, generator=gen)
    return {"colour": torch.cat([mean, std], dim=1)}


@torch.no_grad()
def _inputs_real(
    info: ModelInfo, vae: nn.Module, images: np.ndarray, poses: np.ndarray | None, gen: torch.Generator
) -> dict[str, dict[str, torch.Tensor]]:
    """Real images; the denoiser sees noisy real latents with contexts built from real latents/poses."""
    x = torch.from_numpy(images)
    B = x.shape[0]
    mean = vae.encode(x)[0]
    z = mean * info.latent_scale
    if poses is not None:
        rel = np.linalg.inv(poses[0].astype(np.float64)) @ poses.astype(np.float64)
    else:
        rel = random_rigid(B, gen).astype(np.float64)
    rel_t = torch.from_numpy(rel.astype(np.float32)).reshape(B, 16)
    T = info.num_train_timesteps
    t = torch.linspace(0, T - 1, B).round().to(torch.int64)
    sched = S.NoiseSchedule(S.ScheduleConfig.from_dict(info.schedule))
    acp = torch.from_numpy(sched.alphas_cumprod[t.numpy()]).float().reshape(B, 1, 1, 1)
    noisy = S.add_noise(z, torch.randn(z.shape, generator=gen), acp)
    ctx = torch.cat([z[:1].reshape(1, -1).expand(B, -1), rel_t], dim=1)
    return {
        "encoder": {"image": x},
        "denoiser": {"latent": noisy, "timestep": t, "context": ctx},
        "decoder": {"latent": mean, **({"colour": vae.colour(x)} if info.colour_values else {})},
    }


def verification_inputs(
    info: ModelInfo,
    vae: nn.Module,
    real_images: np.ndarray | None,
    real_poses: np.ndarray | None,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """Input sets per graph: random at batch 1 and 5 (the dynamic axis), and real data if given."""
    gen = torch.Generator().manual_seed(seed)
    sets = {"random_b1": random_inputs(info, 1, gen), "random_b5": random_inputs(info, 5, gen)}
    if real_images is not None and len(real_images):
        sets["real"] = _inputs_real(info, vae, real_images, real_poses, gen)
    return sets


@torch.no_grad()
def verify_graph(
    path: Path, role: str, module: nn.Module, sets: dict[str, dict[str, dict[str, torch.Tensor]]], tol: float
) -> dict[str, float]:
    """Max abs difference of one ONNX graph vs its PyTorch module on every input set (fails above tol)."""
    sess = _ort_session(path)
    diffs: dict[str, float] = {}
    for set_name, inputs in sets.items():
        feeds = inputs[role]
        ort_outs = sess.run(None, {k: v.numpy() for k, v in feeds.items()})
        torch_outs = module_outputs(module, tuple(feeds.values()))
        names = [o.name for o in sess.get_outputs()]
        for name, ref, got in zip(names, torch_outs, ort_outs, strict=True):
            suffix = "" if len(names) == 1 else f"/{name}"
            _compare(f"{role}/{set_name}{suffix}", ref, got, tol, diffs)
    return diffs


@torch.no_grad()
def verify_pipeline(
    folder: Path, vae: nn.Module, unet: nn.Module, info: ModelInfo, tol: float, images: np.ndarray | None
) -> dict[str, float]:
    """The runtime engine vs the torch pipeline (training.pipeline) on the same image, poses and noise."""
    from tinyldm_ros.engine import Engine

    engine = Engine(folder, provider="cpu", warmup=False)
    gen = torch.Generator().manual_seed(1)
    if images is not None and len(images):
        image01 = (images[0].transpose(1, 2, 0) + 1) / 2
    else:
        image01 = torch.rand(info.image_size, info.image_size, 3, generator=gen).numpy()
    image = np.round(image01 * 255).astype(np.uint8)
    poses = random_rigid(3, gen)
    steps, guidance = info.sampler.steps, info.sampler.guidance
    # temperature 1 whatever the model's default: random starting noise exercises the denoiser more
    x_T, _ = engine.draw_noise(len(poses), steps, seed=0, temperature=1.0)
    cond = engine.prepare(image)
    models = Models(vae, unet, info.latent_scale, S.ScheduleConfig.from_dict(info.schedule))
    # the engine samples with DDIM, and its denoise() at eta 0
    scheduler = make_scheduler("ddim", models.schedule, info.sampler.spacing)
    x_cond = torch.from_numpy(cond).expand(len(poses), -1, -1, -1)
    identity = np.broadcast_to(np.eye(4), poses.shape)  # the poses are relative to the input camera
    diffs: dict[str, float] = {}
    for g in sorted({guidance, 1.0, 2.0}):
        ref = novel_views(models, x_cond, identity, poses, scheduler, steps, g, torch.from_numpy(x_T))
        z_e, colour_e = engine.encode_with_colour(cond)
        got = engine.decode(engine.denoise(engine.make_context(z_e, poses), x_T, steps, g), colour_e)
        _compare(f"pipeline/ddim{steps}_guidance{g:g}", ref, got, tol, diffs)
        views = engine.synthesize(image, poses, steps=steps, seed=0, guidance=g, temperature=1.0)
        if not np.array_equal(views, postprocess(got)):
            raise ExportError("engine.synthesize() differs from its own pieces (encode, denoise, decode)")
    return diffs
