"""Encode every view once with the trained VAE: `python -m training.encode_latents --out runs/paper`.

Reads <out>/vae/checkpoint.safetensors (EMA weights if the run kept them) and writes
<out>/latents.safetensors with, per split, the VAE posterior means `<split>.mean` [N, C, h, w]
(unscaled), the poses `<split>.c2w` [N, 4, 4] (float64) and `<split>.offsets` [objects + 1]; the
metadata holds the object names, `latent_scale` = 1 / std of the training means (design.md: the
diffusion runs on z = mean * latent_scale, which then has unit variance) and where it all came from.
The UNet trainer reads only this file, so it never runs the encoder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from training.checkpoint import load_checkpoint
from training.cli import run_cli
from training.config import TrainConfig, apply_overrides, to_dict
from training.distributed import pick_device
from training.errors import UserError
from training.vae import VAE
from training.views import DataError, ViewSet, load_views, to_model_range

FORMAT = "tinyldm-latents/1"


@torch.no_grad()
def encode_views(
    vae: VAE,
    views: ViewSet,
    device: torch.device,
    batch_size: int,
    desc: str = "encode",
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """VAE posterior means [N, C, h, w] (float32, CPU) of all views, and their colour summaries [N, 6]
    when the decoder is colour-conditioned (else None)."""
    means, colours = [], []
    steps = range(0, views.num_views, batch_size)
    for i in tqdm(steps, desc=desc, unit="batch", leave=False, disable=not progress):
        x = to_model_range(views.images[i : i + batch_size]).to(device)
        means.append(vae.encode(x)[0].float().cpu())
        colour = vae.colour(x)
        if colour is not None:
            colours.append(colour.float().cpu())
    # contiguous: with more than one latent channel the means are strided views (chunk of the
    # moments), and safetensors refuses to save those
    return torch.cat(means).contiguous(), (torch.cat(colours).contiguous() if colours else None)


def load_vae(ckpt_path: Path, device: torch.device) -> tuple[VAE, TrainConfig, int]:
    ckpt = load_checkpoint(ckpt_path, stage="vae")
    cfg = ckpt.config
    vae = VAE(cfg.vae)
    vae.load_state_dict(ckpt.inference_state_dict())
    return vae.to(device).eval(), cfg, ckpt.step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="encode_latents", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path, help="run folder holding vae/checkpoint.safetensors")
    p.add_argument("--vae", type=Path, help="VAE checkpoint (default: <out>/vae/checkpoint.safetensors)")
    p.add_argument("--data", help="dataset root (default: data.root of the VAE run)")
    p.add_argument(
        "--splits", default=None, help="comma-separated splits (default: train, val and test that exist)"
    )
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)

    ckpt_path = args.vae or args.out / "vae" / "checkpoint.safetensors"
    device = pick_device(args.device)
    vae, cfg, vae_step = load_vae(ckpt_path, device)
    if args.data:
        cfg = apply_overrides(cfg, [f"data.root={args.data}"])
    d = cfg.data
    if args.splits:
        splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    else:
        splits = list(dict.fromkeys([d.train_split, d.val_split, "test"]))
        splits = [s for s in splits if (Path(d.root) / s).is_dir()]
    if d.train_split not in splits:
        raise UserError(f"the training split {d.train_split!r} must be encoded (it sets latent_scale)")

    tensors: dict[str, torch.Tensor] = {}
    names: dict[str, list[str]] = {}
    for split in splits:
        views = load_views(d.root, split, d.image_size, d.max_instances, progress=not args.no_progress)
        mean, colour = encode_views(
            vae, views, device, args.batch_size, f"encode {split}", progress=not args.no_progress
        )
        tensors[f"{split}.mean"] = mean
        if colour is not None:
            tensors[f"{split}.colour"] = colour  # the sample grids of a colour-conditioned decoder need it
        tensors[f"{split}.c2w"] = torch.from_numpy(views.c2w.copy())
        tensors[f"{split}.offsets"] = torch.from_numpy(views.offsets.copy())
        names[split] = views.names
        print(f"{split}: {len(views.names)} objects, {views.num_views} views")

    train_mean = tensors[f"{d.train_split}.mean"]
    std = float(train_mean.double().std())
    if not np.isfinite(std) or std <= 0:
        raise DataError(f"the training latents have std {std}: the VAE at {ckpt_path} is broken")
    latent_scale = 1.0 / std
    meta = {
        "format": FORMAT,
        "latent_scale": repr(latent_scale),
        "latent_mean": repr(float(train_mean.double().mean())),
        "splits": json.dumps(splits),
        "names": json.dumps(names),
        "train_split": d.train_split,
        "val_split": d.val_split,
        "data_root": str(d.root),
        "image_size": str(d.image_size),
        "vae_checkpoint": str(ckpt_path),
        "vae_step": str(vae_step),
        "vae_config": json.dumps(to_dict(cfg.vae)),
    }
    out = args.out / "latents.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(out)
    print(f"latent_scale = {latent_scale:.6g} (train latent std {std:.6g}); wrote {out}")


class Latents:
    """The file written above, read back: scaled latents and poses of one split."""

    def __init__(self, path: Path):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"latents file {path} does not exist (run `python -m training.encode_latents`)"
            )
        with safe_open(str(path), framework="pt") as f:
            self.meta = dict(f.metadata() or {})
            self.tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{path}: format {self.meta.get('format')!r}, expected {FORMAT!r}")
        self.path = path
        self.latent_scale = float(self.meta["latent_scale"])
        self.splits: list[str] = json.loads(self.meta["splits"])
        self.names: dict[str, list[str]] = json.loads(self.meta["names"])

    def split(self, name: str) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """(z = mean * latent_scale [N,C,h,w] float32, c2w [N,4,4] float64, offsets [I+1] int64)."""
        if name not in self.splits:
            raise DataError(f"{self.path} has no split {name!r} (it has {', '.join(self.splits)})")
        z = self.tensors[f"{name}.mean"] * self.latent_scale
        return z, self.tensors[f"{name}.c2w"].numpy(), self.tensors[f"{name}.offsets"].numpy()

    def colour(self, name: str) -> torch.Tensor | None:
        """Colour summaries [N, 6] of a split's views (a colour-conditioned VAE's), else None."""
        return self.tensors.get(f"{name}.colour")


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
