"""How long a camera image takes from one process to another over DDS here, without the node.

    python benchmarks/bench_dds.py [--sizes 640x480 1280x720] [--seconds 5]

A camera process publishes rgb8 images at 30 Hz; an echo process republishes each image's header at
once; this process measures stamp-to-echo latency and the share of images that arrived. Each size
and QoS (reliable, best effort) runs with Fast DDS's defaults and with the shipped profile
(config/fastdds_large_images.xml) in the environment of all three processes. This is the floor under
bench_node.py's latency. Prints a table, writes benchmarks/results/bench_dds.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_process import REPO, CameraProcess, isolate_dds, machine, write_result  # noqa: E402

from tinyldm_ros.dds_profile import large_image_profile, set_profile


def run_case(profile: Path | None, width: int, height: int, reliable: bool, args, index: int) -> dict:
    """One (profile, size, QoS) case; its processes get the profile through the environment."""
    env = dict(os.environ)
    set_profile(env, profile)
    ns = f"/bench_dds_{index}"
    qos = "reliable" if reliable else "sensor_data"
    # The listener is a fresh process too: a participant reads the profile once, at rclpy.init.
    listener = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--listen",
            ns,
            str(width),
            str(height),
            str(args.rate),
            str(args.warmup),
            str(args.seconds),
            qos,
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    out, _ = listener.communicate(timeout=args.warmup + args.seconds + 60)
    result = json.loads(out.strip().splitlines()[-1])
    result.update(
        {"width": width, "height": height, "qos": qos, "fastdds_profile": str(profile) if profile else None}
    )
    return result


def _listen(ns: str, width: str, height: str, rate: str, warmup: str, seconds: str, qos: str) -> None:
    """Starts the echo and camera processes (inheriting this environment) and measures."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile
    from std_msgs.msg import Header

    rclpy.init()
    node = rclpy.create_node("bench_dds_listener", namespace=ns)
    echoes: list[tuple[float, float]] = []
    node.create_subscription(
        Header,
        "echo",
        lambda m: echoes.append((time.time(), m.stamp.sec + m.stamp.nanosec * 1e-9)),
        QoSProfile(depth=100),
    )
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    echo = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "node_process.py"), "echo", ns, qos], cwd=REPO
    )
    camera = None
    try:
        deadline = time.monotonic() + 30
        while not node.count_publishers(node.resolve_topic_name("echo")) and time.monotonic() < deadline:
            time.sleep(0.1)
        camera = CameraProcess(
            ns, int(width), int(height), float(rate), float(warmup), float(seconds), qos == "reliable"
        )
        t_start = float(camera.wait_for("start")[0])
        end = camera.wait_for("end")
        t_end, sent = float(end[0]), int(end[1])
        time.sleep(1.0)
        latency = np.array([(r - s) * 1e3 for r, s in list(echoes) if t_start <= s <= t_end])
        print(
            json.dumps(
                {
                    "sent": sent,
                    "arrived": int(latency.size),
                    "latency_ms_p50": float(np.percentile(latency, 50)) if latency.size else None,
                    "latency_ms_p95": float(np.percentile(latency, 95)) if latency.size else None,
                }
            ),
            flush=True,
        )
    finally:
        if camera is not None:
            camera.close()
        echo.send_signal(subprocess.signal.SIGINT)
        echo.wait(timeout=10)
        executor.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1280x720"], help="WIDTHxHEIGHT")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate (Hz)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per case")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_dds.json")
    args = parser.parse_args(argv)
    isolate_dds()
    before = machine()
    rows = []
    profiles: list[Path | None] = [None, large_image_profile()]
    cases = [
        (p, *map(int, size.split("x")), reliable)
        for size in args.sizes
        for reliable in (True, False)
        for p in profiles
    ]
    for i, (profile, width, height, reliable) in enumerate(cases):
        print(
            f"bench_dds: {width}x{height} {'reliable' if reliable else 'best effort'}, "
            f"{'shipped profile' if profile else 'Fast DDS defaults'} ...",
            flush=True,
        )
        rows.append(run_case(profile, width, height, reliable, args, i))
    after = machine()

    print(f"\nrgb8 images at {args.rate:g} Hz, camera process -> echo process -> here")
    print(f"{'size':>10} {'QoS':>11} {'Fast DDS profile':>17} {'arrived':>9} {'p50 ms':>7} {'p95 ms':>7}")
    for r in rows:
        p50 = f"{r['latency_ms_p50']:.1f}" if r["latency_ms_p50"] is not None else "-"
        p95 = f"{r['latency_ms_p95']:.1f}" if r["latency_ms_p95"] is not None else "-"
        print(
            f"{r['width']:>5}x{r['height']:<4} {r['qos']:>11} "
            f"{('shipped' if r['fastdds_profile'] else 'defaults'):>17} "
            f"{r['arrived']:>4}/{r['sent']:<4} {p50:>7} {p95:>7}"
        )
    print(
        f"machine: {before['cpus']} x {before['cpu']}; load average {before['load_average_1m']} before, "
        f"{after['load_average_1m']} after"
    )
    write_result(
        args.out,
        "bench_dds",
        argv,
        {
            "latency": "image stamp (camera process, wall clock) -> receipt of its header echoed by a "
            "second process",
            "machine_before": before,
            "machine_after": after,
            "results": rows,
        },
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 9 and sys.argv[1] == "--listen":
        _listen(*sys.argv[2:])
    else:
        sys.exit(main())
