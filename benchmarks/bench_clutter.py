"""Robot-scene benchmark: held-out test cars off-centre in a cluttered camera image, and the node's
image path (tinyldm_ros.image_preparation + the engine) with and without object isolation.

    python benchmarks/bench_clutter.py [--cars 16] [--model models/default]

Each car (the renderer's test split, never trained on) is seen from a training-like viewpoint (radius
1.3 x a random scale of 0.5-3 m per model unit, elevation 5-40 deg) by a level 640x480 camera with a
77 deg field of view aimed past it, so the car lands at a random place in the image; it is composited
onto a random crop of a photograph from scikit-image (astronaut, coffee, chelsea, rocket, brick,
gravel; bundled with the package, no download), with its exact mask and depth (16UC1, mm). Views at
four azimuths around the car are compared (PSNR, dB) with the true renders, for:

    no_mask     today's path: the training FOV around the principal point, the photo behind the car
    mask_depth  mask + depth: the virtual camera aimed at the car, white background, depth distance
    roi_only    the mask's bounding box as a RegionOfInterest: aimed, white outside the box
    clean       the car rendered centred on white by the training camera (the model's own setting)

no_mask and roi_only get the true distance as their object_distance parameter. Writes
benchmarks/results/bench_clutter.json, docs/images/bench_clutter.png (rows: cars; columns: input
scene, isolated crop, the mask_depth views, the true views) and docs/images/virtual_camera.png (one
scene with the principal-point crop and the virtual camera's crop outlined, and the two crops).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The checkout before the colcon install space's copy of the package (a script's folder replaces "" on
# sys.path, so PYTHONPATH's install space would come first and run the last build's code).
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
sys.path.insert(2, str(Path(__file__).resolve().parent.parent / "test"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from node_process import REPO, machine, resolve_model, write_result  # noqa: E402
from scene_render import SRN_F, SRN_SIZE, camera_info, render  # noqa: E402
from sensor_msgs.msg import RegionOfInterest  # noqa: E402

from tinyldm_ros.conversions import numpy_to_image  # noqa: E402
from tinyldm_ros.engine import Engine  # noqa: E402
from tinyldm_ros.image_preparation import model_poses, prepare_image  # noqa: E402
from tinyldm_ros.object_isolation import ObjectCues  # noqa: E402
from tinyldm_ros.poses import invert_rigid, look_at, relative_transform, sphere_pose  # noqa: E402
from tinyldm_ros.preprocess import to_uint8_rgb  # noqa: E402
from tinyldm_ros.virtual_camera import training_intrinsics, virtual_to_source_homography  # noqa: E402
from training.objects import OBJECT_SETS  # noqa: E402
from training.render import RenderSpec, instance_rng  # noqa: E402
from training.tiny_renderer import Camera, TinyRenderer  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "brick", "gravel")
ROBOT = Camera(400.0, 320.0, 240.0, 640, 480)
AZIMUTHS = (60.0, 120.0, 180.0, 270.0)
METHODS = ("no_mask", "mask_depth", "roi_only", "clean")
TRAINING_FOV = 52.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def photo_background(rng: np.random.Generator) -> np.ndarray:
    photo = getattr(skimage.data, PHOTOS[rng.integers(len(PHOTOS))])()
    if photo.ndim == 2:
        photo = cv2.cvtColor(photo, cv2.COLOR_GRAY2RGB)
    scale = max(ROBOT.width / photo.shape[1], ROBOT.height / photo.shape[0]) * rng.uniform(1.0, 1.5)
    size = (int(np.ceil(photo.shape[1] * scale)), int(np.ceil(photo.shape[0] * scale)))
    photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y = rng.integers(0, photo.shape[0] - ROBOT.height + 1)
    x = rng.integers(0, photo.shape[1] - ROBOT.width + 1)
    return photo[y : y + ROBOT.height, x : x + ROBOT.width]


def robot_camera(c2w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A level camera at the training camera's centre, aimed up to ~22 deg left/right and ~15 deg
    up/down past the car (so the car is anywhere in the middle ~70 % of the image)."""
    right = rng.uniform(-0.5, 0.5)
    up = rng.uniform(-0.3, 0.3)
    return look_at(c2w[:3, 3], c2w[:3, 0] * right + np.array([0.0, 0.0, up]), up=(0.0, 0.0, 1.0))


