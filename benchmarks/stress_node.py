"""nvs_node under 10,000 bad inputs: it must keep running and keep its rate.

    python benchmarks/stress_node.py [--model models/default] [--bad 10000] [--bad-rate 500]

The node runs as its own process with one orbit target. A good 10 Hz camera stream runs throughout;
for the middle phase, malformed images, pose arrays, camera_infos (test/bad_inputs.py) and bad
service calls are spread between its frames. Measured: the good output rate before / during / after,
the node's rejections by cause (from /diagnostics), the log lines it wrote, service answers, memory,
and whether it is still alive. Prints a table and writes benchmarks/results/stress_node.json.
"""

from __future__ import annotations

import argparse
import collections
import json
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: models/default)")
    parser.add_argument("--bad", type=int, default=10_000, help="bad inputs to send")
    parser.add_argument("--bad-rate", type=float, default=500.0, help="bad inputs per second")
    parser.add_argument("--good-rate", type=float, default=10.0, help="good camera frames per second")
    parser.add_argument("--phase", type=float, default=4.0, help="seconds before and after the abuse")
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
        f"node alive: {alive}; log lines written: {len(log_lines)}; RSS {rss_start:.0f} -> {rss_end:.0f} MB; "
        f"load average {result['machine']['load_average_1m']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if alive and after_hz > 0.5 * before_hz else 1


if __name__ == "__main__":
    sys.exit(main())
