"""What the training CLIs share: common arguments, config resolution, and user-facing errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from training.checkpoint import load_checkpoint
from training.config import ConfigError, TrainConfig, apply_overrides, dump_config, load_config
from training.distributed import DistInfo
from training.errors import UserError
from training.trainer import NonFiniteLossError, Stage, train
from training.views import DataError


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", default="paper", help="config name in training/configs/ or a YAML path (default: paper)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set unet_train.lr=1e-4 (repeatable)",
    )
    p.add_argument("--data", help="dataset root (overrides data.root)")


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="run folder, e.g. runs/paper")
    p.add_argument("--resume", action="store_true", help="continue from the stage's last checkpoint in --out")
    p.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: CUDA if available"
    )
    p.add_argument(
        "--ddp",
        action="store_true",
        help="use DistributedDataParallel (automatic under torchrun, WORLD_SIZE > 1)",
    )
    p.add_argument(
        "--until",
        type=int,
        metavar="STEP",
        help="stop at this step with a checkpoint (run long schedules in chunks; continue with --resume)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (on a shared CPU, 1 can be much faster than the default)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def overrides_of(args: argparse.Namespace) -> list[str]:
    return list(args.overrides) + ([f"data.root={args.data}"] if getattr(args, "data", None) else [])


def apply_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def stage_config(args: argparse.Namespace, stage_dir: Path) -> TrainConfig:
    """The config of a stage run: the checkpoint's own config on --resume, else --config; then --set."""
    ckpt_file = stage_dir / "checkpoint.safetensors"
    if args.resume:
        if not ckpt_file.is_file():
            raise UserError(f"--resume: no checkpoint at {ckpt_file}")
        cfg = load_checkpoint(ckpt_file).config
        return apply_overrides(cfg, overrides_of(args)).validate("--resume config + --set")
    if ckpt_file.exists():
        raise UserError(f"{ckpt_file} exists: pass --resume to continue that run, or choose another --out")
    return load_config(args.config, overrides_of(args))


def write_config(cfg: TrainConfig, stage_dir: Path) -> None:
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "config.yaml").write_text(dump_config(cfg))


def run_stage(
    stage: Stage, cfg: TrainConfig, stage_dir: Path, info: DistInfo, args: argparse.Namespace, label: str
) -> Path:
    """Train a stage as the run flags say (--resume, --until, --no-progress); prints the checkpoint."""
    path = train(
        stage,
        cfg,
        stage_dir,
        info,
        resume=args.resume,
        show_progress=not args.no_progress,
        until=args.until,
    )
    if info.is_main:
        print(f"{label} checkpoint: {path}")
    return path


def run_cli(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Call `main`, turning expected failures into one-line messages (exit 2 for bad input)."""
    prog = Path(sys.argv[0]).stem if argv is None else "training"
    try:
        main(argv)
    except (UserError, ConfigError, DataError, FileNotFoundError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteLossError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (resume from the last checkpoint with --resume)", file=sys.stderr)
        sys.exit(130)
