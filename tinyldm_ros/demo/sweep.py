"""`make demo`: nvs_node on the shipped default model, fed by demo_source, end to end over DDS.

    python -m tinyldm_ros.demo [--model models/default] [--data DIR] [--out out/demo]

Runs the same two nodes as `ros2 launch tinyldm_ros demo.launch.py`, in this one process (no
`ros2 launch` needed): demo_source replays a rendered test object's views (demo/) with camera_info and
target poses at fixed azimuths around the object; nvs_node synthesizes those views. When every
view has been replayed it writes `<out>/sweep.png` (rows: input frames; columns: the model's input
crop, then one view per azimuth), prints a latency summary and exits.

The sweep's targets come from demo_source, which knows the world's up (+z): each keeps the input
camera's elevation, as the training pairs do. The node's own orbit targets turn about the input
camera's up axis, which is the world's only for a level camera; from the replayed views (up to 85
deg above the car) an orbit of 180 deg would look at the car from below the ground.
"""

# ruff: noqa: E402 - OPENBLAS_NUM_THREADS must be set before numpy loads
from __future__ import annotations

import os

# The node's setting (see tinyldm_ros/node.py): numpy's BLAS on one thread, measured faster here.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from tinyldm_ros.package_paths import CHECKOUT

REPO = CHECKOUT
DEFAULT_MODEL = REPO / "models" / "default"
DEFAULT_AZIMUTHS = [45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]


def missing_model_message(model: Path) -> str | None:
    missing = [
        f
        for f in ("model.json", "encoder.onnx", "denoiser.onnx", "decoder.onnx")
        if not (model / f).is_file()
    ]
    if not missing:
        return None
    return (
        f"make demo: no usable model at {model} (missing: {', '.join(missing)}).\n"
        "The default model is trained and exported by the project's own CLIs (issue 'Default model');\n"
        "until it is committed there is nothing to run. To try the pipeline on another model folder:\n"
        "  python -m tinyldm_ros.demo --model <model folder>"
    )


def find_data(data: Path | None) -> Path:
    """--data, else the package's demo car (demo/: a rendered test-split car, see demo/README.md)."""
    from tinyldm_ros.demo.source import default_demo_data

    return data if data is not None else default_demo_data()


