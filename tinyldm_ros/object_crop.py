"""OpenCV pixels of the virtual camera (tinyldm_ros.virtual_camera): the input image re-sampled as the
rotated, training-FOV camera sees it, white outside the object's mask. The mask is warped and
averaged like the pixels, so its edge comes out anti-aliased over about one model pixel, as the
training renders' edges are; feather_px blurs it further (for a ragged segmentation).

Time and memory follow the image and the model size, never the focal length: the part of the image
the crop covers (at most the whole image) is first shrunk with INTER_AREA by the integer factor that
brings it near OVERSAMPLE x the model size, then warped (one homography) straight to that size, then
INTER_AREA-shrunk to the model size. A long lens whose training-FOV crop is 4x the image costs less
than a short one, not 16x more.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from tinyldm_ros.virtual_camera import training_intrinsics, virtual_to_source_homography

# The warp samples bilinearly at OVERSAMPLE x the model size and INTER_AREA averages that down, so
# each model pixel is the mean of OVERSAMPLE^2 samples (anti-aliased like the training renders).
OVERSAMPLE = 4


def _shift(dx: float, dy: float, sx: float = 1.0, sy: float = 1.0) -> np.ndarray:
    """Continuous -> OpenCV pixel index maps: q = (p - (dx, dy)) / (sx, sy) - 0.5."""
    return np.array([[1 / sx, 0.0, -dx / sx - 0.5], [0.0, 1 / sy, -dy / sy - 0.5], [0.0, 0.0, 1.0]])


def _covered_region(H: np.ndarray, m: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Integer bounds (x0, y0, x1, y1) of the input image that the virtual image's square covers (its
    corners bound it: a homography keeps straight edges), plus a pixel for interpolation; None when
    it misses the image."""
    corners = H @ np.array([[0, m, 0, m], [0, 0, m, m], [1, 1, 1, 1]], dtype=np.float64)
    xy = corners[:2] / corners[2]
    x0, y0 = (math.floor(v) - 1 for v in xy.min(axis=1))
    x1, y1 = (math.ceil(v) + 1 for v in xy.max(axis=1))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _shrink(region: np.ndarray, factor: int) -> tuple[np.ndarray, float, float]:
    if factor <= 1:
        return region, 1.0, 1.0
    h, w = region.shape[:2]
    small = cv2.resize(
        region, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA
    )
    return small, w / small.shape[1], h / small.shape[0]


def virtual_crop(
    rgb: np.ndarray,
    K: np.ndarray,
    view: np.ndarray,
    size: int,
    fov_deg: float,
    alpha: np.ndarray | None = None,
    feather_px: float = 0.0,
) -> np.ndarray:
    """float32 (size, size, 3) in [0, 1]: what the camera `view` (4x4, input camera frame; only its
    rotation counts) with the training field of view sees of `rgb` (uint8 (H, W, 3), intrinsics K).

    alpha: (H, W) bool / uint8 object mask; outside it the crop is white, its edge additionally
    blurred by a Gaussian of feather_px model pixels (0: none; bench_clutter.py measured 0.5 px
    costing 0.9 dB with exact masks). Parts of the crop outside the image are white, as in the
    centre crop.
    """
    height, width = rgb.shape[:2]
    m = OVERSAMPLE * size
    K_virtual = training_intrinsics(m, fov_deg)
    H = virtual_to_source_homography(K, view[:3, :3], K_virtual)
    region = _covered_region(H, m, width, height)
    white = np.ones((size, size, 3), np.float32)
    if region is None:
        return white
    x0, y0, x1, y1 = region
    # Input pixels per oversampled virtual pixel at the crop centre; shrink by its integer part.
    factor = max(1, int(K[0, 0] / K_virtual[0, 0]))
    small, sx, sy = _shrink(np.ascontiguousarray(rgb[y0:y1, x0:x1]), factor)
    warp = _shift(x0, y0, sx, sy) @ H @ np.linalg.inv(_shift(0.0, 0.0))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    seen = cv2.warpPerspective(small, warp, (m, m), flags=flags, borderValue=(255, 255, 255))
    seen = seen.astype(np.float32) * np.float32(1.0 / 255.0)
    if alpha is not None:
        a_small, _, _ = _shrink(
            np.ascontiguousarray(alpha[y0:y1, x0:x1], dtype=np.uint8) * np.uint8(255), factor
        )
        a = cv2.warpPerspective(a_small, warp, (m, m), flags=flags, borderValue=0).astype(np.float32)
        a *= np.float32(1.0 / 255.0)
        if feather_px > 0:
            a = cv2.GaussianBlur(a, (0, 0), sigmaX=feather_px * OVERSAMPLE)
        seen = seen * a[..., None] + (1.0 - a[..., None])
    return cv2.resize(seen, (size, size), interpolation=cv2.INTER_AREA)


def roi_alpha(height: int, width: int, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """(H, W) bool: the rectangle of a region of interest (the object is somewhere inside)."""
    alpha = np.zeros((height, width), bool)
    alpha[y0 : y0 + h, x0 : x0 + w] = True
    return alpha


def grabcut_mask(rgb: np.ndarray, box: tuple[int, int, int, int], max_side: int = 96) -> np.ndarray | None:
    """(H, W) bool: the object inside the region of interest `box` (x0, y0, w, h), separated from the
    background by OpenCV's GrabCut (colour models of the box's inside and a 10 % margin around it),
    run on the region shrunk to max_side pixels so that it costs the same for any image (~10-30 ms).
    None when it finds next to nothing (under 5 % of the box): the caller keeps the box."""
    height, width = rgb.shape[:2]
    x0, y0, w, h = box
    margin = max(2, round(0.1 * max(w, h)))
    rx0, ry0 = max(0, x0 - margin), max(0, y0 - margin)
    rx1, ry1 = min(width, x0 + w + margin), min(height, y0 + h + margin)
    scale = min(1.0, max_side / max(rx1 - rx0, ry1 - ry0))
    size = (max(1, round((rx1 - rx0) * scale)), max(1, round((ry1 - ry0) * scale)))
    small = cv2.resize(np.ascontiguousarray(rgb[ry0:ry1, rx0:rx1]), size, interpolation=cv2.INTER_AREA)
    rect = (
        round((x0 - rx0) * scale),
        round((y0 - ry0) * scale),
        max(1, min(size[0] - 1, round(w * scale))),
        max(1, min(size[1] - 1, round(h * scale))),
    )
    labels = np.zeros(small.shape[:2], np.uint8)
    models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(small, labels, rect, *models, 3, cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # a box too thin to model (OpenCV refuses a rectangle without background)
        return None
    fg = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)
    if fg.sum() < 0.05 * rect[2] * rect[3]:
        return None
    mask = np.zeros((height, width), bool)
    full = cv2.resize(fg, (rx1 - rx0, ry1 - ry0), interpolation=cv2.INTER_NEAREST)
    mask[ry0:ry1, rx0:rx1] = full > 0
    return mask
