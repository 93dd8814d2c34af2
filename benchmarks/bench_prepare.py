"""The node's per-frame image preparation (tinyldm_ros.image_preparation.prepare_image), alone.

    python benchmarks/bench_prepare.py [--repeats 30] [--label after]

Cases: 640x480 and 1280x720 rgb8 with camera_info (fx = width * 0.8, about 64 deg horizontal), the
same with a mask and a depth image (the object-isolation path, when the code has it), and a 1920x1080
camera with fx = 7872 (a long lens: the training field of view is 4x wider than the image). Reports the
median time and the peak Python-heap allocation (tracemalloc: numpy and OpenCV's Mat via numpy) per
frame; merges its cases under --label into benchmarks/results/bench_prepare.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the node sets it (tinyldm_ros/node.py)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The checkout before the colcon install space's copy of the package (a script's folder replaces "" on
# sys.path, so PYTHONPATH's install space would come first and run the last build's code).
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from node_process import REPO, machine  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402

from tinyldm_ros.conversions import numpy_to_image  # noqa: E402
from tinyldm_ros.image_preparation import prepare_image  # noqa: E402
from tinyldm_ros.node_params import NodeConfig  # noqa: E402
from tinyldm_ros.preprocess import CropBox  # noqa: E402, F401 - kept importable across versions

try:  # the object-isolation path (its absence is the "before" measurement)
    from tinyldm_ros.object_isolation import ObjectCues
except ImportError:
    ObjectCues = None


def camera_info(width: int, height: int, fx: float) -> CameraInfo:
    info = CameraInfo()
    info.width, info.height = width, height
    info.k = [fx, 0.0, width / 2.0, 0.0, fx, height / 2.0, 0.0, 0.0, 1.0]
    return info


def scene(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    mask = ((xx - 0.6 * width) ** 2 + (yy - 0.45 * height) ** 2 < (0.15 * height) ** 2).astype(np.uint8) * 255
    depth = np.full((height, width), 2000, np.uint16)
    depth[mask > 0] = 1500
    return rgb, mask, depth


def measure(fn, repeats: int) -> dict:
    fn()  # warm caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "median_ms": round(float(np.median(times)), 3),
        "min_ms": round(float(np.min(times)), 3),  # the least disturbed by other load on a shared CPU
        "peak_mb": round(peak / 2**20, 2),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--label", default="after")
    args = ap.parse_args(argv)
    cfg = NodeConfig()
    cases = {}
    for w, h, fx in ((640, 480, 512.0), (1280, 720, 1024.0), (1920, 1080, 7872.0)):
        rgb, mask, depth = scene(w, h)
        msg, info = numpy_to_image(rgb, "rgb8"), camera_info(w, h, fx)
        name = f"{w}x{h}_fx{fx:g}"
        cases[name] = measure(
            lambda m=msg, i=info: prepare_image(m, i, 32, cfg.training_fov_deg), args.repeats
        )
        if ObjectCues is not None:
            cues = ObjectCues(mask=numpy_to_image(mask, "mono8"), depth=numpy_to_image(depth, "16UC1"))
            cases[name + "_mask_depth"] = measure(
                lambda m=msg, i=info, c=cues: prepare_image(m, i, 32, cfg.training_fov_deg, c), args.repeats
            )
        print(name, {k: v for k, v in cases.items() if k.startswith(name)})
    out = REPO / "benchmarks" / "results" / "bench_prepare.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    old.setdefault("runs", {})[args.label] = {"machine": machine(), "cases": cases}
    old["benchmark"] = "bench_prepare"
    old["command"] = "python benchmarks/bench_prepare.py --label " + args.label
    out.write_text(json.dumps(old, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
