"""Ablation of the changes beyond the paper: quality from the eval CLI, cost from the engine, one table.

    python benchmarks/ablation.py --runs /path/to/runs                       # table + JSON
    python benchmarks/ablation.py --runs /path/to/runs --figure --data data/cars

`benchmarks/ablation.yaml` lists the rows: each names a training run under --runs, the evaluation
folder `training.evaluate` wrote for it (eval.json) and the model folder `training.export` wrote
from it. Per row: PSNR / SSIM / CIEDE2000 (object pixels) of the evaluated sampler, averaged over the
held-out pairs, the parameter counts (model.json), and the engine's p50 ms per call for 1 and 8 target
views at the row's guidance on this CPU (all rows timed one after another in this process). Every
row must have been evaluated on the same objects, pairs and seed: the script checks that.

Writes benchmarks/results/ablation.json and docs/ablation.md; --figure also writes
docs/images/ablation_colours.png: for the held-out objects of the most saturated (least silver)
colours, the input, the ground truth and each of the figure rows (the paper's model and the best one)
at the same target views, with the same seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from benchmarks.bench_common import cpu_model, machine_state, measure, orbit, test_image  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ablation.json"
TABLE = ROOT / "docs" / "ablation.md"
FIGURE = ROOT / "docs" / "images" / "ablation_colours.png"
SAME_EVAL = ("seed", "cond_view", "targets_per_object")  # eval config fields every row must share


def load_rows(spec: Path, runs: Path) -> list[dict]:
    rows = yaml.safe_load(spec.read_text())["rows"]
    out = []
    for r in rows:
        eval_json = runs / r["eval"] / "eval.json"
        model = ROOT / r["model"] if r["model"].startswith("models/") else runs / r["model"]
        for p in (eval_json, model / "model.json"):
            if not p.is_file():
                raise SystemExit(f"ablation: row {r['name']!r}: {p} does not exist")
        out.append({**r, "eval_json": eval_json, "model_dir": model})
    return out


def quality(row: dict) -> dict:
    """The row's sampler metrics from its eval.json, and the facts that make rows comparable."""
    ev = json.loads(row["eval_json"].read_text())
    m = ev["methods"][row.get("sampler", "ddim-10")]
    far = ev["far"]["methods"][row.get("sampler", "ddim-10")]
    return {
        "psnr": m["psnr"]["mean"],
        "ssim": m["ssim"]["mean"],
        "ciede2000": m["ciede2000"]["mean"],
        "vae_roundtrip": {
            k: ev["methods"]["vae_roundtrip"][k]["mean"] for k in ("psnr", "ssim", "ciede2000")
        },
        "far_psnr_gain_over_copy_input": far["psnr_gain_over_copy_input"]["mean"],
        "painted": _painted(ev, row.get("sampler", "ddim-10")),
        "guidance": ev["config"]["guidance"],
        "temperature": ev["config"].get("temperature", 1.0),  # evaluations before it existed: 1
        "num_objects": ev["num_objects"],
        "num_pairs": ev["num_pairs"],
        "eval_config": {k: ev["config"][k] for k in SAME_EVAL},
        "data": f"{ev['meta'].get('data')} ({ev['meta'].get('split')})",
    }


def _painted(ev: dict, sampler: str) -> dict | None:
    """The eval's means over pairs with a painted (not white/black/grey/silver) input, if it has them."""
    col = ev.get("colourful")
    if not col or not col["pairs"]:
        return None
    m = col["methods"][sampler]
    return {
        "psnr": m["psnr"]["mean"],
        "ciede2000": m["ciede2000"]["mean"],
        "pairs": col["pairs"],
        "objects": col["objects"],
        "min_chroma": col["min_chroma"],
    }


def sampler_steps(row: dict) -> int:
    """DDIM steps of the row's sampler ("ddim-10" unless the row names another)."""
    return int(row.get("sampler", "ddim-10").split("-")[1])