def one_car(index: int, renderer: TinyRenderer, engine: Engine, rng: np.random.Generator) -> dict:
    spec = RenderSpec(object_set="cars")
    renderer.set_scene(OBJECT_SETS["cars"](instance_rng(spec, "test", index), "test"))
    az, el = rng.uniform(0, 360), rng.uniform(5, 40)
    c2w = sphere_pose(1.3, az, el)
    targets = np.stack([sphere_pose(1.3, az + d, el) for d in AZIMUTHS])
    srn = Camera(SRN_F, SRN_SIZE / 2, SRN_SIZE / 2, SRN_SIZE, SRN_SIZE)
    truth = np.stack([to_uint8_rgb(renderer.render(t, srn), 32) for t in targets])
    clean = to_uint8_rgb(renderer.render(c2w, srn), 32)

    scale = rng.uniform(0.5, 3.0)  # metres per model unit: the car's size and distance
    for _ in range(20):  # the whole car in view, 8 px from the edges: a cut-off car is another task
        robot_c2w = robot_camera(c2w, rng)
        rgb, mask, depth = render(renderer, robot_c2w, ROBOT)
        if not (mask[:8].any() or mask[-8:].any() or mask[:, :8].any() or mask[:, -8:].any()):
            break
    scene = np.where(mask[..., None], rgb, photo_background(rng))
    metric_targets = invert_rigid(robot_c2w) @ targets
    metric_targets[:, :3, 3] *= scale
    true_distance = 1.3 * scale

    msg, info = numpy_to_image(scene, "rgb8"), camera_info(ROBOT)
    ys, xs = np.nonzero(mask)
    roi = RegionOfInterest(
        x_offset=int(xs.min()), y_offset=int(ys.min()), width=int(np.ptp(xs) + 1), height=int(np.ptp(ys) + 1)
    )
    depth_mm = np.round(depth * scale * 1000.0).astype(np.uint16)
    cues = {
        "no_mask": None,
        "mask_depth": ObjectCues(
            numpy_to_image(mask.astype(np.uint8) * 255, "mono8"), numpy_to_image(depth_mm, "16UC1")
        ),
        "roi_only": ObjectCues(roi=roi),
    }
    out = {"car": index, "scale": round(scale, 3), "views": {}, "crops": {}}
    up = robot_c2w[:3, :3].T @ [0.0, 0.0, 1.0]  # gravity in the camera frame (the node: orbit_up_frame)
    for method, cue in cues.items():
        image = prepare_image(msg, info, 32, TRAINING_FOV, cue, up=up)
        distance = image.object_distance or true_distance
        views = engine.synthesize(image.pixels, model_poses(metric_targets, image, 1.3, distance))
        out["views"][method], out["crops"][method] = views, image.crop
        if method == "mask_depth":
            out["distance_error"] = round(distance / true_distance - 1.0, 4)
            out["view"] = image.view
    out["views"]["clean"] = engine.synthesize(clean, relative_transform(c2w, targets))
    out["crops"]["clean"] = clean
    out["psnr"] = {
        m: float(np.mean([psnr(v, t) for v, t in zip(out["views"][m], truth, strict=True)])) for m in METHODS
    }
    out["scene"], out["truth"] = scene, truth
    return out


