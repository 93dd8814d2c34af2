"""Training throughput of the real train loop (VAE and UNet stages) and the projected paper schedule.

    python benchmarks/bench_train.py                      # paper config, paper batch size, auto device
    python benchmarks/bench_train.py --device cpu --steps 20

Each stage runs `training.trainer.train` (the code the CLIs run: batch gather, AMP, loss, backward,
clip, AdamW, EMA) on synthetic in-memory data of the right shapes (the step cost does not depend on
pixel values): `--steps` warm-up iterations, then `--steps` timed ones. Prints a table and writes JSON
to benchmarks/results/. The CPU load average is recorded: on a shared machine other processes slow it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyldm_ros.poses import look_at  # noqa: E402
from training import encode_latents, train_unet, train_vae  # noqa: E402
from training.config import apply_overrides, load_config  # noqa: E402
from training.distributed import setup  # noqa: E402
from training.run_log import read_log  # noqa: E402
from training.trainer import train  # noqa: E402
from training.views import ViewSet  # noqa: E402


def synthetic_views(objects: int, views: int, size: int, seed: int = 0) -> ViewSet:
    rng = np.random.default_rng(seed)
    az = rng.uniform(0, 2 * np.pi, objects * views)
    eyes = np.stack([1.3 * np.cos(az), 1.3 * np.sin(az), np.full_like(az, 0.5)], 1)
    return ViewSet(
        names=[f"obj{i}" for i in range(objects)],
        images=torch.from_numpy(rng.integers(0, 256, (objects * views, size, size, 3), dtype=np.uint8)),
        c2w=np.stack([look_at(e, np.zeros(3)) for e in eyes]),
        offsets=np.arange(0, objects * views + 1, views, dtype=np.int64),
    )


def timed_it_per_s(stage, cfg, out: Path, info) -> float:
    train(stage, cfg, out, info, resume=False, show_progress=False)
    rows = read_log(out / "log.csv")
    return rows[-1]["it_per_s"]  # the window between the last two log rows: the timed steps only


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="paper")
    p.add_argument("--steps", type=int, default=20, help="warm-up steps, then as many timed steps")
    p.add_argument("--batch-size", type=int, help="default: the config's per-stage batch size")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--threads",
        type=int,
        nargs="+",
        help="torch CPU thread counts to compare (default: 1 and all cores; GPU: torch's)",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--tag", default="", help="suffix of the JSON file name")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    n = args.steps
    sets = [f"{s}.iterations={2 * n}" for s in ("vae_train", "unet_train")]
    sets += [f"{s}.log_every={n}" for s in ("vae_train", "unet_train")]
    sets += [f"{s}.checkpoint_every={10 * n}" for s in ("vae_train", "unet_train")]
    sets += [f"{s}.sample_every=0" for s in ("vae_train", "unet_train")]
    if args.batch_size:
        sets += [f"{s}.batch_size={args.batch_size}" for s in ("vae_train", "unet_train")]
    cfg = apply_overrides(load_config(args.config), sets + args.overrides)
    paper = load_config(args.config)
    info = setup(False, args.device)
    load_before = os.getloadavg()

    views = synthetic_views(objects=64, views=50, size=cfg.data.image_size)
    u = cfg.unet
    z = torch.randn(views.num_views, u.latent_channels, u.latent_size, u.latent_size)
    threads = args.threads or (
        [torch.get_num_threads()] if info.device.type == "cuda" else sorted({1, os.cpu_count() or 1})
    )
    results: dict[str, dict[str, float]] = {}
    for nt in threads:
        torch.set_num_threads(nt)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            stage = train_vae.build_stage(cfg, views, info, preview=views.images[:8])
            vae_its = timed_it_per_s(stage, cfg, tmp / "vae", info)
            tensors = {"train.mean": z, "train.c2w": torch.from_numpy(views.c2w)}
            tensors["train.offsets"] = torch.from_numpy(views.offsets)
            meta = {
                "format": encode_latents.FORMAT,
                "latent_scale": "1.0",
                "splits": '["train"]',
                "names": "{}",
            }
            save_file(tensors, str(tmp / "latents.safetensors"), metadata=meta)
            latents = encode_latents.Latents(tmp / "latents.safetensors")
            stage = train_unet.build_stage(cfg, latents, info, vae=None)
            results[str(nt)] = {"vae": vae_its, "unet": timed_it_per_s(stage, cfg, tmp / "unet", info)}

    load_after = os.getloadavg()
    vae_iters, unet_iters = paper.vae_train.iterations, paper.unet_train.iterations
    dev = (
        torch.cuda.get_device_name(info.device)
        if info.device.type == "cuda"
        else platform.processor() or "cpu"
    )
    rows = []
    for nt, r in results.items():
        vae_h, unet_h = vae_iters / r["vae"] / 3600, unet_iters / r["unet"] / 3600
        rows.append(
            {
                "threads": int(nt),
                "it_per_s": r,
                "projected_hours": {"vae": vae_h, "unet": unet_h, "total": vae_h + unet_h},
            }
        )
    record = {
        "config": args.config,
        "device": str(info.device),
        "device_name": dev,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "amp": {"vae": cfg.vae_train.amp, "unet": cfg.unet_train.amp}
        if info.device.type == "cuda"
        else "off (cpu)",
        "compile": {"vae": cfg.vae_train.compile, "unet": cfg.unet_train.compile}
        if info.device.type == "cuda"
        else "none (cpu)",
        "timed_steps": n,
        "overrides": args.overrides,
        "batch_size": {"vae": cfg.vae_train.batch_size, "unet": cfg.unet_train.batch_size},
        "paper_iterations": {"vae": vae_iters, "unet": unet_iters},
        "runs": rows,
        "load_average_1min": {"before": load_before[0], "after": load_after[0]},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"device: {dev} ({info.device}), torch {torch.__version__}, {os.cpu_count()} cores")
    print(
        f"{'stage':6s} {'threads':>7s} {'batch':>6s} {'it/s':>9s} {'ms/it':>8s} "
        f"{'paper iters':>12s} {'projected':>10s}"
    )
    for row in rows:
        for s, iters in (("vae", vae_iters), ("unet", unet_iters)):
            its, b = row["it_per_s"][s], record["batch_size"][s]
            h = row["projected_hours"][s]
            print(f"{s:6s} {row['threads']:7d} {b:6d} {its:9.2f} {1000 / its:8.1f} {iters:12,d} {h:9.2f}h")
        print(
            f"paper schedule total with {row['threads']} thread(s): {row['projected_hours']['total']:.2f} h"
        )
    if load_before[0] > 0.5 * (os.cpu_count() or 1):
        print(
            f"note: 1-min load average was {load_before[0]:.1f} before / {load_after[0]:.1f} after on "
            f"{os.cpu_count()} cores: other processes (other agents) shared the CPU, so these numbers are "
            "pessimistic, and more threads than free cores makes torch far slower"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if info.device.type == "cuda" else "cpu"
    path = args.out / f"bench_train_{args.config}_{tag}{args.tag}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