def write_sweep(path: Path, rows: list[np.ndarray]) -> None:
    from PIL import Image as PILImage

    gap = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
    sheet = np.concatenate([x for row in rows for x in (row, gap)][:-1], axis=0)
    scale = max(1, 256 // rows[0].shape[0])  # 32 px tiles are too small to look at
    sheet = sheet.repeat(scale, axis=0).repeat(scale, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(sheet).save(path)


def sweep_target_names(azimuths: list[float]) -> list[str]:
    """The node's names for the sweep's views: demo_source's target_poses, in order."""
    return [f"pose_{i}" for i in range(len(azimuths))]


def make_nodes(args: argparse.Namespace, data: Path):
    """nvs_node and demo_source set up for the sweep (rclpy initialised): the source publishes one
    fixed target per azimuth, level with each input view; the node synthesizes exactly those."""
    from rclpy.parameter import Parameter

    from tinyldm_ros.demo.source import DemoSource
    from tinyldm_ros.node import NvsNode

    nvs = NvsNode(
        parameter_overrides=[
            Parameter("model_dir", value=str(args.model)),
            Parameter("orbit_azimuths_deg", type_=Parameter.Type.DOUBLE_ARRAY, value=[]),
            Parameter("object_distance", value=args.object_distance),
        ]
    )
    source = DemoSource(
        parameter_overrides=[
            Parameter("data", value=str(data)),
            Parameter("rate_hz", value=args.rate),
            Parameter("max_views", value=args.frames),
            Parameter("loop", value=False),
            Parameter("target_azimuths_deg", value=[float(a) for a in args.azimuths]),
            Parameter("orbit_speed_deg_s", value=0.0),
        ]
    )
    return nvs, source


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from tinyldm_ros.conversions import image_to_numpy
    from tinyldm_ros.mosaic import mosaic
    from tinyldm_ros.msg import SynthesizedViews

    data = find_data(args.data)
    rclpy.init()
    results: list = []
    lock = threading.Lock()
    try:
        nvs, source = make_nodes(args, data)
        sink = rclpy.create_node("demo_sink")

        def on_views(msg) -> None:
            with lock:
                results.append(msg)

        sink.create_subscription(SynthesizedViews, "synthesized_views", on_views, 50)
        # One executor thread, as each node's main() runs it: the callbacks are light (the node
        # synthesizes on its own worker thread). With rclpy's MultiThreadedExecutor (3 threads), in
        # about a third of the runs engine calls took 0.2-1.2 s and 5-13 of 24 frames were dropped;
        # stack samples during those calls found the executor threads in Python (its wait loop, the
        # source's callbacks), contending with the engine's threads for the GIL. With one executor
        # thread: 8 of 8 runs clean (2026-11-26).
        executor = SingleThreadedExecutor()
        for node in (nvs, source, sink):
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        # Wait for DDS discovery before the source starts, so the first frames are not lost.
        deadline = time.monotonic() + 10.0
        source.timer.cancel()
        spinner.start()
        while time.monotonic() < deadline and not (
            nvs._outputs.wants_views() and source.image_pub.get_subscription_count()
        ):
            time.sleep(0.05)
        # The targets come as a PoseArray with the first frame, too late for the node's own warm-up.
        nvs.warm_up(len(args.azimuths))
        source.timer.reset()
        n = len(source.instance.views)
        deadline = time.monotonic() + n / args.rate + 20.0
        while time.monotonic() < deadline and not (
            source.done and nvs._queue.slot is None and len(results) >= 1
        ):
            time.sleep(0.05)
        time.sleep(0.5)  # the last output in flight
        stats = nvs.stats.snapshot()
        provider = nvs.provider
        executor.shutdown()
        for node in (sink, source, nvs):
            node.destroy_node()
    finally:
        rclpy.try_shutdown()

    if not results:
        print("demo: the node produced no views (see the log above)", file=sys.stderr)
        return 1
    wanted = sweep_target_names(args.azimuths)
    rows = []
    for msg in results[:: max(1, len(results) // args.rows)][: args.rows]:
        names = list(msg.target_names)
        views = np.stack([image_to_numpy(msg.views[names.index(w)])[0] for w in wanted if w in names])
        rows.append(mosaic(image_to_numpy(msg.input_crop)[0], views))
    sweep = args.out / "sweep.png"
    write_sweep(sweep, rows)

    total = np.array([m.total_ms for m in results])
    synth = np.array([m.synthesis_ms for m in results])
    summary = {
        "model": str(args.model),
        "data": str(data),
        "provider": provider,
        "sampler": results[0].sampler,
        "frames_sent": n,
        "frames_processed": len(results),
        "frames_dropped": stats["dropped"],
        "targets_per_frame": len(results[0].views),
        "latency_ms_p50": float(np.percentile(total, 50)),
        "latency_ms_p95": float(np.percentile(total, 95)),
        "synthesis_ms_p50": float(np.percentile(synth, 50)),
        "sweep": str(sweep),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"demo: {len(results)}/{n} frames -> {summary['targets_per_frame']} views each "
        f"({summary['sampler']}) on {provider}; "
        f"image-in to views-out latency p50 {summary['latency_ms_p50']:.1f} ms, p95 "
        f"{summary['latency_ms_p95']:.1f} ms (engine p50 {summary['synthesis_ms_p50']:.1f} ms); "
        f"{stats['dropped']} dropped\n"
        f"demo: sweep (input crop | azimuths {', '.join(f'{a:g}' for a in args.azimuths)}) -> {sweep}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help="model folder (default: %(default)s)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="SRN-layout views to replay (default: the package's demo car, demo/)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "out" / "demo", help="output folder")
    parser.add_argument("--frames", type=int, default=24, help="views of the object to replay")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate (Hz)")
    parser.add_argument("--rows", type=int, default=6, help="input frames in the sweep")
    parser.add_argument(
        "--azimuths", type=float, nargs="+", default=DEFAULT_AZIMUTHS, help="sweep azimuths (deg)"
    )
    parser.add_argument(
        "--object-distance",
        type=float,
        default=1.3,
        help="metres from camera to object (the rendered cars: 1.3)",
    )
    args = parser.parse_args(argv)
    problem = missing_model_message(args.model)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        return run(args)
    except (RuntimeError, FileNotFoundError, ValueError) as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
