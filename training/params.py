"""Parameter counts of the VAE and the UNet, per module, against the paper's figures.

python -m training.params --config paper
"""

from __future__ import annotations

import argparse
import sys

from torch import nn

from training.unet import UNet, UNetConfig
from training.vae import VAE, VAEConfig, count_parameters

PAPER_VAE_PARAMS = 634_941
PAPER_UNET_PARAMS = 1_043_089
TOLERANCE = 0.05  # the paper config must land within +-5 % of the paper's counts


def module_counts(model: nn.Module) -> dict[str, int]:
    """Parameters of each direct child that has any, in definition order."""
    return {name: n for name, child in model.named_children() if (n := count_parameters(child))}


def param_table(
    vae_cfg: VAEConfig, unet_cfg: UNetConfig, compare_to_paper: bool = True
) -> list[tuple[str, int, int | None]]:
    """Rows (name, params, paper params or None); the totals carry the paper's figures if asked."""
    rows: list[tuple[str, int, int | None]] = []
    for prefix, model, paper in (
        ("vae", VAE(vae_cfg), PAPER_VAE_PARAMS),
        ("unet", UNet(unet_cfg), PAPER_UNET_PARAMS),
    ):
        for name, n in module_counts(model).items():
            if name in ("encoder", "decoder"):
                for sub, m in module_counts(getattr(model, name)).items():
                    rows.append((f"{prefix}.{name}.{sub}", m, None))
            rows.append((f"{prefix}.{name}", n, None))
        rows.append((f"{prefix} total", count_parameters(model), paper if compare_to_paper else None))
    return rows


def format_table(rows: list[tuple[str, int, int | None]]) -> str:
    lines = [f"{'module':32s} {'params':>10s} {'paper':>10s} {'diff':>8s}"]
    for name, n, paper in rows:
        diff = f"{(n - paper) / paper:+.2%}" if paper else ""
        lines.append(
            f"{name:32s} {n:10,d} {paper or '':>10,} {diff:>8s}" if paper else f"{name:32s} {n:10,d}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from training.config import ConfigError, load_config

    parser = argparse.ArgumentParser(prog="python -m training.params", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="paper", help="config name in training/configs/ or a YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"params: error: {e}", file=sys.stderr)
        return 2
    print(f"config {cfg.name}")
    print(format_table(param_table(cfg.vae, cfg.unet, compare_to_paper=cfg.name == "paper")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
