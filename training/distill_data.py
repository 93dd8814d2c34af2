"""The distillation data: (context, teacher trajectory) pairs, made by running a shipped model folder
through ONNX Runtime (the teacher is exactly what the robot runs, no torch weights needed).

For each pair (an object, a conditioning view, a distinct target view, as in UNet training) the
teacher's encoder gives the conditioning latent and colour summary, and the teacher's DDIM sampler at
the folder's default settings (temperature 0, so x_T = 0 and the run is deterministic) gives every
state x_T, ..., x_0 of its trajectory: regression needs the last, progressive distillation the
intermediate ones. Cached as `<out>/pairs_<split>.npz`, so `--resume` does not recompute them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinyldm_ros.engine import Engine
from tinyldm_ros.poses import relative_transform
from tinyldm_ros.preprocess import uint8_to_model
from training.errors import UserError
from training.srn_dataset import load_split


@dataclass
class Pairs:
    context: np.ndarray  # (N, K) float32: concat(z_cond, rel_pose)
    trajectory: np.ndarray  # (steps + 1, N, C, h, w): x_T (zeros), then the state after each step
    timesteps: np.ndarray  # (steps,) int64: the timestep each step starts from
    colour: np.ndarray  # (N, colour_values) the conditioning image's colour summary (may be (N, 0))
    target: np.ndarray  # (N, S, S, 3) uint8: the true target view ((0, S, S, 3) unless asked for)

    @property
    def teacher(self) -> np.ndarray:
        """The teacher's samples z0, (N, C, h, w)."""
        return self.trajectory[-1]

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **vars(self))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Pairs:
        with np.load(path) as f:
            return cls(**{k: f[k] for k in f.files})


def teacher_engine(model: str | Path) -> Engine:
    engine = Engine(model, provider="cpu", workers=1, warmup=False)
    s = engine.info.sampler
    if s.temperature != 0.0 or s.eta != 0.0:
        raise UserError(
            f"{model}: the teacher's default sampler must be deterministic (temperature 0, eta 0) to be "
            f"distilled into one step; it has temperature {s.temperature}, eta {s.eta}"
        )
    return engine


def teacher_trajectory(
    engine: Engine, context: np.ndarray, batch: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's DDIM states from x_T = 0 at its default steps and guidance: (steps + 1, N, C, h, w),
    and the timesteps. The same update as Engine.denoise (a test holds the final state to it)."""
    s = engine.info.sampler
    timesteps, coefs = engine.ddim_plan(s.steps, 0.0)
    n = len(context)
    out = np.zeros((len(timesteps) + 1, n, *engine.info.latent_shape), np.float32)
    g = np.float32(s.guidance)
    for lo in range(0, n, batch):
        ctx = context[lo : lo + batch]
        b = len(ctx)
        cfg = s.guidance != 1.0
        feed_ctx = np.concatenate([ctx, np.zeros_like(ctx)]) if cfg else ctx
        session = engine.session("denoiser", len(feed_ctx))
        x = out[0, lo : lo + b].copy()
        for i, t in enumerate(timesteps):
            latent = np.concatenate([x, x]) if cfg else x
            eps = session.run(
                None, {"latent": latent, "timestep": np.full(len(latent), t, np.int64), "context": feed_ctx}
            )[0]
            if cfg:
                eps = eps[b:] + g * (eps[:b] - eps[b:])
            c_x, c_eps, _ = coefs[i]
            x = c_x * x + c_eps * eps
            out[i + 1, lo : lo + b] = x
    return out, np.asarray(timesteps, np.int64)


def encode_all(engine: Engine, images: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Scaled latents (N, C, h, w) and colour summaries (N, colour_values) of uint8 images (N, S, S, 3)."""
    z, colour = [], []
    for lo in range(0, len(images), batch):
        zi, ci = engine.encode_with_colour(uint8_to_model(images[lo : lo + batch]))
        z.append(zi)
        colour.append(ci if ci is not None else np.zeros((len(zi), 0), np.float32))
    return np.concatenate(z), np.concatenate(colour)


def make_pairs(
    engine: Engine,
    data: str | Path,
    split: str,
    count: int,
    seed: int,
    max_instances: int | None = None,
    progress: bool = True,
    targets: bool = False,
) -> Pairs:
    """`count` random (object, conditioning view, other view) pairs of a split with the teacher's
    trajectories (and the true target views with `targets`); deterministic for a seed."""
    instances = load_split(data, split, engine.info.image_size, max_instances, progress=progress)
    views = np.array([inst.num_views for inst in instances])
    if np.any(views < 2):
        raise UserError(f"{data}/{split}: every object needs 2+ views to make pairs")
    starts = np.concatenate([[0], np.cumsum(views)[:-1]])
    images = np.concatenate([inst.images for inst in instances])
    c2w = np.concatenate([inst.c2w for inst in instances])
    rng = np.random.default_rng(seed)
    obj = rng.integers(len(instances), size=count)
    n = views[obj]
    cond = (rng.random(count) * n).astype(np.int64)
    target = (cond + 1 + (rng.random(count) * (n - 1)).astype(np.int64)) % n
    cond_i, target_i = starts[obj] + cond, starts[obj] + target
    # encode only the views that condition a pair (all of them for big counts)
    used, inverse = np.unique(cond_i, return_inverse=True)
    bar = tqdm(total=2, desc=f"teacher {split}", unit="stage", disable=not progress, dynamic_ncols=True)
    z, colour = encode_all(engine, images[used])
    bar.update()
    rel = relative_transform(c2w[cond_i], c2w[target_i]).reshape(count, 16).astype(np.float32)
    context = np.concatenate([z[inverse].reshape(count, -1), rel], axis=1).astype(np.float32)
    trajectory, timesteps = teacher_trajectory(engine, context)
    bar.update()
    bar.close()
    truth = images[target_i] if targets else np.zeros((0, *images.shape[1:]), np.uint8)
    return Pairs(context, trajectory, timesteps, colour[inverse], truth)


def cached_pairs(
    engine: Engine, out: Path, data: str | Path, split: str, count: int, seed: int, **kw
) -> Pairs:
    """make_pairs, read back from `<out>/pairs_<split>.npz` when a previous sitting made it."""
    path = out / f"pairs_{split}.npz"
    if path.is_file():
        pairs = Pairs.load(path)
        if len(pairs.context) == count:
            return pairs
    pairs = make_pairs(engine, data, split, count, seed, **kw)
    out.mkdir(parents=True, exist_ok=True)
    pairs.save(path)
    return pairs
