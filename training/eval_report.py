"""The report of an evaluation: eval.json, eval.md (tables) and azimuth.png, from its summary.

`training.evaluate` measures and summarizes (a JSON-ready dict); this module only renders that
summary, so a report can be rewritten from an eval.json without the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

BASELINES = ("copy_input", "vae_roundtrip")  # drawn dashed: not the model
EVAL_FILES = ("eval.json", "eval.md", "azimuth.png", "sweep.png")  # what write_report writes


def _fmt(x: float | None, digits: int) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def markdown_report(summary: dict[str, Any]) -> str:
    cfg = summary["config"]
    lines = [
        f"# Novel-view evaluation: {summary['num_objects']} objects, {summary['num_pairs']} view pairs",
        "",
        f"Guidance {cfg['guidance']}, temperature {cfg.get('temperature', 1.0)}, seed {cfg['seed']}, "
        f"conditioning view {cfg['cond_view']}, "
        f"{cfg['targets_per_object'] or 'all other'} target views per object. "
        "CIEDE2000: mean over object pixels. Time: wall time per view for the whole batch on this device.",
        "",
        "| method | PSNR (dB) ↑ | SSIM ↑ | CIEDE2000 ↓ | ms / view |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for method, m in summary["methods"].items():
        lines.append(
            f"| {method} | {_fmt(m['psnr']['mean'], 2)} ± {_fmt(m['psnr']['std'], 2)} "
            f"| {_fmt(m['ssim']['mean'], 3)} ± {_fmt(m['ssim']['std'], 3)} "
            f"| {_fmt(m['ciede2000']['mean'], 2)} ± {_fmt(m['ciede2000']['std'], 2)} "
            f"| {_fmt(m['ms_per_view'], 3)} |"
        )
    far = summary.get("far")
    if far and far["pairs"]:
        lines += [
            "",
            f"## Views at least {far['min_offset_deg']:g}° of azimuth from the input ({far['pairs']} pairs)",
            "",
            "Gain: PSNR of the method minus PSNR of copy-input on the same pair (mean ± std over pairs).",
            "",
            "| method | PSNR (dB) ↑ | gain over copy-input (dB) | pairs where it beats copy-input |",
            "| --- | ---: | ---: | ---: |",
        ]
        for method, m in far["methods"].items():
            g = m.get("psnr_gain_over_copy_input")
            gain = f"{_fmt(g['mean'], 2)} ± {_fmt(g['std'], 2)}" if g else "–"
            frac = m.get("beats_copy_input_fraction")
            lines.append(
                f"| {method} | {_fmt(m['psnr']['mean'], 2)} | {gain} | "
                f"{'–' if frac is None else _fmt(100 * frac, 0) + ' %'} |"
            )
    col = summary.get("colourful")
    if col and col["pairs"]:
        lines += [
            "",
            f"## Painted cars: inputs of CIELAB chroma >= {col['min_chroma']:g} ({col['objects']} objects, "
            f"{col['pairs']} pairs)",
            "",
            "| method | PSNR (dB) ↑ | SSIM ↑ | CIEDE2000 ↓ |",
            "| --- | ---: | ---: | ---: |",
        ]
        for method, m in col["methods"].items():
            lines.append(
                f"| {method} | {_fmt(m['psnr']['mean'], 2)} | {_fmt(m['ssim']['mean'], 3)} "
                f"| {_fmt(m['ciede2000']['mean'], 2)} |"
            )
    az = summary["by_azimuth"]
    edges = az["bin_edges_deg"]
    heads = [f"{edges[i]:.0f}–{edges[i + 1]:.0f}°" for i in range(len(edges) - 1)]
    for metric, digits in (("psnr", 2), ("ciede2000", 2)):
        lines += ["", f"## {metric.upper()} by azimuth offset", ""]
        lines.append("| method | " + " | ".join(heads) + " |")
        lines.append("| --- |" + " ---: |" * len(heads))
        lines.append("| pairs | " + " | ".join(str(c) for c in az["count"]) + " |")
        for method, per in az["methods"].items():
            lines.append(f"| {method} | " + " | ".join(_fmt(v, digits) for v in per[metric]) + " |")
    return "\n".join(lines) + "\n"


def plot_azimuth(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    az = summary["by_azimuth"]
    edges = np.array(az["bin_edges_deg"])
    centres = (edges[:-1] + edges[1:]) / 2
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (metric, label) in zip(
        axes,
        (("psnr", "PSNR (dB) ↑"), ("ssim", "SSIM ↑"), ("ciede2000", "CIEDE2000 on object ↓")),
        strict=True,
    ):
        for method, per in az["methods"].items():
            y = np.array([np.nan if v is None else v for v in per[metric]], dtype=float)
            style = "--" if method in BASELINES else "-"
            ax.plot(centres, y, style, marker="o", label=method)
        ax.set_xlabel("azimuth offset target - input (deg)")
        ax.set_ylabel(label)
        ax.set_xticks(edges)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{summary['num_objects']} objects, {summary['num_pairs']} pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(summary: dict[str, Any], out_dir: Path, sweep: np.ndarray | None = None) -> dict[str, Path]:
    """eval.json, eval.md, azimuth.png (and sweep.png) in out_dir."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "eval.json",
        "markdown": out_dir / "eval.md",
        "azimuth": out_dir / "azimuth.png",
    }
    paths["json"].write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n")
    paths["markdown"].write_text(markdown_report(summary))
    plot_azimuth(summary, paths["azimuth"])
    if sweep is not None:
        paths["sweep"] = out_dir / "sweep.png"
        Image.fromarray(sweep).save(paths["sweep"])
    return paths