def engine_cost(model_dir: Path, guidance: float, steps: int, reps: int) -> dict:
    from tinyldm_ros.engine import Engine

    engine = Engine(model_dir, provider="cpu", intra_op_threads=1, warmup_views=(1, 8))
    img = test_image(engine.info.image_size)
    out = {}
    for n in (1, 8):
        poses = orbit(n)
        r = measure(lambda p=poses: engine.synthesize(img, p, steps=steps, guidance=guidance), reps, warmup=3)
        out[f"views{n}_p50_ms"] = r["p50_ms"]
        out[f"views{n}_cpu_p50_ms"] = r["cpu_p50_ms"]
    p = engine.info.provenance
    out["params"] = {
        "vae": p.vae_parameters,
        "unet": p.unet_parameters,
        "total": p.vae_parameters + p.unet_parameters,
    }
    out["training"] = {"vae_iterations": p.vae_iterations, "unet_iterations": p.unet_iterations}
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    base = rows[0]
    lines = [
        "# Ablation: beyond the paper",
        "",
        "Generated by `python benchmarks/ablation.py` from the evaluations of `training.evaluate` "
        f"({base['num_objects']} held-out cars, {base['num_pairs']} input/target pairs, seed "
        f"{base['eval_config']['seed']}) and engine timings on {meta['cpu_model']} "
        f"({meta['cores']} cores, 1 intra-op thread, the engine's default {meta.get('workers', 1)} "
        "worker(s)). Colour error: mean CIEDE2000 over object pixels "
        "(lower is better). Sampler: DDIM steps, classifier-free guidance g, temperature T of the starting "
        "noise; the engine timings use the row's. Δ: against the first row. Painted cars: the pairs whose "
        "input's object pixels have a mean CIELAB chroma of at least "
        f"{(base['painted'] or {}).get('min_chroma', '–')} (not white, black, grey or silver: "
        f"{(base['painted'] or {}).get('objects', '–')} objects, {(base['painted'] or {}).get('pairs', '–')} "
        "pairs).",
        "",
        "| row | change | sampler | PSNR dB | Δ PSNR | SSIM | CIEDE2000 | colour error vs paper | "
        "painted cars: PSNR / CIEDE2000 | VAE round trip PSNR / CIEDE2000 | params | VAE / UNet iterations | "
        "engine ms, 1 view | engine ms, 8 views |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        rt, pt = r["vae_roundtrip"], r["painted"]
        painted = f"{pt['psnr']:.2f} / {pt['ciede2000']:.2f}" if pt else "–"
        lines.append(
            f"| {r['name']} | {r['change']} | DDIM-{sampler_steps(r)}, g {r['guidance']:g}, "
            f"T {r['temperature']:g} | {r['psnr']:.2f} | {r['psnr'] - base['psnr']:+.2f} | "
            f"{r['ssim']:.3f} | {r['ciede2000']:.2f} | {r['ciede2000'] / base['ciede2000']:.0%} | "
            f"{painted} | "
            f"{rt['psnr']:.2f} / {rt['ciede2000']:.2f} | {r['params']['total']:,} | "
            f"{r['training']['vae_iterations']:,} / {r['training']['unet_iterations']:,} | "
            f"{r['views1_p50_ms']:.2f} | {r['views8_p50_ms']:.2f} |"
        )
    lines += ["", *[f"- **{r['name']}**: {r['note']}" for r in rows if r.get("note")], ""]
    if meta.get("shared"):
        lines += ["Timings were taken while other processes were busy: treat them as upper bounds.", ""]
    return "\n".join(lines)


def cond_view(inst) -> int:
    from training.evaluate import EvalConfig

    c = EvalConfig().cond_view  # the evaluation's input view
    return c if c < inst.num_views else 0


def colourful_objects(instances, count: int) -> list[int]:
    """Indices of the objects whose input view is most saturated (mean CIELAB chroma of the object
    pixels): the colours the paper's model repaints grey."""
    from training.metrics import object_chroma

    chroma = object_chroma(np.stack([inst.images[cond_view(inst)] for inst in instances]))
    return [int(i) for i in np.argsort(chroma)[::-1][:count]]


def figure(rows: list[dict], data: Path, objects: int, angles: int, out: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    from tinyldm_ros.engine import Engine
    from training.evaluate import sweep_views
    from training.srn_dataset import load_split

    instances = load_split(data, "test", 32, progress=False)
    picked = [instances[i] for i in colourful_objects(instances, objects)]
    # figure_label: a shorter name where the row's own does not fit beside the tiles
    engines = [
        (
            r.get("figure_label", r["name"]),
            Engine(r["model_dir"], provider="cpu"),
            {"guidance": r["guidance"], "temperature": r["temperature"], "steps": sampler_steps(r)},
        )
        for r in rows
    ]
    S, gap, label_w, scale = 32, 2, 64, 3
    block = 1 + len(engines)  # the truth row, then one row per model
    width = label_w + (1 + angles) * (S + gap)
    height = len(picked) * (block * (S + gap) + 3 * gap)
    canvas = Image.new("RGB", (width * scale, height * scale), (128, 128, 128))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=10 * scale)
    y = 0
    for inst in picked:
        c = cond_view(inst)
        targets = sweep_views(inst, c, angles + 1)[1:]  # not the input view itself
        rel = np.linalg.inv(inst.c2w[c]) @ inst.c2w[targets]
        tiles = [["input, truth", inst.images[c], *inst.images[targets]]]
        for name, engine, sampling in engines:
            tiles.append([name, None, *engine.synthesize(inst.images[c], rel, seed=0, **sampling)])
        for label, *row in tiles:
            draw.text((2 * scale, (y + S // 3) * scale), label, fill=(255, 255, 255), font=font)
            for c, tile in enumerate(row):
                if tile is not None:
                    x = label_w + c * (S + gap) + (gap if c else 0)
                    im = Image.fromarray(tile).resize((S * scale, S * scale), Image.NEAREST)
                    canvas.paste(im, (x * scale, y * scale))
            y += S + gap
        y += 3 * gap
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder holding the training runs of the spec")
    ap.add_argument("--spec", type=Path, default=ROOT / "benchmarks" / "ablation.yaml")
    ap.add_argument("--reps", type=int, default=60, help="timed engine calls per row and batch size")
    ap.add_argument("--figure", action="store_true", help="also draw the colour comparison (needs --data)")
    ap.add_argument("--data", type=Path, help="SRN-layout data set with the held-out test split")
    ap.add_argument("--objects", type=int, default=6, help="objects in the figure")
    ap.add_argument("--angles", type=int, default=6, help="target views per object in the figure")
    args = ap.parse_args(argv)

    rows = load_rows(args.spec, args.runs)
    before = machine_state()
    for r in rows:
        r.update(quality(r))
        bad = {k: v for k, v in r["eval_config"].items() if v != rows[0]["eval_config"][k]}
        if bad or r["num_pairs"] != rows[0]["num_pairs"]:
            raise SystemExit(f"ablation: row {r['name']!r} was evaluated differently ({bad or 'pairs'})")
        print(f"timing {r['name']} ...", file=sys.stderr, flush=True)
        r.update(engine_cost(r["model_dir"], r["guidance"], sampler_steps(r), args.reps))
    after = machine_state()
    from tinyldm_ros.engine import default_workers

    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_model": cpu_model(),
        "cores": before["cores"],
        "workers": default_workers(),
        "command": "python benchmarks/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "shared": before["shared"] or after["shared"],
        "machine_before": before,
        "machine_after": after,
    }
    text = markdown(rows, meta)
    if args.figure:
        if not args.data:
            raise SystemExit("ablation: --figure needs --data (the held-out cars)")
        fig_rows = [r for r in rows if r.get("figure")]
        figure(fig_rows, args.data, args.objects, args.angles, FIGURE)
        text += (
            f"\n![input, truth and {', '.join(r['name'] for r in fig_rows)} on the most colourful held-out "
            f"cars](images/{FIGURE.name})\n"
        )
        print(f"wrote {FIGURE}")
    print(text)
    result = {
        "benchmark": "ablation",
        **meta,
        "rows": [{k: v for k, v in r.items() if k not in ("eval_json", "model_dir")} for r in rows],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    TABLE.write_text(text)
    print(f"wrote {RESULTS} and {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
