"""Contact sheet of an SRN-layout dataset: a few objects per split, a few views each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.srn_format import SPLITS


def contact_sheet(root: Path, objects_per_split: int = 6, views: int = 8, min_tile: int = 64) -> Image.Image:
    """One row per object (train, then val, then test), `views` evenly spaced views per row; tiles
    are enlarged (nearest neighbour, integer factor) to at least `min_tile` pixels."""
    rows = []
    for split in SPLITS:
        split_dir = Path(root) / split
        if not split_dir.is_dir():
            continue
        for inst in sorted(p for p in split_dir.iterdir() if p.is_dir())[:objects_per_split]:
            files = sorted((inst / "rgb").glob("*.png"))
            picks = [files[i] for i in np.linspace(0, len(files) - 1, views).round().astype(int)]
            rows.append(np.concatenate([np.asarray(Image.open(f).convert("RGB")) for f in picks], axis=1))
    if not rows:
        raise ValueError(f"{root}: no instances to preview")
    sheet = np.concatenate(rows, axis=0)
    tile = rows[0].shape[0]
    k = max(1, -(-min_tile // tile))
    return Image.fromarray(sheet.repeat(k, axis=0).repeat(k, axis=1))
