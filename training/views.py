"""The training views held in memory and the deterministic batch order the trainers draw from.

At 32 px a whole split is a few hundred MB of uint8 at most, so batches are gathered from one array
(no per-step PNG decoding, no DataLoader workers). Batch contents are a pure function of
(seed, step, rank), which is what makes `--resume` reproduce an uninterrupted run exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.srn_dataset import load_split


class DataError(ValueError):
    """The dataset on disk cannot be used (missing split, no instances, wrong image size)."""


@dataclass
class ViewSet:
    """All views of a split, flattened: view i belongs to instance `instance_of[i]`."""

    names: list[str]
    images: torch.Tensor  # uint8 [N, S, S, 3]
    c2w: np.ndarray  # float64 [N, 4, 4]
    offsets: np.ndarray  # int64 [I + 1]: views of instance k are offsets[k]:offsets[k+1]

    @property
    def num_views(self) -> int:
        return int(self.offsets[-1])

    @property
    def instance_of(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.names)), np.diff(self.offsets))


def load_views(
    root: str | Path, split: str, image_size: int, max_instances: int | None = None, progress: bool = True
) -> ViewSet:
    """Load a split with the SRN reader into one array; DataError names the path when unusable."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DataError(
            f"dataset split {split_dir} does not exist (render one with `python -m training.render`)"
        )
    try:
        instances = load_split(root, split, image_size, max_instances=max_instances, progress=progress)
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"cannot read {split_dir}: {e}") from None
    if not instances:
        raise DataError(
            f"dataset split {split_dir} holds no instances (expected <instance>/rgb/*.png and pose/*.txt)"
        )
    for inst in instances:
        if inst.images.shape[1:] != (image_size, image_size, 3):
            raise DataError(
                f"{split_dir / inst.name}: images are {inst.images.shape[1:]}, "
                f"expected ({image_size}, {image_size}, 3)"
            )
    counts = [len(inst.images) for inst in instances]
    return ViewSet(
        names=[inst.name for inst in instances],
        images=torch.from_numpy(np.concatenate([inst.images for inst in instances])),
        c2w=np.concatenate([np.asarray(inst.c2w, dtype=np.float64) for inst in instances]),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,S,S,3] -> float32 [B,3,S,S] in [-1, 1] (the design's image convention)."""
    return images_uint8.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def mix_seed(*parts: int) -> int:
    """One 63-bit seed from several integers (splitmix-style), so per-step streams never collide."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The CPU generator for everything random in one rank's training step (noise, timesteps, dropout)."""
    return torch.Generator().manual_seed(mix_seed(seed, step, rank))


class EpochOrder:
    """Batch b of rank r = the next slice of an endless stream of per-epoch permutations of [0, n).

    Global batch `step` covers stream positions [step*B, (step+1)*B); rank r takes its contiguous
    part of that. Every item is seen once per epoch whatever the world size.
    """

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1):
        if global_batch % world_size:
            raise ValueError(f"batch_size {global_batch} is not divisible by the {world_size} DDP ranks")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.local_batch = global_batch // world_size
        self.rank = rank
        self._cache: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache))
            g = torch.Generator().manual_seed(mix_seed(self.seed, epoch, 0x5EED))
            self._cache[epoch] = torch.randperm(self.n, generator=g)
        return self._cache[epoch]

    def batch(self, step: int) -> torch.Tensor:
        start = step * self.global_batch + self.rank * self.local_batch
        pos = torch.arange(start, start + self.local_batch)
        epochs = pos // self.n
        out = torch.empty(self.local_batch, dtype=torch.int64)
        for e in epochs.unique().tolist():
            m = epochs == e
            out[m] = self._perm(e)[pos[m] - e * self.n]
        return out


def pair_targets(
    cond: torch.Tensor, offsets: np.ndarray, instance_of: np.ndarray, g: torch.Generator, distinct: bool
) -> torch.Tensor:
    """For each conditioning view, a random view of the same instance (another one when `distinct`)."""
    inst = torch.from_numpy(instance_of)[cond]
    start = torch.from_numpy(offsets)[inst]
    count = torch.from_numpy(np.diff(offsets))[inst]
    u = torch.rand(len(cond), generator=g, dtype=torch.float64)
    if not distinct:
        return start + (u * count).long().clamp_max(count - 1)
    others = (count - 1).clamp_min(1)
    shift = 1 + (u * others).long().clamp_max(others - 1)
    local = (cond - start + shift) % count
    return start + local
