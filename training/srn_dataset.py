"""Reader for SRN-layout datasets (real SRN Cars unchanged, and ours from training.render).

    instances = load_split("data/cars", "train", image_size=32)     # list[SRNInstance], in memory
    pairs = sample_pairs(instances, batch_size=128, rng=np.random.default_rng(0))
    pairs.cond_image, pairs.rel_pose, ...                             # numpy, model-ready

Images are cropped/resized by tinyldm_ros.preprocess (the same code as the runtime) and kept as
uint8; `uint8_to_model` turns them into float32 NCHW in [-1, 1].  Every error names the file.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tinyldm_ros.poses import check_rigid, relative_transform
from tinyldm_ros.preprocess import centre_crop_box, intrinsics_after_crop_resize, to_uint8_rgb, uint8_to_model
from training.srn_format import Intrinsics, read_intrinsics, read_pose


@dataclass
class SRNInstance:
    """All views of one object, resized to image_size x image_size."""

    name: str
    path: Path
    images: np.ndarray  # uint8 (V, S, S, 3)
    c2w: np.ndarray  # float64 (V, 4, 4), OpenCV camera-to-world
    intrinsics: Intrinsics  # for the resized images

    @property
    def num_views(self) -> int:
        return len(self.images)


def split_dir(root: Path | str, split: str) -> Path:
    """root/split, or the one root/*_split (the real SRN download names them cars_train, ...)."""
    root = Path(root)
    if (root / split).is_dir():
        return root / split
    matches = sorted(p for p in root.glob(f"*_{split}") if p.is_dir())
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(f"{root}: several directories could be split {split!r}: {[m.name for m in matches]}")
    raise FileNotFoundError(f"{root / split}: split directory not found")


def list_instances(root: Path | str, split: str) -> list[Path]:
    """Sorted instance directories of the split (hidden entries ignored); see split_dir."""
    directory = split_dir(root, split)
    dirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise ValueError(f"{directory}: split has no instances")
    return dirs


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("RGB", "RGBA", "L", "I;16"):
                im = im.convert("RGBA")
            return np.asarray(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image not found") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: cannot read PNG ({e})") from None


def load_instance(path: Path | str, image_size: int) -> SRNInstance:
    """Read one instance directory (rgb/*.png, pose/*.txt, intrinsics.txt)."""
    path = Path(path)
    rgb_files, pose_files = _view_files(path)
    k_path = path / "intrinsics.txt"
    k = read_intrinsics(k_path)
    images = _read_images(rgb_files, image_size, (k, k_path))
    c2w = _read_poses(pose_files)
    f_s, cx_s, cy_s = intrinsics_after_crop_resize(
        k.f, k.cx, k.cy, centre_crop_box(k.height, k.width), image_size
    )
    return SRNInstance(path.name, path, images, c2w, Intrinsics(f_s, cx_s, cy_s, image_size, image_size))


def read_views(
    path: Path | str, image_size: int, max_views: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first `max_views` (default: all) views of an instance directory without its intrinsics:
    images uint8 (V, S, S, 3), centre-cropped and resized as load_instance does them, and c2w float64
    (V, 4, 4). For what needs only images and poses (export's checks on real data): an instance with
    no intrinsics.txt reads too."""
    rgb_files, pose_files = _view_files(Path(path))
    return _read_images(rgb_files[:max_views], image_size), _read_poses(pose_files[:max_views])


def _view_files(path: Path) -> tuple[list[Path], list[Path]]:
    """The sorted rgb/*.png and pose/*.txt of an instance, one pose per image."""
    rgb_dir, pose_dir = path / "rgb", path / "pose"
    for d in (rgb_dir, pose_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: directory not found (not an SRN instance)")
    rgb_files = sorted(rgb_dir.glob("*.png"))
    pose_files = sorted(pose_dir.glob("*.txt"))
    if not rgb_files:
        raise ValueError(f"{rgb_dir}: no PNG images")
    if len(rgb_files) != len(pose_files):
        raise ValueError(f"{path}: {len(rgb_files)} images in rgb/ but {len(pose_files)} poses in pose/")
    for rgb, pose in zip(rgb_files, pose_files, strict=True):
        if rgb.stem != pose.stem:
            raise ValueError(f"{path}: image {rgb.name} has no pose (found {pose.name} in its place)")
    return rgb_files, pose_files


def _read_images(
    rgb_files: list[Path], image_size: int, intrinsics: tuple[Intrinsics, Path] | None = None
) -> np.ndarray:
    """uint8 (V, S, S, 3), centre-cropped; every image must be the size the intrinsics (if given) say."""
    images = np.empty((len(rgb_files), image_size, image_size, 3), dtype=np.uint8)
    for i, f in enumerate(rgb_files):
        img = _read_png(f)
        if intrinsics is not None:
            k, k_path = intrinsics
            if img.shape[:2] != (k.height, k.width):
                raise ValueError(
                    f"{f}: image is {img.shape[1]}x{img.shape[0]} but {k_path} says {k.width}x{k.height} "
                    "(inconsistent intrinsics)"
                )
        if img.shape == (image_size, image_size, 3) and img.dtype == np.uint8:
            images[i] = img
        else:
            images[i] = to_uint8_rgb(img, image_size, centre_crop_box(*img.shape[:2]))
    return images


def _read_poses(pose_files: list[Path]) -> np.ndarray:
    c2w = np.stack([_read_pose_fast(f) for f in pose_files])
    try:
        check_rigid(c2w, name=str(pose_files[0].parent))
    except ValueError:
        for f in pose_files:  # name the offending file
            read_pose(f)
        raise
    return c2w


def _read_pose_fast(path: Path) -> np.ndarray:
    """read_pose without the per-file rigidity check (done once per instance on the stack)."""
    try:
        values = np.array(path.read_bytes().split(), dtype=np.float64)
    except ValueError:
        return read_pose(path)  # raises with a precise message
    if values.size != 16:
        return read_pose(path)
    return values.reshape(4, 4)


def _load_job(args: tuple[Path, int]) -> SRNInstance:
    return load_instance(*args)


def load_split(
    root: Path | str,
    split: str,
    image_size: int,
    max_instances: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[SRNInstance]:
    """All instances of a split in memory (sorted by name).  `workers` processes read in parallel
    (default: all cores); `max_instances` takes the first N."""
    if image_size <= 0:
        raise ValueError(f"image_size must be > 0, got {image_size}")
    paths = list_instances(root, split)[:max_instances]
    workers = min(workers or os.cpu_count() or 1, len(paths))
    jobs = [(p, image_size) for p in paths]
    bar = tqdm(total=len(jobs), desc=f"load {split}", unit="obj", disable=not progress, dynamic_ncols=True)
    out: list[SRNInstance] = []
    if workers <= 1:
        for job in jobs:
            out.append(_load_job(job))
            bar.update()
    else:
        # forkserver, not fork: a forked child of a threaded parent (a ROS executor, DDS, torch)
        # can deadlock on a lock copied mid-use, and it inherits handlers (rclpy catches SIGTERM)
        # that make Pool.terminate wait forever.
        with mp.get_context("forkserver").Pool(workers) as pool:
            for inst in pool.imap(_load_job, jobs, chunksize=8):
                out.append(inst)
                bar.update()
    bar.close()
    return out


@dataclass
class PairBatch:
    """B (conditioning view, target view) pairs, model-ready (float32, images NCHW in [-1, 1])."""

    cond_image: np.ndarray  # (B, 3, S, S)
    cond_pose: np.ndarray  # (B, 4, 4) c2w
    target_image: np.ndarray  # (B, 3, S, S)
    target_pose: np.ndarray  # (B, 4, 4) c2w
    rel_pose: np.ndarray  # (B, 4, 4) inv(cond_pose) @ target_pose
    intrinsics: np.ndarray  # (B, 3, 3)
    instance: np.ndarray  # (B,) int64 index into the instance list
    cond_view: np.ndarray  # (B,) int64
    target_view: np.ndarray  # (B,) int64


def make_pairs(
    instances: list[SRNInstance], instance: np.ndarray, cond_view: np.ndarray, target_view: np.ndarray
) -> PairBatch:
    """The PairBatch for explicit (instance, cond view, target view) indices."""
    cond_img = np.stack([instances[i].images[v] for i, v in zip(instance, cond_view, strict=True)])
    tgt_img = np.stack([instances[i].images[v] for i, v in zip(instance, target_view, strict=True)])
    cond_pose = np.stack([instances[i].c2w[v] for i, v in zip(instance, cond_view, strict=True)])
    tgt_pose = np.stack([instances[i].c2w[v] for i, v in zip(instance, target_view, strict=True)])
    return PairBatch(
        cond_image=uint8_to_model(cond_img),
        cond_pose=cond_pose.astype(np.float32),
        target_image=uint8_to_model(tgt_img),
        target_pose=tgt_pose.astype(np.float32),
        rel_pose=relative_transform(cond_pose, tgt_pose).astype(np.float32),
        intrinsics=np.stack([instances[i].intrinsics.matrix() for i in instance]).astype(np.float32),
        instance=np.asarray(instance, dtype=np.int64),
        cond_view=np.asarray(cond_view, dtype=np.int64),
        target_view=np.asarray(target_view, dtype=np.int64),
    )


def sample_pairs(instances: list[SRNInstance], batch_size: int, rng: np.random.Generator) -> PairBatch:
    """B random pairs: a uniform instance, then two distinct uniform views of it."""
    if not instances:
        raise ValueError("sample_pairs: no instances")
    inst = rng.integers(len(instances), size=batch_size)
    n = np.array([instances[i].num_views for i in inst])
    if np.any(n < 2):
        bad = instances[int(inst[np.argmin(n)])]
        raise ValueError(f"{bad.path}: needs at least 2 views to form a pair, has {bad.num_views}")
    cond = (rng.random(batch_size) * n).astype(np.int64)
    # A uniform view among the other n - 1.
    target = (cond + 1 + (rng.random(batch_size) * (n - 1)).astype(np.int64)) % n
    return make_pairs(instances, inst, cond, target)


class PairDataset:
    """Map-style dataset of view pairs (torch DataLoader-compatible without importing torch):
    item i is a deterministic random pair for (seed, i); `length` items per epoch."""

    def __init__(self, instances: list[SRNInstance], length: int, seed: int = 0) -> None:
        if not instances:
            raise ValueError("PairDataset: no instances")
        self.instances, self.length, self.seed = instances, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not 0 <= i < self.length:
            raise IndexError(i)
        b = sample_pairs(self.instances, 1, np.random.default_rng([self.seed, i]))
        return {k: v[0] for k, v in vars(b).items()}


def all_images(instances: list[SRNInstance]) -> np.ndarray:
    """Every view of every instance, uint8 (N, S, S, 3) (e.g. for VAE training)."""
    return np.concatenate([inst.images for inst in instances])
