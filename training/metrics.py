"""Image metrics for novel-view evaluation, on uint8 RGB images (N, H, W, 3) as a user would see them.

PSNR and SSIM are scikit-image's; the colour error is the mean CIEDE2000 (skimage.color) over object
pixels, where a pixel belongs to the object unless it is white background in *both* the ground truth
and the prediction (so a car painted where there is none, or missing where there is one, counts).
"""

from __future__ import annotations

import warnings

import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

# A pixel is background when all three channels are at least this bright. The renderer's background is
# pure white (255) and its brightest object face peaks near 220, so 245 separates them with room for
# the small deviations of a decoded background.
BACKGROUND_MIN = 245
PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; capped so means stay finite


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape or pred.ndim != 4 or pred.shape[-1] != 3:
        raise ValueError(
            f"expected two uint8 (N, H, W, 3) arrays of one shape, got {pred.shape} and {truth.shape}"
        )
    if pred.dtype != np.uint8 or truth.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {pred.dtype} and {truth.dtype}")


def psnr(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB, [N]."""
    _check_pair(pred, truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # divide by zero for identical images
        values = [peak_signal_noise_ratio(t, p, data_range=255) for p, t in zip(pred, truth, strict=True)]
    return np.minimum(np.array(values, dtype=np.float64), PSNR_CAP_DB)


def ssim(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image SSIM (skimage defaults: 7x7 uniform window, per channel then averaged), [N]."""
    _check_pair(pred, truth)
    return np.array(
        [
            structural_similarity(t, p, channel_axis=-1, data_range=255)
            for p, t in zip(pred, truth, strict=True)
        ],
        dtype=np.float64,
    )


def object_mask(pred: np.ndarray, truth: np.ndarray, background_min: int = BACKGROUND_MIN) -> np.ndarray:
    """[N, H, W] bool: not white background in the ground truth or in the prediction."""
    _check_pair(pred, truth)
    return ~((pred >= background_min).all(-1) & (truth >= background_min).all(-1))


def ciede2000(pred: np.ndarray, truth: np.ndarray, background_min: int = BACKGROUND_MIN) -> np.ndarray:
    """Per-image mean CIEDE2000 colour difference over object pixels, [N] (NaN if an image has none)."""
    mask = object_mask(pred, truth, background_min)
    de = deltaE_ciede2000(rgb2lab(truth.astype(np.float64) / 255.0), rgb2lab(pred.astype(np.float64) / 255.0))
    counts = mask.sum((1, 2))
    sums = np.where(mask, de, 0.0).sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


METRICS = {"psnr": psnr, "ssim": ssim, "ciede2000": ciede2000}
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ciede2000": False}


def object_chroma(images: np.ndarray, background_min: int = BACKGROUND_MIN) -> np.ndarray:
    """[N]: mean CIELAB chroma (sqrt(a*^2 + b*^2)) of each image's non-background pixels; 0 for none.
    Greys, whites and blacks score near 0, paint colours tens."""
    mask = ~(images >= background_min).all(-1)
    lab = rgb2lab(images)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    counts = mask.sum((1, 2))
    return np.where(counts > 0, np.where(mask, chroma, 0.0).sum((1, 2)) / np.maximum(counts, 1), 0.0)


def all_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """{"psnr", "ssim", "ciede2000"} -> per-image values [N]."""
    return {name: fn(pred, truth) for name, fn in METRICS.items()}
