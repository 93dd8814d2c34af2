"""Evaluate novel-view synthesis on held-out objects: PSNR, SSIM, CIEDE2000, by sampler and azimuth.

    python -m training.evaluate --run runs/paper --data data/cars --split test

Compares the model under each sampler (default DDPM-1000 and DDIM-50/20/10/5) with two baselines on
the same (conditioning view, target view) pairs and the same initial noise:
  copy_input     the conditioning image itself (what a model that ignores the pose would score);
  vae_roundtrip  decode(encode(true target)): the ceiling a 16-value latent allows.
Writes eval.json, eval.md (tables), azimuth.png (error vs azimuth offset) and sweep.png (rows: test
objects; columns: input, then ground-truth / synthesized pairs around the object) to --out.

The core (`evaluate`, `sweep_grid`, `summarize`) takes in-memory models (training.pipeline) and
instances; training.eval_report renders the summary; this CLI only loads checkpoints and data.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyldm_ros.poses import azimuth_elevation, rotation_about_axis
from training import metrics
from training.errors import UserError
from training.eval_report import markdown_report, write_report
from training.pipeline import Models, load_models, reconstruct, synthesize
from training.sampler import parse_sampler
from training.srn_dataset import SRNInstance

SRN_COND_VIEW = 64  # the SRN Cars protocol (pixelNeRF): view 64 conditions, the others are targets


@dataclass
class EvalConfig:
    samplers: tuple[str, ...] = ("ddpm-1000", "ddim-50", "ddim-20", "ddim-10", "ddim-5")
    guidance: float = 1.0
    temperature: float = 1.0  # x_T = temperature * N(0, I), as the engine's sampler.temperature
    cond_view: int = SRN_COND_VIEW  # view 0 for objects with fewer views
    targets_per_object: int | None = 32  # None: every other view
    seed: int = 0
    batch_size: int = 1024
    azimuth_bin_deg: float = 30.0
    sweep_objects: int = 6
    sweep_angles: int = 8
    sweep_sampler: str = "ddim-50"
    far_deg: float = 45.0  # "views far from the input": the default model's acceptance check
    # "painted" pairs: the input's object pixels have at least this mean CIELAB chroma. White, black,
    # grey and silver cars score below 3 in the default set, paint colours 9 to 40: the paper's model
    # turns the latter grey.
    colourful_chroma: float = 5.0


@dataclass
class Pairs:
    instance: np.ndarray  # [N] index into the instance list
    cond_view: np.ndarray  # [N]
    target_view: np.ndarray  # [N]
    azimuth_offset: np.ndarray  # [N] degrees in [0, 180]


@dataclass
class EvalResult:
    pairs: Pairs
    per_pair: dict[str, dict[str, np.ndarray]]  # method -> metric -> [N]
    seconds: dict[str, float]  # method -> wall time to produce its N views
    input_chroma: np.ndarray | None = None  # [N] metrics.object_chroma of each pair's input view


def azimuth_offset(c2w_cond: np.ndarray, c2w_target: np.ndarray) -> np.ndarray:
    """|azimuth(target) - azimuth(cond)| about world up (+z, the data's convention), wrapped to [0, 180]."""
    d = (azimuth_elevation(c2w_target)[0] - azimuth_elevation(c2w_cond)[0] + 180.0) % 360.0 - 180.0
    return np.abs(d)


def select_pairs(instances: list[SRNInstance], cfg: EvalConfig) -> Pairs:
    """One conditioning view per object and `targets_per_object` other views (seeded), in object order."""
    rng = np.random.default_rng(cfg.seed)
    inst, cond, tgt = [], [], []
    for i, obj in enumerate(instances):
        if obj.num_views < 2:
            raise ValueError(f"{obj.path}: needs at least 2 views for evaluation, has {obj.num_views}")
        c = cfg.cond_view if cfg.cond_view < obj.num_views else 0
        others = np.delete(np.arange(obj.num_views), c)
        if cfg.targets_per_object is not None and cfg.targets_per_object < len(others):
            others = np.sort(rng.choice(others, cfg.targets_per_object, replace=False))
        inst += [i] * len(others)
        cond += [c] * len(others)
        tgt += others.tolist()
    inst_a, cond_a, tgt_a = (np.array(a, dtype=np.int64) for a in (inst, cond, tgt))
    c2w_c = np.stack([instances[i].c2w[v] for i, v in zip(inst_a, cond_a, strict=True)])
    c2w_t = np.stack([instances[i].c2w[v] for i, v in zip(inst_a, tgt_a, strict=True)])
    return Pairs(inst_a, cond_a, tgt_a, azimuth_offset(c2w_c, c2w_t))


def _views(instances: list[SRNInstance], inst: np.ndarray, view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([instances[i].images[v] for i, v in zip(inst, view, strict=True)])
    c2w = np.stack([instances[i].c2w[v] for i, v in zip(inst, view, strict=True)])
    return images, c2w


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(
    models: Models, instances: list[SRNInstance], cfg: EvalConfig | None = None, progress: bool = False
) -> EvalResult:
    """Metrics of the baselines and of the model under each sampler on the same pairs and noise."""
    cfg = cfg or EvalConfig()
    for spec in cfg.samplers:
        parse_sampler(spec, models.schedule.num_timesteps)  # fail before any work on a bad sampler
    models.vae.eval()
    models.unet.eval()
    pairs = select_pairs(instances, cfg)
    cond_img, c2w_c = _views(instances, pairs.instance, pairs.cond_view)
    truth, c2w_t = _views(instances, pairs.instance, pairs.target_view)
    per_pair: dict[str, dict[str, np.ndarray]] = {"copy_input": metrics.all_metrics(cond_img, truth)}
    seconds: dict[str, float] = {"copy_input": 0.0}
    t0 = time.perf_counter()
    roundtrip = reconstruct(models, truth, cfg.batch_size)
    seconds["vae_roundtrip"] = time.perf_counter() - t0
    per_pair["vae_roundtrip"] = metrics.all_metrics(roundtrip, truth)
    for spec in cfg.samplers:
        _sync(models.device)
        t0 = time.perf_counter()
        # every sampler starts from the same x_T: synthesize's draw from the seed
        pred = synthesize(
            models,
            cond_img,
            c2w_c,
            c2w_t,
            spec,
            cfg.guidance,
            cfg.seed,
            cfg.batch_size,
            progress=progress,
            temperature=cfg.temperature,
        )
        _sync(models.device)
        seconds[spec] = time.perf_counter() - t0
        per_pair[spec] = metrics.all_metrics(pred, truth)
    return EvalResult(pairs, per_pair, seconds, metrics.object_chroma(cond_img))


def _stats(values: np.ndarray) -> dict[str, float]:
    v = values[np.isfinite(values)]
    if not len(v):
        return {"mean": float("nan"), "std": float("nan"), "median": float("nan"), "count": 0}
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "median": float(np.median(v)),
        "count": int(len(v)),
    }


def summarize(result: EvalResult, cfg: EvalConfig, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready summary: per method mean/std/median of each metric, time per view, and by azimuth bin."""
    n = len(result.pairs.instance)
    edges = np.arange(0.0, 180.0 + cfg.azimuth_bin_deg, cfg.azimuth_bin_deg)
    edges[-1] = max(edges[-1], 180.0)
    bins = np.clip(np.digitize(result.pairs.azimuth_offset, edges[1:-1]), 0, len(edges) - 2)
    methods = {}
    by_azimuth: dict[str, dict[str, list[float | None]]] = {}
    for method, values in result.per_pair.items():
        methods[method] = {name: _stats(v) for name, v in values.items()}
        methods[method]["ms_per_view"] = 1000.0 * result.seconds[method] / max(n, 1)
        by_azimuth[method] = {}
        for name, v in values.items():
            means: list[float | None] = []
            for b in range(len(edges) - 1):
                sel = v[(bins == b) & np.isfinite(v)]
                means.append(float(sel.mean()) if len(sel) else None)
            by_azimuth[method][name] = means
    counts = [int((bins == b).sum()) for b in range(len(edges) - 1)]
    far = result.pairs.azimuth_offset >= cfg.far_deg
    copy_psnr = result.per_pair.get("copy_input", {}).get("psnr")
    far_summary: dict[str, Any] = {"min_offset_deg": cfg.far_deg, "pairs": int(far.sum()), "methods": {}}
    for method, values in result.per_pair.items():
        entry: dict[str, Any] = {"psnr": _stats(values["psnr"][far])}
        if copy_psnr is not None and method != "copy_input":
            # paired: the same (input, target) pairs, so the spread of the gain is not the objects'
            gain = values["psnr"][far] - copy_psnr[far]
            entry["psnr_gain_over_copy_input"] = _stats(gain)
            entry["beats_copy_input_fraction"] = float((gain > 0).mean()) if far.any() else float("nan")
        far_summary["methods"][method] = entry
    return {
        "format": "tinyldm-eval/1",
        "num_objects": int(len(np.unique(result.pairs.instance))),
        "num_pairs": n,
        "config": asdict(cfg),
        "meta": meta or {},
        "methods": methods,
        "by_azimuth": {"bin_edges_deg": edges.tolist(), "count": counts, "methods": by_azimuth},
        "far": far_summary,
        "colourful": _colourful(result, cfg),
    }


def _colourful(result: EvalResult, cfg: EvalConfig) -> dict[str, Any] | None:
    """Means over the pairs whose input is painted (chroma >= cfg.colourful_chroma)."""
    if result.input_chroma is None:
        return None
    sel = result.input_chroma >= cfg.colourful_chroma
    out: dict[str, Any] = {
        "min_chroma": cfg.colourful_chroma,
        "pairs": int(sel.sum()),
        "objects": int(len(np.unique(result.pairs.instance[sel]))),
        "methods": {},
    }
    for method, values in result.per_pair.items():
        out["methods"][method] = {k: _stats(values[k][sel]) for k in ("psnr", "ssim", "ciede2000")}
    return out


def sweep_views(instance: SRNInstance, cond: int, angles: int) -> np.ndarray:
    """For each of `angles` azimuth offsets k * 360 / angles, the view closest to the conditioning
    camera orbited by that offset about world up (+z), as view indices [angles]."""
    pos = instance.c2w[:, :3, 3]
    dirs = pos / np.linalg.norm(pos, axis=1, keepdims=True)
    wanted = [rotation_about_axis((0.0, 0.0, 1.0), 360.0 * k / angles) @ dirs[cond] for k in range(angles)]
    return np.array([int(np.argmax(dirs @ w)) for w in wanted], dtype=np.int64)


def sweep_grid(
    models: Models, instances: list[SRNInstance], cfg: EvalConfig | None = None, scale: int = 3
) -> np.ndarray:
    """uint8 image: one row per object: input | (truth, synthesized) x sweep_angles around 360 deg."""
    cfg = cfg or EvalConfig()
    objs = instances[: cfg.sweep_objects]
    inst, cond, tgt = [], [], []
    for i, obj in enumerate(objs):
        c = cfg.cond_view if cfg.cond_view < obj.num_views else 0
        views = sweep_views(obj, c, cfg.sweep_angles)
        inst += [i] * len(views)
        cond += [c] * len(views)
        tgt += views.tolist()
    inst_a, cond_a, tgt_a = (np.array(a, dtype=np.int64) for a in (inst, cond, tgt))
    cond_img, c2w_c = _views(objs, inst_a, cond_a)
    truth, c2w_t = _views(objs, inst_a, tgt_a)
    pred = synthesize(
        models,
        cond_img,
        c2w_c,
        c2w_t,
        cfg.sweep_sampler,
        cfg.guidance,
        cfg.seed,
        cfg.batch_size,
        temperature=cfg.temperature,
    )
    S = truth.shape[1]
    gap = 2
    cols = 1 + 2 * cfg.sweep_angles
    grid = np.full((len(objs) * (S + gap) + gap, cols * (S + gap) + 2 * gap, 3), 128, np.uint8)
    for r in range(len(objs)):
        y = gap + r * (S + gap)
        rows = np.flatnonzero(inst_a == r)
        tiles = [cond_img[rows[0]]] + [im for j in rows for im in (truth[j], pred[j])]
        for c, tile in enumerate(tiles):
            x = gap + c * (S + gap) + (gap if c > 0 else 0)  # a wider gap after the input column
            grid[y : y + S, x : x + S] = tile
    return grid.repeat(scale, 0).repeat(scale, 1)


# --- CLI -----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, help="run folder with vae/ and unet/ checkpoints (e.g. runs/paper)")
    p.add_argument("--vae", type=Path, help="VAE checkpoint (default: <run>/vae/checkpoint.safetensors)")
    p.add_argument("--unet", type=Path, help="UNet checkpoint (default: <run>/unet/checkpoint.safetensors)")
    p.add_argument("--data", type=Path, required=True, help="dataset root in the SRN layout (e.g. data/cars)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--out", type=Path, help="output folder (default: <run>/eval)")
    d = EvalConfig()
    p.add_argument("--samplers", nargs="+", default=list(d.samplers), help="e.g. ddpm-1000 ddim-10")
    p.add_argument("--guidance", type=float, default=d.guidance, help="classifier-free guidance scale")
    p.add_argument(
        "--temperature",
        type=float,
        default=d.temperature,
        help="scale of the initial noise x_T, in [0, 1] (the engine's sampler.temperature)",
    )
    p.add_argument(
        "--targets-per-object", type=int, default=d.targets_per_object, help="0 = every other view"
    )
    p.add_argument("--cond-view", type=int, default=d.cond_view, help="conditioning view index per object")
    p.add_argument("--max-objects", type=int, help="evaluate the first N objects only")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--sweep-objects", type=int, default=d.sweep_objects)
    p.add_argument("--sweep-angles", type=int, default=d.sweep_angles)
    p.add_argument("--sweep-sampler", default=d.sweep_sampler)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.run is None and (args.vae is None or args.unet is None):
        raise UserError("give --run, or both --vae and --unet")
    vae_ckpt = args.vae or args.run / "vae" / "checkpoint.safetensors"
    unet_ckpt = args.unet or args.run / "unet" / "checkpoint.safetensors"
    out = args.out or (args.run / "eval" if args.run else Path("eval"))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device available")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    cfg = EvalConfig(
        samplers=tuple(args.samplers),
        guidance=args.guidance,
        temperature=args.temperature,
        cond_view=args.cond_view,
        targets_per_object=args.targets_per_object or None,
        seed=args.seed,
        batch_size=args.batch_size,
        sweep_objects=args.sweep_objects,
        sweep_angles=args.sweep_angles,
        sweep_sampler=args.sweep_sampler,
    )
    for spec in (*cfg.samplers, cfg.sweep_sampler):
        parse_sampler(spec)
    if not 0.0 <= cfg.temperature <= 1.0:
        raise UserError(f"--temperature must be in [0, 1], got {cfg.temperature}")
    models, vae_c, unet_c = load_models(vae_ckpt, unet_ckpt, device)
    meta = {
        "vae_checkpoint": str(vae_ckpt),
        "vae_step": vae_c.step,
        "unet_checkpoint": str(unet_ckpt),
        "unet_step": unet_c.step,
        "config": unet_c.config.name,
        "latent_scale": models.latent_scale,
    }
    from training.srn_dataset import load_split

    instances = load_split(
        args.data,
        args.split,
        models.vae.cfg.image_size,
        max_instances=args.max_objects,
        progress=not args.no_progress,
    )
    meta.update({"data": str(args.data), "split": args.split, "device": str(device)})
    result = evaluate(models, instances, cfg, progress=not args.no_progress)
    summary = summarize(result, cfg, meta)
    sweep = sweep_grid(models, instances, cfg) if cfg.sweep_objects > 0 else None
    paths = write_report(summary, out, sweep)
    print(markdown_report(summary))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cli(argv: list[str] | None = None) -> None:
    try:
        sys.exit(main(argv))
    except (UserError, FileNotFoundError, ValueError) as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
