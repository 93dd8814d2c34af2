"""Run a shipped model folder on any SRN-layout tree (ours, or the real SRN release: 512 px RGBA,
`intrinsics.txt` at 512, per-view `intrinsics/`) through the runtime engine, as a user would:

    python -m training.evaluate_real --model models/default --data ../shared/real_srn --split val \
        --out out/real_srn

Per car and overall: PSNR / SSIM / CIEDE2000 of the synthesized views against the true ones (each of
the first `--cond-views` views conditions every other view of its car), the copy-input baseline, and
the identity reconstruction (relative pose = identity, compared with the input itself). Views are
compared at the model's size after an area downsample. Writes eval.json, eval.md and sweep.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tinyldm_ros.engine import Engine
from tinyldm_ros.poses import relative_transform
from training.metrics import all_metrics
from training.srn_dataset import SRNInstance, load_split

METRIC_NAMES = ("psnr", "ssim", "ciede2000")
ROWS = ("novel", "copy_input", "identity")  # what each car reports


@dataclass
class CarResult:
    name: str
    pairs: int
    # row -> metric -> mean over the car's pairs (identity: over its conditioning views)
    means: dict[str, dict[str, float]] = field(default_factory=dict)


def _mean(values: list[dict[str, np.ndarray]]) -> dict[str, float]:
    return {m: float(np.mean(np.concatenate([v[m] for v in values]))) for m in METRIC_NAMES}


def evaluate_car(
    engine: Engine,
    car: SRNInstance,
    cond_views: int,
    steps: int | None,
    seed: int,
    max_targets: int | None = None,
    cond_view: int | None = None,
    sampler: str | None = None,
) -> tuple[CarResult, list[np.ndarray]]:
    """Metrics of one car, and its first conditioning view's figure row (input, then truth / view pairs).

    The conditioning views are the car's first `cond_views`, or the one view `cond_view` (64 in the SRN
    protocol that training.evaluate follows)."""
    n = car.num_views
    rows: dict[str, list[dict[str, np.ndarray]]] = {r: [] for r in ROWS}
    figure_row: list[np.ndarray] = []
    conds = [cond_view] if cond_view is not None else list(range(min(cond_views, n - 1)))
    for c in conds:
        targets = [t for t in range(n) if t != c]
        if max_targets is not None and len(targets) > max_targets:
            # evenly spaced, so a spiral of test views keeps its spread of angles
            targets = [targets[i] for i in np.linspace(0, len(targets) - 1, max_targets).round().astype(int)]
        poses = np.stack([relative_transform(car.c2w[c], car.c2w[t]) for t in targets] + [np.eye(4)])
        views = engine.synthesize(car.images[c], poses, steps=steps, seed=seed, sampler=sampler)
        truth = car.images[targets]
        rows["novel"].append(all_metrics(views[:-1], truth))
        rows["copy_input"].append(all_metrics(np.repeat(car.images[c : c + 1], len(targets), axis=0), truth))
        rows["identity"].append(all_metrics(views[-1:], car.images[c : c + 1]))
        if c == conds[0]:
            figure_row = [car.images[c]] + [im for pair in zip(truth, views[:-1], strict=True) for im in pair]
    result = CarResult(car.name, sum(len(r["psnr"]) for r in rows["novel"]))
    result.means = {r: _mean(v) for r, v in rows.items()}
    return result, figure_row


def summarise(cars: list[CarResult]) -> dict[str, dict[str, float]]:
    """Per-car means averaged over cars (each car counts once, whatever its number of views)."""
    return {r: {m: float(np.mean([c.means[r][m] for c in cars])) for m in METRIC_NAMES} for r in ROWS}


def write_figure(rows: list[list[np.ndarray]], path: Path, scale: int = 3) -> None:
    """One row per car: the input, then truth / synthesized pairs, on white with a gap per pair."""
    size = rows[0][0].shape[0]
    gap = size // 4
    width = max(size + gap + (len(r) - 1) // 2 * (2 * size + gap) for r in rows)
    sheet = np.full((len(rows) * (size + gap), width, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        y = i * (size + gap)
        sheet[y : y + size, :size] = row[0]
        for k, im in enumerate(row[1:]):
            x = size + gap + (k // 2) * (2 * size + gap) + (k % 2) * size
            sheet[y : y + size, x : x + size] = im
    Image.fromarray(sheet).resize((sheet.shape[1] * scale, sheet.shape[0] * scale), Image.NEAREST).save(path)


def report_markdown(model: str, data: str, cars: list[CarResult], overall: dict) -> str:
    head = "| car | pairs | novel PSNR / SSIM / CIEDE2000 | copy-input PSNR | identity PSNR / SSIM |"
    lines = [f"# {model} on {data}", "", head, "| --- | ---: | ---: | ---: | ---: |"]
    for c in cars + [CarResult("**per-car mean**", sum(c.pairs for c in cars), overall)]:
        n, ci, ident = c.means["novel"], c.means["copy_input"], c.means["identity"]
        lines.append(
            f"| {c.name} | {c.pairs} | {n['psnr']:.2f} / {n['ssim']:.3f} / {n['ciede2000']:.2f} "
            f"| {ci['psnr']:.2f} | {ident['psnr']:.2f} / {ident['ssim']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate_real", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model folder (models/default, or an export)")
    p.add_argument("--data", required=True, help="an SRN-layout root (e.g. ../shared/real_srn)")
    p.add_argument("--split", default="val", help="split (the real release's cars_val is split 'val')")
    p.add_argument("--cond-views", type=int, default=4, help="conditioning views per car (default 4)")
    p.add_argument(
        "--max-targets",
        type=int,
        default=None,
        help="targets per conditioning view, evenly spaced (default: all)",
    )
    p.add_argument(
        "--cond-view",
        type=int,
        default=None,
        help="condition on this one view of each car instead (64: the SRN protocol of training.evaluate)",
    )
    p.add_argument("--max-cars", type=int, default=None, help="only the first N cars of the split")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    p.add_argument(
        "--sampler",
        choices=["ddim", "one_step"],
        default=None,
        help="force a sampler (default: the engine's choice, a folder's one-step student at its defaults)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for eval.json, eval.md and sweep.png")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cond_views < 1 or (args.max_targets or 1) < 1 or (args.max_cars or 1) < 1:
        print("evaluate_real: --cond-views, --max-targets and --max-cars must be >= 1", file=sys.stderr)
        return 2
    try:
        engine = Engine(args.model, provider="cpu")
        data = load_split(args.data, args.split, engine.info.image_size, max_instances=args.max_cars)
        # what the calls will run: a folder's student only at its default settings (SettingsError when
        # --sampler one_step asks for one it cannot give)
        sampler = engine.sampler_for(engine.settings(steps=args.steps), args.sampler)
    except (OSError, ValueError) as e:
        print(f"evaluate_real: {e}", file=sys.stderr)
        return 2
    if any(car.num_views < 2 for car in data):
        print("evaluate_real: every car needs at least 2 views", file=sys.stderr)
        return 2
    if args.cond_view is not None and not all(0 <= args.cond_view < car.num_views for car in data):
        print(f"evaluate_real: --cond-view {args.cond_view} is not a view of every car", file=sys.stderr)
        return 2
    cars, figure = [], []
    for car in data:
        result, row = evaluate_car(
            engine,
            car,
            args.cond_views,
            args.steps,
            args.seed,
            max_targets=args.max_targets,
            cond_view=args.cond_view,
            sampler=sampler,
        )
        cars.append(result)
        figure.append(row)
    overall = summarise(cars)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "model": str(args.model),
        "data": str(args.data),
        "split": args.split,
        "protocol": {
            "cond_views": args.cond_views,
            "cond_view": args.cond_view,
            "max_targets": args.max_targets,
            "max_cars": args.max_cars,
            "steps": args.steps,
            "sampler": sampler,
            "seed": args.seed,
        },
        "per_car": [{"name": c.name, "pairs": c.pairs, **c.means} for c in cars],
        "per_car_mean": overall,
    }
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = report_markdown(str(args.model), str(args.data), cars, overall)
    (out / "eval.md").write_text(markdown)
    write_figure(figure, out / "sweep.png")
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
