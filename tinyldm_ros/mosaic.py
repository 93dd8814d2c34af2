"""Output image sizing and the quick-look mosaic (input crop | view 1 | view 2 | ...)."""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage


def resize_views(views: np.ndarray, size: int) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, size, size, 3); integer factors repeat pixels (exact, cheap),
    other sizes use bilinear filtering. size 0 or S returns the input."""
    _n, s = views.shape[0], views.shape[1]
    if size in (0, s):
        return views
    if size % s == 0:
        k = size // s
        return views.repeat(k, axis=1).repeat(k, axis=2)
    return np.stack(
        [np.asarray(PILImage.fromarray(v).resize((size, size), PILImage.BILINEAR)) for v in views]
    )


def mosaic(input_crop: np.ndarray, views: np.ndarray, gap: int = 2) -> np.ndarray:
    """One row: the model's input crop (scaled to the views' size), then every view, separated by
    white `gap`-pixel columns."""
    tiles = [resize_views(input_crop[None], views.shape[1])[0], *views]
    h = tiles[0].shape[0]
    gap_col = np.full((h, gap, 3), 255, np.uint8)
    row = []
    for i, tile in enumerate(tiles):
        if i:
            row.append(gap_col)
        row.append(tile)
    return np.concatenate(row, axis=1)