def figure(rows: list[dict], path: Path) -> None:
    """Rows: cars; columns: the scene (its middle, scaled), the isolated crop, mask_depth views, truth."""
    tile = 96
    gap = np.full((tile, 4, 3), 255, np.uint8)
    lines = []
    for r in rows:
        scene = cv2.resize(r["scene"], (tile * 4 // 3, tile), interpolation=cv2.INTER_AREA)
        big = lambda a: cv2.resize(a, (tile, tile), interpolation=cv2.INTER_NEAREST)  # noqa: E731
        parts = [scene, gap, big(r["crops"]["mask_depth"]), gap]
        parts += [big(v) for v in r["views"]["mask_depth"]] + [gap] + [big(t) for t in r["truth"]]
        lines += [
            np.concatenate(parts, axis=1),
            np.full((4, sum(p.shape[1] for p in parts), 3), 255, np.uint8),
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(lines[:-1], axis=0), cv2.COLOR_RGB2BGR))
    print(f"wrote {path}")


def outline(view: np.ndarray, samples: int = 64) -> np.ndarray:
    """The border of the virtual camera's square in the robot image (pixels, OpenCV index)."""
    K_virtual = training_intrinsics(1, TRAINING_FOV)
    H = virtual_to_source_homography(camera_matrix(), view[:3, :3], K_virtual)
    t = np.linspace(0.0, 1.0, samples)
    edge = np.concatenate(
        [
            np.stack([t, 0 * t]),
            np.stack([1 + 0 * t, t]),
            np.stack([1 - t, 1 + 0 * t]),
            np.stack([0 * t, 1 - t]),
        ],
        1,
    )
    p = H @ np.vstack([edge, np.ones(edge.shape[1])])
    return (p[:2] / p[2]).T - 0.5


def camera_matrix() -> np.ndarray:
    return np.array([[ROBOT.f, 0, ROBOT.cx], [0, ROBOT.f, ROBOT.cy], [0, 0, 1.0]])


def geometry_figure(r: dict, path: Path) -> None:
    """The robot image with the principal-point crop (red) and the virtual camera's (green; curved
    edges are straight lines of the rotated camera), then the two crops the model would see."""
    scene = r["scene"].copy()
    for view, colour in ((np.eye(4), (220, 40, 40)), (r["view"], (40, 200, 40))):
        pts = np.round(outline(view) * 4).astype(np.int32)  # 2 fractional bits for smooth lines
        cv2.polylines(scene, [pts], True, colour, 2, cv2.LINE_AA, shift=2)
    h = scene.shape[0]
    big = lambda a: cv2.resize(a, (h // 2, h // 2), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    side = np.concatenate([big(r["crops"]["no_mask"]), big(r["crops"]["mask_depth"])], axis=0)
    cv2.imwrite(
        str(path),
        cv2.cvtColor(np.concatenate([scene, np.full((h, 6, 3), 255, np.uint8), side], 1), cv2.COLOR_RGB2BGR),
    )
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cars", type=int, default=16)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    model = resolve_model(args.model)
    engine = Engine(model)
    rng = np.random.default_rng(args.seed)
    t0 = time.monotonic()
    with TinyRenderer() as renderer:
        rows = [one_car(i, renderer, engine, rng) for i in range(args.cars)]
    per_car = [
        {"car": r["car"], "scale": r["scale"], "distance_error": r["distance_error"], **r["psnr"]}
        for r in rows
    ]
    means = {m: round(float(np.mean([r["psnr"][m] for r in rows])), 2) for m in METHODS}
    gap = round(means["clean"] - means["mask_depth"], 2)
    print(means, f"clean - mask_depth = {gap} dB", f"({time.monotonic() - t0:.0f} s)")
    result = {
        **means,
        "mask_depth_below_clean_db": gap,
        "target_within_1db": bool(gap <= 1.0),
        "cars": args.cars,
        "azimuths_deg": list(AZIMUTHS),
        "model": str(model.relative_to(REPO) if model.is_relative_to(REPO) else model),
        "per_car": per_car,
        "machine": machine(),
    }
    write_result(REPO / "benchmarks" / "results" / "bench_clutter.json", "bench_clutter", argv, result)
    figure(rows[:4], REPO / "docs" / "images" / "bench_clutter.png")
    geometry_figure(rows[1], REPO / "docs" / "images" / "virtual_camera.png")


if __name__ == "__main__":
    main()
