"""nvs_node under 10,000 bad inputs: it must keep running and keep its rate.

    python benchmarks/stress_node.py [--model models/default] [--bad 10000] [--bad-rate 500]

The node runs as its own process with one orbit target. A good 10 Hz camera stream runs throughout;
for the middle phase, malformed images, pose arrays, camera_infos (test/bad_inputs.py) and bad
service calls are spread between its frames. Measured: the good output rate before / during / after,
the node's rejections by cause (from /diagnostics), the log lines it wrote, service answers, memory,
and whether it is still alive. Then two more cases beside the good stream: a burst of service calls
(4 processes x 25 calls at one instant: answers within 30 s, the camera's output rate meanwhile), and
a large camera (1280x720) whose camera_info asks for the biggest crop the node allows (the node's peak
memory). Prints a table and writes benchmarks/results/stress_node.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))  # bad_inputs: the fuzz test's inputs
from node_process import REPO, Client, NodeProcess, camera_image, isolate_dds, machine, resolve_model  # noqa: E402


def bad_request(rng: np.random.Generator):
    from bad_inputs import bad_image
    from geometry_msgs.msg import PoseStamped
    from tinyldm_ros.srv import SynthesizeView

    kind = int(rng.integers(0, 5))
    if kind == 0:
        return SynthesizeView.Request()  # no targets
    if kind == 1:
        return SynthesizeView.Request(azimuths_deg=[float(a) for a in range(500)])  # over max_targets
    if kind == 2:
        pose = PoseStamped()
        pose.pose.position.z = float("inf")
        pose.pose.orientation.w = 1.0
        return SynthesizeView.Request(target_poses=[pose])
    if kind == 3:
        return SynthesizeView.Request(azimuths_deg=[1.0, 2.0], elevations_deg=[0.0, 1.0, 2.0])
    request = SynthesizeView.Request(azimuths_deg=[10.0])
    request.image = bad_image(rng)[1]
    if request.image.height == 0 and request.image.width == 0:
        request.image.encoding = "yuv422"  # stay a bad image, not "use the latest"
    return request


def stream_while(client: Client, good, period: float, busy) -> float:
    """Good frames every `period` s while busy() is true; the output rate meanwhile (Hz)."""
    n_before, t0 = len(client.outputs), time.monotonic()
    next_good = t0
    while busy():
        if time.monotonic() >= next_good:
            client.publish(good)
            next_good += period
        time.sleep(0.005)
    return (len(client.outputs) - n_before) / max(time.monotonic() - t0, 1e-9)


def burst_case(client: Client, good, period: float, processes: int, calls: int, depth: int) -> dict:
    """`processes` client processes fire `calls` calls each at one instant, the camera going on."""
    start_at = time.time() + 10.0  # time for the processes to start and match the service
    script = str(Path(__file__).resolve().parent / "burst_client.py")
    procs = [
        subprocess.Popen(
            [sys.executable, script, "/stress", str(calls), str(start_at), str(depth)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(processes)
    ]
    stream_while(client, good, period, lambda: time.time() < start_at)
    hz = stream_while(client, good, period, lambda: any(p.poll() is None for p in procs))
    totals: collections.Counter[str] = collections.Counter()
    for p in procs:
        lines = p.stdout.read().strip().splitlines()
        totals.update(json.loads(lines[-1]) if lines else {"process failed": 1})
    return {
        "processes": processes,
        "calls": processes * calls,
        "client_qos_depth": depth,
        **totals,
        "good_output_hz_during": hz,
    }


def camera_info_case(client: Client, node: NodeProcess, seconds: float, fov_deg: float = 52.0) -> dict:
    """A 1280x720 camera whose camera_info asks for the largest crop the node accepts (4x the image's
    longer side, padded); the node's peak memory while it runs at 5 Hz."""
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    width, height = 1280, 720
    side = 4 * width
    fx = side / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    info = CameraInfo()
    info.header.frame_id = "camera_optical"
    info.width, info.height = width, height
    info.k = [fx, 0.0, width / 2.0, 0.0, fx, height / 2.0, 0.0, 0.0, 1.0]
    info_pub = client.node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
    # reliable: a 2.7 MB best-effort image loses a UDP fragment too often between processes
    big_pub = client.node.create_publisher(Image, "image", QoSProfile(depth=2))
    big = camera_image(width, height)
    rss_before, peak = node.rss_mb(), 0.0
    n_before, t0, next_frame = len(client.outputs), time.monotonic(), 0.0
    while time.monotonic() - t0 < seconds:
        if time.monotonic() >= next_frame:
            info_pub.publish(info)
            now = time.time()
            big.header.stamp.sec, big.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
            big_pub.publish(big)
            next_frame = time.monotonic() + 0.2
        peak = max(peak, node.rss_mb())
        time.sleep(0.02)
    time.sleep(1.0)
    peak = max(peak, node.rss_mb())
    client.node.destroy_publisher(big_pub)
    return {
        "image": f"{width}x{height}",
        "crop_px": side,
        "fx": fx,
        "seconds": seconds,
        "outputs": len(client.outputs) - n_before,
        "node_rss_mb_before": rss_before,
        "node_rss_mb_peak": peak,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: models/default)")
    parser.add_argument("--bad", type=int, default=10_000, help="bad inputs to send")
    parser.add_argument("--bad-rate", type=float, default=500.0, help="bad inputs per second")
    parser.add_argument("--good-rate", type=float, default=10.0, help="good camera frames per second")
    parser.add_argument("--phase", type=float, default=4.0, help="seconds before and after the abuse")
    parser.add_argument("--burst-processes", type=int, default=4, help="service burst: client processes")
    parser.add_argument("--burst-calls", type=int, default=25, help="service burst: calls per process")
    parser.add_argument(
        "--burst-client-depth", type=int, default=100, help="service burst: each client's QoS depth"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "stress_node.json")
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    isolate_dds()
    import rclpy
    from bad_inputs import bad_camera_info, bad_image, bad_pose_array
    from geometry_msgs.msg import PoseArray
    from tinyldm_ros.srv import SynthesizeView

    rclpy.init()
    log_path = REPO / "out" / "stress_node" / "node.log"
    node = NodeProcess("/stress", {"model_dir": str(model), "orbit_azimuths_deg": [90.0]}, log_path)
    client = Client("/stress")
    poses_pub = client.node.create_publisher(PoseArray, "target_poses", 5)
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo

    info_pub = client.node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
    service = client.node.create_client(SynthesizeView, "synthesize_view")
    rng = np.random.default_rng(0)
    good = camera_image(64, 48)
    sent = collections.Counter()
    answers = collections.Counter()
    futures = []
    try:
        if not client.wait_ready() or not service.wait_for_service(timeout_sec=30.0):
            raise RuntimeError(f"node did not come up; see {log_path}")
        rss_start = node.rss_mb()
        good_period = 1.0 / args.good_rate

        def good_phase(seconds: float, abuse: bool) -> tuple[float, float]:
            """Good frames for `seconds` (and bad inputs between them); returns (output Hz, duration)."""
            n_before, t0 = len(client.outputs), time.monotonic()
            next_good, bad_period = t0, 1.0 / args.bad_rate
            next_bad = t0
            while True:
                now = time.monotonic()
                if abuse and sum(sent.values()) >= args.bad:
                    break
                if not abuse and now - t0 >= seconds:
                    break
                if now >= next_good:
                    client.publish(good)
                    next_good += good_period
                if abuse and now >= next_bad:
                    what = rng.random()
                    if what < 0.80:
                        cause, msg = bad_image(rng)
                        client.image_pub.publish(msg)
                    elif what < 0.88:
                        cause, msg = bad_pose_array(rng)
                        poses_pub.publish(msg)
                    elif what < 0.95:
                        cause, msg = bad_camera_info(rng)
                        info_pub.publish(msg)
                    else:
                        cause = "service call"
                        futures.append(service.call_async(bad_request(rng)))
                    sent[cause] += 1
                    next_bad += bad_period
                time.sleep(max(0.0, min(next_good, next_bad if abuse else next_good) - time.monotonic()))
            duration = time.monotonic() - t0
            return (len(client.outputs) - n_before) / duration, duration

        before_hz, _ = good_phase(args.phase, abuse=False)
        during_hz, during_s = good_phase(0.0, abuse=True)
        after_hz, _ = good_phase(args.phase, abuse=False)
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not all(f.done() for f in futures):
            time.sleep(0.05)
        for f in futures:
            if not f.done():
                answers["no answer"] += 1
                continue
            r = f.result()
            answers["success" if r.success else r.message.split(":")[0]] += 1
        burst = burst_case(
            client, good, good_period, args.burst_processes, args.burst_calls, args.burst_client_depth
        )
        big_crop = camera_info_case(client, node, args.phase)
        time.sleep(1.5)  # a fresh /diagnostics
        alive = node.alive()
        diagnostics = dict(client.diagnostics)
        rss_end = node.rss_mb() if alive else float("nan")
    finally:
        client.close()
        code = node.stop()
        rclpy.try_shutdown()

    log_lines = log_path.read_text().splitlines()
    rejected = {k: int(v) for k, v in diagnostics.items() if k.startswith("rejected")}
    result = {
        "benchmark": "stress_node",
        "command": "python benchmarks/stress_node.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": str(model),
        "bad_inputs_sent": dict(sent),
        "bad_inputs_total": sum(sent.values()),
        "abuse_seconds": during_s,
        "good_output_hz": {"before": before_hz, "during": during_hz, "after": after_hz},
        "node_alive_after": alive,
        "node_exit_code_on_sigint": code,
        "rejected_by_node": rejected,
        "service_answers": dict(answers),
        "node_log_lines": len(log_lines),
        "node_rss_mb": {"start": rss_start, "end": rss_end},
        "service_burst": burst,
        "camera_info_big_crop": big_crop,
        "machine": machine(),
    }
    print(f"stress_node: {result['bad_inputs_total']} bad inputs in {during_s:.1f} s, model {model}")
    print(f"{'phase':>8} {'good output Hz':>15}")
    for phase, hz in result["good_output_hz"].items():
        print(f"{phase:>8} {hz:>15.1f}")
    print(f"sent by kind: {dict(sent)}")
    print(f"rejected by the node (diagnostics): {rejected}")
    print(f"service answers: {dict(answers)}")
    print(
        f"service burst: {burst.get('answered', 0)} of {burst['calls']} answered ({burst.get('success', 0)} "
        f"views, {burst.get('busy', 0)} busy, {burst.get('no_answer', 0)} none) from {burst['processes']} "
        f"processes; camera output meanwhile {burst['good_output_hz_during']:.1f} Hz"
    )
    print(
        f"camera_info asking a {big_crop['crop_px']} px crop of {big_crop['image']}: node RSS "
        f"{big_crop['node_rss_mb_before']:.0f} -> peak {big_crop['node_rss_mb_peak']:.0f} MB, "
        f"{big_crop['outputs']} outputs"
    )
    print(
        f"node alive: {alive}; log lines written: {len(log_lines)}; RSS {rss_start:.0f} -> {rss_end:.0f} MB; "
        f"load average {result['machine']['load_average_1m']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if alive and after_hz > 0.5 * before_hz else 1


if __name__ == "__main__":
    sys.exit(main())
