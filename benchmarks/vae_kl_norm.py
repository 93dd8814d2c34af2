"""Why the VAE loss sums its KL (LDM) rather than averaging it: a short paper-VAE run with each choice.

    python benchmarks/vae_kl_norm.py --data data/cars --steps 1500

The paper gives only the weights (1.0 x L1 + 5.0 x KL). Trains the `paper` VAE from the same seed for
--steps Adam steps with `kl_norm="ldm"` (per-sample sums, the default) and `kl_norm="mean"` (KL
averaged per latent element), then reports on held-out objects (every 5th test view): PSNR, SSIM,
CIEDE2000 of the reconstruction from the posterior mean, the same PSNR when the latents are shuffled
across images (equal to the unshuffled PSNR when the latent carries nothing: posterior collapse), the
mean KL per latent element, and the spread of the means. Prints a table and writes
benchmarks/results/vae_kl_norm.json. CPU, single thread (a few minutes per run).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tinyldm_ros.preprocess import postprocess, uint8_to_model  # noqa: E402
from training import metrics  # noqa: E402
from training.srn_dataset import all_images, load_split  # noqa: E402
from training.vae import VAE, VAEConfig, kl_to_standard_normal, vae_loss  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def run(kl_norm: str, train: torch.Tensor, test_u8: np.ndarray, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    vae = VAE(VAEConfig.paper())
    opt = torch.optim.Adam(vae.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        x = train[torch.randint(len(train), (args.batch_size,), generator=gen)]
        x_hat, mean, logvar = vae(x, generator=gen)
        loss, _ = vae_loss(x, x_hat, mean, logvar, kl_norm=kl_norm)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    vae.eval()
    with torch.no_grad():
        mean, logvar = vae.encode(torch.from_numpy(uint8_to_model(test_u8)))
        rec = postprocess(vae.decode(mean).numpy())
        shuffled = postprocess(vae.decode(mean[torch.randperm(len(mean), generator=gen)]).numpy())
    m = metrics.all_metrics(rec, test_u8)
    return {
        "kl_norm": kl_norm,
        "psnr": float(np.mean(m["psnr"])),
        "ssim": float(np.mean(m["ssim"])),
        "ciede2000": float(np.nanmean(m["ciede2000"])),
        "psnr_shuffled_latents": float(np.mean(metrics.psnr(shuffled, test_u8))),
        "kl_per_latent_element": float(kl_to_standard_normal(mean, logvar).mean()),
        "latent_mean_std": float(mean.std()),
        "posterior_std": float((0.5 * logvar).exp().mean()),
        "train_seconds": seconds,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="SRN-layout dataset root with train/ and test/")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train-objects", type=int, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    train_inst = load_split(args.data, "train", 32, max_instances=args.max_train_objects, progress=False)
    test_inst = load_split(args.data, "test", 32, progress=False)
    train = torch.from_numpy(uint8_to_model(all_images(train_inst)))
    test_u8 = np.concatenate([inst.images[::5] for inst in test_inst])
    rows = [run(k, train, test_u8, args) for k in ("ldm", "mean")]
    print(f"{'kl_norm':8s} {'PSNR':>7s} {'SSIM':>6s} {'dE2000':>7s} ", end="")
    print(f"{'PSNR shuf':>9s} {'KL/elem':>8s} {'std(mu)':>8s}")
    for r in rows:
        print(
            f"{r['kl_norm']:8s} {r['psnr']:7.2f} {r['ssim']:6.3f} {r['ciede2000']:7.2f} "
            f"{r['psnr_shuffled_latents']:9.2f} {r['kl_per_latent_element']:8.4f} {r['latent_mean_std']:8.4f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "vae_kl_norm.json"
    result = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "train_views": len(train),
        "test_views": len(test_u8),
        "machine": platform.platform(),
        "torch": torch.__version__,
        "rows": rows,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
