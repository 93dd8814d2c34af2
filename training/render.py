"""Render a multi-view object set in the SRN layout with pybullet's TinyRenderer (CPU).

    python -m training.render --set cars --out data/cars --train 2000 --val 100 --test 100 \\
        --views 50 --test-views 251 --size 32 --seed 0 --preview

Each object gets its own random stream derived from (seed, set, split, index), so the files are
byte-identical for a seed whatever the number of workers.  Train/val objects get `--views` random
cameras on the upper hemisphere; test objects `--test-views` cameras on an Archimedean spiral.
Views are rendered at --render-size (128, the SRN Cars size) and area-downsampled to --size, with
intrinsics written for the stored size (SRN Cars field of view: f = 131.25 at 128 px).
Everything is written to a temporary sibling directory that replaces --out only when complete.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tinyldm_ros.preprocess import to_uint8_rgb
from training.cameras import SRN_CARS_FOCAL_128, SRN_CARS_RADIUS, random_hemisphere_poses, spiral_poses
from training.objects import OBJECT_SETS, SET_LIGHTS, SET_PREPARE
from training.objects.torcs_fetch import CACHE_ENV, TorcsDataError
from training.preview import contact_sheet
from training.srn_format import SPLITS, Intrinsics, format_intrinsics, format_pose, view_name

_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class RenderSpec:
    """Everything that determines the rendered files (written to <out>/render.json)."""

    object_set: str = "cars"
    train: int = 2000
    val: int = 100
    test: int = 100
    views: int = 50
    test_views: int = 251
    size: int = 32
    render_size: int = 128
    radius: float = SRN_CARS_RADIUS
    min_elevation_deg: float = 0.0
    max_elevation_deg: float = 85.0
    spiral_turns: float = 3.0
    seed: int = 0

    def validate(self) -> None:
        if self.object_set not in OBJECT_SETS:
            raise ValueError(f"unknown object set {self.object_set!r} (choose from {', '.join(OBJECT_SETS)})")
        if not self.radius > 0:
            raise ValueError(f"--radius must be > 0, got {self.radius}")
        if self.views < 2:
            raise ValueError(f"--views must be >= 2 (a view pair needs two), got {self.views}")
        if self.test > 0 and self.test_views < 2:
            raise ValueError(f"--test-views must be >= 2, got {self.test_views}")
        for name in SPLITS:
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.train + self.val + self.test == 0:
            raise ValueError("nothing to render: --train, --val and --test are all 0")
        if self.size <= 0 or self.render_size <= 0:
            raise ValueError(f"--size and --render-size must be > 0, got {self.size}, {self.render_size}")
        if not 0.0 <= self.min_elevation_deg < self.max_elevation_deg < 90.0:
            raise ValueError("elevations must satisfy 0 <= min < max < 90 degrees")

    def count(self, split: str) -> int:
        return getattr(self, split)

    def views_of(self, split: str) -> int:
        return self.test_views if split == "test" else self.views

    def intrinsics(self) -> Intrinsics:
        """Intrinsics of the stored images (same field of view as SRN Cars at any size)."""
        f = SRN_CARS_FOCAL_128 * self.render_size / 128.0
        c = self.render_size / 2.0
        return Intrinsics(f, c, c, self.render_size, self.render_size).scaled_to(self.size)


def instance_name(spec: RenderSpec, split: str, index: int) -> str:
    return f"{spec.object_set}_{split}_{index:05d}"


def instance_rng(spec: RenderSpec, split: str, index: int) -> np.random.Generator:
    key = [spec.seed, zlib.crc32(spec.object_set.encode()), _SPLIT_IDS[split], index]
    return np.random.default_rng(np.random.SeedSequence(key))


def instance_poses(spec: RenderSpec, split: str, rng: np.random.Generator) -> np.ndarray:
    n = spec.views_of(split)
    if split == "test":
        return spiral_poses(n, spec.radius, spec.spiral_turns, spec.min_elevation_deg, spec.max_elevation_deg)
    return random_hemisphere_poses(rng, n, spec.radius, spec.min_elevation_deg, spec.max_elevation_deg)


_renderer = None  # one TinyRenderer per process, created on first use


def _get_renderer():
    global _renderer
    if _renderer is None:
        from training.tiny_renderer import TinyRenderer

        _renderer = TinyRenderer()
    return _renderer


def object_label(parts: list) -> str:
    """The tag every part of an object shares (a meshcars model's name, a mesh file), else ""."""
    tags = {p.tag for p in parts}
    return tags.pop() if len(tags) == 1 else ""


def render_instance(spec: RenderSpec, split: str, index: int, root: Path) -> tuple[str, str]:
    """Render one object's views into root/split/<name>/; returns the instance name and object_label."""
    from training.tiny_renderer import Camera

    rng = instance_rng(spec, split, index)
    parts = OBJECT_SETS[spec.object_set](rng, split)
    poses = instance_poses(spec, split, rng)
    name = instance_name(spec, split, index)
    inst = root / split / name
    (inst / "rgb").mkdir(parents=True)
    (inst / "pose").mkdir()
    (inst / "intrinsics.txt").write_text(format_intrinsics(spec.intrinsics()))
    renderer = _get_renderer()
    renderer.set_scene(parts)
    rs = spec.render_size
    cam = Camera(SRN_CARS_FOCAL_128 * rs / 128.0, rs / 2.0, rs / 2.0, rs, rs)
    for v, c2w in enumerate(poses):
        image = renderer.render(c2w, cam, light=SET_LIGHTS.get(spec.object_set))
        if spec.size != rs:
            image = to_uint8_rgb(image, spec.size)
        Image.fromarray(image).save(inst / "rgb" / f"{view_name(v)}.png")
        (inst / "pose" / f"{view_name(v)}.txt").write_text(format_pose(c2w))
    return name, object_label(parts)


def _render_job(job: tuple[RenderSpec, str, int, Path]) -> tuple[str, str]:
    return render_instance(*job)


def _init_worker() -> None:
    global _renderer
    _renderer = None  # each worker opens its own pybullet client, never one copied from a parent


def render_dataset(
    spec: RenderSpec, out: Path, workers: int = 1, overwrite: bool = False, preview: bool = False
) -> Path:
    """Render the whole set into `out` (atomically: a temporary sibling renamed at the end)."""
    spec.validate()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    jobs = [(spec, split, i, tmp) for split in SPLITS for i in range(spec.count(split))]
    try:
        if spec.object_set in SET_PREPARE:
            print(SET_PREPARE[spec.object_set](), flush=True)
        for split in SPLITS:
            if spec.count(split):
                (tmp / split).mkdir()
        bar = tqdm(total=len(jobs), desc=f"render {spec.object_set}", unit="obj", dynamic_ncols=True)
        labels: dict[str, str] = {}
        if workers <= 1:
            for job in jobs:
                name, label = _render_job(job)
                labels[name] = label
                bar.update()
        else:
            # forkserver, not fork: a forked child of a threaded parent (a ROS executor, DDS, torch)
            # can deadlock on a lock copied mid-use, and it inherits handlers (rclpy catches SIGTERM)
            # that make Pool.terminate wait forever.
            with mp.get_context("forkserver").Pool(workers, initializer=_init_worker) as pool:
                for name, label in pool.imap_unordered(_render_job, jobs, chunksize=4):
                    labels[name] = label
                    bar.update()
        bar.close()
        recipe = asdict(spec)
        if any(labels.values()):
            # which model each instance shows (meshcars): so a split's models can be checked and traced
            recipe["objects"] = dict(sorted(labels.items()))
        (tmp / "render.json").write_text(json.dumps(recipe, indent=2) + "\n")
        if preview:
            contact_sheet(tmp).save(tmp / "preview.png")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def build_parser() -> argparse.ArgumentParser:
    d = RenderSpec()
    p = argparse.ArgumentParser(
        prog="python -m training.render",
        description="Render an SRN-layout multi-view dataset (train/val/test split by object).",
    )
    p.add_argument(
        "--set", dest="object_set", default=d.object_set, help=f"object set: {', '.join(OBJECT_SETS)}"
    )
    p.add_argument("--out", type=Path, default=None, help="output root (default: data/<set>)")
    p.add_argument("--train", type=int, default=d.train, help="training objects")
    p.add_argument("--val", type=int, default=d.val, help="validation objects")
    p.add_argument("--test", type=int, default=d.test, help="test objects")
    p.add_argument("--views", type=int, default=d.views, help="random views per train/val object")
    p.add_argument("--test-views", type=int, default=d.test_views, help="spiral views per test object")
    p.add_argument("--size", type=int, default=d.size, help="stored image size (pixels)")
    p.add_argument("--render-size", type=int, default=d.render_size, help="rendered size before downsampling")
    p.add_argument("--radius", type=float, default=d.radius, help="camera distance from the object centre")
    p.add_argument("--min-elevation", dest="min_elevation_deg", type=float, default=d.min_elevation_deg)
    p.add_argument("--max-elevation", dest="max_elevation_deg", type=float, default=d.max_elevation_deg)
    p.add_argument("--spiral-turns", type=float, default=d.spiral_turns, help="turns of the test spiral")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel processes")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--preview", action="store_true", help="also write <out>/preview.png (contact sheet)")
    p.add_argument(
        "--torcs-cache",
        default=None,
        help=f"torcs set: folder holding (or to fetch) the torcs-data .deb (sets ${CACHE_ENV}; "
        "default ~/.cache/tinyldm_ros/torcs)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fields = {k: v for k, v in vars(args).items() if k in RenderSpec.__dataclass_fields__}
    spec = RenderSpec(**fields)
    out = args.out if args.out is not None else Path("data") / spec.object_set
    if args.torcs_cache:
        os.environ[CACHE_ENV] = str(args.torcs_cache)  # the render workers inherit it
    try:
        spec.validate()
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        start = time.perf_counter()
        render_dataset(spec, out, workers=args.workers, overwrite=args.overwrite, preview=args.preview)
    except (ValueError, FileExistsError, TorcsDataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_views = sum(spec.count(s) * spec.views_of(s) for s in SPLITS)
    elapsed = time.perf_counter() - start
    rate = n_views / elapsed
    print(f"wrote {out}: {n_views} views in {elapsed:.1f} s ({rate:.0f} views/s, {args.workers} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
