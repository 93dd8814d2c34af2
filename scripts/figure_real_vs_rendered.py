"""docs/images/real_vs_meshcars.png: the real SRN cars beside ours at the very same cameras.

    python scripts/figure_real_vs_rendered.py --real ../shared/real_srn --out docs/images/real_vs_meshcars.png

For each real car (cars_val of the SRN release): row 1 its views, row 2 a meshcars test car, row 3 a
procedural car, all at the real views' poses (radius 1.3) and SRN's field of view (f = 525 at 512 px =
131.25 at 128 px), on white. Ours are rendered at 128 px, as the sets are, with their set's light
(SRN_LIGHT for meshcars) and everything is area-downsampled to --size. Only this derived, downsampled
figure may go into the docs (ShapeNet terms): never copy the real files into the project.

Also prints, per row, the mean largest extent of the object's silhouette as a fraction of the image
width (non-white pixels), the framing check quoted in docs/dataset.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyldm_ros.preprocess import to_uint8_rgb  # noqa: E402
from training.cameras import SRN_CARS_FOCAL_128  # noqa: E402
from training.objects import SET_LIGHTS  # noqa: E402
from training.objects.cars import sample_car  # noqa: E402
from training.objects.mesh_cars import build_mesh_car, models_of  # noqa: E402
from training.srn_dataset import list_instances, read_views  # noqa: E402
from training.tiny_renderer import Camera, TinyRenderer  # noqa: E402

RENDER_SIZE = 128


def extent_fraction(images: np.ndarray) -> float:
    """Mean over views of the silhouette's larger side (pixels darker than near-white) / width."""
    fractions = []
    for im in images:
        ys, xs = np.nonzero((im < 245).any(axis=-1))
        fractions.append(max(np.ptp(xs), np.ptp(ys)) + 1 if len(xs) else 0)
    return float(np.mean(fractions)) / images.shape[2]


def render_row(renderer: TinyRenderer, parts, poses: np.ndarray, light, size: int) -> np.ndarray:
    renderer.set_scene(parts)
    c = RENDER_SIZE / 2.0
    cam = Camera(SRN_CARS_FOCAL_128 * RENDER_SIZE / 128.0, c, c, RENDER_SIZE, RENDER_SIZE)
    return np.stack([to_uint8_rgb(renderer.render(c2w, cam, light=light), size) for c2w in poses])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "real_srn")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "real_vs_meshcars.png")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    instances = list_instances(args.real, "val")
    test_models = models_of("test")
    rows, gap = [], args.size // 8
    with TinyRenderer() as renderer:
        for k, inst in enumerate(instances):
            real, poses = read_views(inst, args.size)
            rng = np.random.default_rng([args.seed, k])
            model = test_models[k % len(test_models)]
            mesh = render_row(renderer, build_mesh_car(model, rng), poses, SET_LIGHTS["meshcars"], args.size)
            procedural = render_row(renderer, sample_car(rng), poses, SET_LIGHTS.get("cars"), args.size)
            named = (("real " + inst.name, real), ("meshcars " + model.name, mesh), ("cars", procedural))
            for label, images in named:
                print(f"{label:60s} largest extent {extent_fraction(images):.3f} of the width")
                rows.append(images)
            rows.append(None)  # a gap between cars
    rows.pop()
    width = max(len(r) for r in rows if r is not None) * (args.size + gap) - gap
    height = sum(args.size + gap if r is not None else gap for r in rows) - gap
    sheet = np.full((height, width, 3), 255, np.uint8)
    y = 0
    for r in rows:
        if r is None:
            y += gap
            continue
        for i, im in enumerate(r):
            x = i * (args.size + gap)
            sheet[y : y + args.size, x : x + args.size] = im
        y += args.size + gap
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out, optimize=True)
    print(f"wrote {args.out} ({width}x{height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
