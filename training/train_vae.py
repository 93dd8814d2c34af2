"""Train the tiny VAE: `python -m training.train_vae --config paper --data data/cars --out runs/paper`.

Writes <out>/vae/: checkpoint.safetensors, config.yaml, log.csv, tb/, samples/step_*.png (top row:
held-out views, bottom row: their reconstructions from the latent mean).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from training.cli import (
    add_config_args,
    add_run_args,
    apply_threads,
    run_cli,
    run_stage,
    stage_config,
    write_config,
)
from training.config import TrainConfig
from training.distributed import DistInfo, setup, teardown
from training.grid import image_grid, to_uint8
from training.onnx_weights import vae_state_from_model_folder
from training.run_lock import run_lock
from training.trainer import Stage, seed_init
from training.vae import VAE, count_parameters, vae_loss
from training.views import DataError, EpochOrder, ViewSet, load_views, to_model_range


class VAEWithNoise(nn.Module):
    """VAE forward with the reparameterisation noise passed in, so it comes from the step's generator
    (reproducible on any device) while DDP still sees one forward call."""

    def __init__(self, vae: VAE, train_encoder: bool = True):
        super().__init__()
        self.vae = vae
        self.train_encoder = train_encoder

    def forward(
        self, x: torch.Tensor, eps: torch.Tensor, colour_source: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """colour_source: the image whose colour summary the decoder gets (default: x itself)."""
        # a frozen encoder gets no gradients (None, so the optimiser leaves it alone); its state stays
        # in the checkpoint so a fine-tune resumes from a full run and back
        with torch.set_grad_enabled(self.train_encoder and torch.is_grad_enabled()):
            mean, logvar = self.vae.encode(x)
        colour = self.vae.colour(x if colour_source is None else colour_source)
        return self.vae.decode(mean + eps * torch.exp(0.5 * logvar), colour), mean, logvar


def other_views(idx: torch.Tensor, offsets: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """For each view index, a uniformly drawn other view of the same object (itself if it has one)."""
    k = torch.searchsorted(offsets, idx, right=True) - 1
    lo, hi = offsets[k], offsets[k + 1]
    r = lo + (torch.rand(len(idx), generator=g) * (hi - lo - 1).clamp(min=1)).long()
    return r + ((r >= idx) & (hi - lo > 1)).long()


def preview_views(cfg: TrainConfig, fallback: ViewSet, count: int = 8, progress: bool = True) -> torch.Tensor:
    """`count` uint8 views spread over the validation split's objects (train split if there is none)."""
    try:
        views = load_views(cfg.data.root, cfg.data.val_split, cfg.data.image_size, count, progress)
    except DataError:
        views = fallback
    idx = torch.linspace(0, views.num_views - 1, count).round().long()
    return views.images[idx]


def build_stage(cfg: TrainConfig, views: ViewSet, info: DistInfo, preview: torch.Tensor) -> Stage:
    o = cfg.vae_train
    seed_init(o.seed)
    vae = VAE(cfg.vae)
    if o.init_from:
        vae.load_state_dict(vae_state_from_model_folder(o.init_from, vae))
    order = EpochOrder(views.num_views, o.batch_size, o.seed, info.rank, info.world_size)
    # the whole split lives on the training device: a batch is one gather, no host->device copy per step
    images = views.images.to(info.device)
    latent_shape = (cfg.vae.latent_channels, cfg.vae.latent_size, cfg.vae.latent_size)

    offsets = torch.from_numpy(views.offsets)
    cross_view = cfg.vae.colour_cond and o.colour_from == "other_view"

    def loss_fn(module: nn.Module, step: int, g: torch.Generator):
        idx = order.batch(step)
        x = to_model_range(images[idx.to(info.device)])
        eps = torch.randn((len(idx), *latent_shape), generator=g).to(info.device)
        colour_source = (
            to_model_range(images[other_views(idx, offsets, g).to(info.device)]) if cross_view else None
        )
        x_hat, mean, logvar = module(x, eps, colour_source)
        return vae_loss(x, x_hat.float(), mean.float(), logvar.float(), o.l1_weight, o.kl_weight, o.kl_norm)

    def sample_fn(model: nn.Module, step: int):
        x = to_model_range(preview).to(info.device)
        recon = model.decode(model.encode(x)[0], model.colour(x))
        return image_grid([list(to_uint8(x)), list(to_uint8(recon))])

    wrapped = VAEWithNoise(vae, o.train_encoder)
    return Stage("vae", vae, wrapped, o, loss_fn, sample_fn, {"params": count_parameters(vae)})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="train_vae", description=__doc__.split("\n")[0])
    add_config_args(p)
    add_run_args(p)
    args = p.parse_args(argv)
    apply_threads(args)
    with run_lock(args.out, "train_vae"):  # a second training on this --out is refused
        stage_dir = args.out / "vae"
        cfg = stage_config(args, stage_dir)
        info = setup(args.ddp, args.device)
        try:
            d = cfg.data
            views = load_views(
                d.root, d.train_split, d.image_size, d.max_instances, progress=not args.no_progress
            )
            if info.is_main:
                write_config(cfg, stage_dir)
                print(
                    f"VAE {count_parameters(VAE(cfg.vae)):,} params | {len(views.names)} objects, "
                    f"{views.num_views} views | {cfg.vae_train.iterations} iterations, "
                    f"batch {cfg.vae_train.batch_size} | device {info.device}"
                    + (f" x{info.world_size} (DDP)" if info.ddp else "")
                )
            stage = build_stage(cfg, views, info, preview_views(cfg, views, progress=not args.no_progress))
            run_stage(stage, cfg, stage_dir, info, args, "VAE")
        finally:
            teardown(info)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
