"""Rendering throughput of training.render, and the projected time/size of the default cars set.

    python benchmarks/bench_render.py [--objects 40] [--workers 1 2] [--full]

Renders a subset of the default cars training set (same settings: 50 views, 128 px rendered,
32 px stored) with each worker count, measures views/s, bytes per object and SRN-reader load
speed, and projects the default set (2000 train x 50 + 100 val x 50 + 100 test x 251 views).
--full renders the whole default set once instead of projecting it.  Prints a table and writes
benchmarks/results/bench_render.json.  The load average is recorded: on a shared machine the
numbers are lower bounds of what the cores can do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from training.cameras import random_hemisphere_poses  # noqa: E402
from training.objects.cars import sample_car  # noqa: E402
from training.render import RenderSpec, render_dataset  # noqa: E402
from training.srn_dataset import load_split  # noqa: E402
from training.tiny_renderer import Camera, TinyRenderer  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def tree_bytes(root: Path) -> tuple[int, int, int]:
    """(apparent bytes, allocated bytes on disk, number of files) under root."""
    apparent = allocated = files = 0
    for p in root.rglob("*"):
        if p.is_file():
            st = p.stat()
            apparent += st.st_size
            allocated += st.st_blocks * 512
            files += 1
    return apparent, allocated, files


def bench_raw_views(n: int = 200) -> float:
    """Views/s of the bare TinyRenderer call (one car, 128 px, one process)."""
    rng = np.random.default_rng(0)
    cam = Camera(131.25, 64.0, 64.0, 128, 128)
    with TinyRenderer() as r:
        r.set_scene(sample_car(rng))
        poses = random_hemisphere_poses(rng, n)
        r.render(poses[0], cam)
        start = time.perf_counter()
        for c2w in poses:
            r.render(c2w, cam)
        return n / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects", type=int, default=40, help="train objects in the measured subset")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--full", action="store_true", help="render the full default set once (slow)")
    ap.add_argument("--dir", type=Path, default=Path("data"), help="where to render (same disk as real use)")
    args = ap.parse_args()

    default = RenderSpec()
    total_views = sum(default.count(s) * default.views_of(s) for s in ("train", "val", "test"))
    total_objects = default.train + default.val + default.test
    result: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_1min_before": os.getloadavg()[0],
        },
        "note": "2 shared cores; other agents were running concurrently, so rates are lower bounds",
        "default_set": {"objects": total_objects, "views": total_views, "spec": vars(default).copy()},
        "raw_views_per_s_128px_1proc": bench_raw_views(),
        "runs": [],
    }
    args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".bench_render-", dir=args.dir))
    try:
        for workers in args.workers:
            spec = RenderSpec(train=args.objects, val=0, test=0)
            out = work / f"w{workers}"
            start = time.perf_counter()
            render_dataset(spec, out, workers=workers)
            elapsed = time.perf_counter() - start
            views = spec.train * spec.views
            apparent, allocated, files = tree_bytes(out)
            start = time.perf_counter()
            load_split(out, "train", 32, workers=workers, progress=False)
            load_s = time.perf_counter() - start
            rate = views / elapsed
            result["runs"].append(
                {
                    "workers": workers,
                    "objects": spec.train,
                    "views": views,
                    "seconds": elapsed,
                    "views_per_s": rate,
                    "bytes_per_view_apparent": apparent / views,
                    "bytes_per_view_on_disk": allocated / views,
                    "files": files,
                    "load_split_s": load_s,
                    "projected_default_set_min": total_views / rate / 60,
                    "projected_default_set_gb_apparent": apparent / views * total_views / 1e9,
                    "projected_default_set_gb_on_disk": allocated / views * total_views / 1e9,
                    "projected_load_2000_train_s": load_s / spec.train * default.train,
                }
            )
            shutil.rmtree(out)
        if args.full:
            out = work / "full"
            start = time.perf_counter()
            render_dataset(default, out, workers=max(args.workers))
            elapsed = time.perf_counter() - start
            apparent, allocated, files = tree_bytes(out)
            start = time.perf_counter()
            load_split(out, "train", 32, workers=max(args.workers), progress=False)
            result["full"] = {
                "workers": max(args.workers),
                "seconds": elapsed,
                "views_per_s": total_views / elapsed,
                "gb_apparent": apparent / 1e9,
                "gb_on_disk": allocated / 1e9,
                "files": files,
                "load_train_split_s": time.perf_counter() - start,
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["machine"]["load_avg_1min_after"] = os.getloadavg()[0]

    print(f"\nTinyRenderer, 128 px car view, 1 process: {result['raw_views_per_s_128px_1proc']:.0f} views/s")
    print(
        f"load average (1 min) before/after: {result['machine']['load_avg_1min_before']:.1f} / "
        f"{result['machine']['load_avg_1min_after']:.1f} on {os.cpu_count()} cores (shared)\n"
    )
    cols = ["workers", "objects x views", "s", "views/s", "KB/view (disk)", "default set: min"]
    cols += ["default set: GB (disk)", "load 2000 train: s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in result["runs"]:
        print(
            f"| {r['workers']} | {r['objects']} x 50 | {r['seconds']:.1f} | {r['views_per_s']:.0f} | "
            f"{r['bytes_per_view_on_disk'] / 1e3:.1f} | {r['projected_default_set_min']:.1f} | "
            f"{r['projected_default_set_gb_on_disk']:.2f} | {r['projected_load_2000_train_s']:.1f} |"
        )
    if "full" in result:
        f = result["full"]
        print(
            f"\nfull default set ({total_objects} objects, {total_views} views, {f['workers']} workers): "
            f"{f['seconds'] / 60:.1f} min, {f['views_per_s']:.0f} views/s, {f['gb_on_disk']:.2f} GB on disk, "
            f"train split loads in {f['load_train_split_s']:.1f} s"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "bench_render.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
