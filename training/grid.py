"""Image grids for the sample PNGs written during training and by `training.sample`."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [B,3,H,W] in [-1,1] -> uint8 [B,H,W,3]."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def image_grid(rows: list[list[np.ndarray | None]], pad: int = 2, scale: int = 2) -> Image.Image:
    """Rows of uint8 HxWx3 tiles (None = blank) -> one grey-padded image, upscaled `scale`x (nearest)."""
    tiles = [t for row in rows for t in row if t is not None]
    h, w = tiles[0].shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 160, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            if tile is not None:
                y, x = pad + i * (h + pad), pad + j * (w + pad)
                out[y : y + h, x : x + w] = tile
    img = Image.fromarray(out)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img
