"""One process of stress_node.py's service burst: N synthesize_view calls at one instant.

    python benchmarks/burst_client.py <ns> <calls> <start_at (time.time())> <client QoS depth>

Makes one call first (so that DDS has matched the answer path too), waits for `start_at`, sends all
`calls` at once, waits up to 30 s and prints one JSON line: answered, success, busy, other, no_answer.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_process import isolate_dds  # noqa: E402


def main(ns: str, calls: int, start_at: float, depth: int) -> dict:
    isolate_dds()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile
    from tinyldm_ros.srv import SynthesizeView

    rclpy.init()
    node = rclpy.create_node("burst_client", namespace=ns)
    client = node.create_client(SynthesizeView, "synthesize_view", qos_profile=QoSProfile(depth=depth))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    request = SynthesizeView.Request(azimuths_deg=[45.0, 90.0])
    try:
        if not client.wait_for_service(timeout_sec=30.0):
            return {"error": "no service"}
        first = client.call_async(request)
        executor.spin_until_future_complete(first, timeout_sec=30.0)
        time.sleep(max(0.0, start_at - time.time()))
        futures = [client.call_async(request) for _ in range(calls)]
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not all(f.done() for f in futures):
            executor.spin_once(timeout_sec=0.05)
        done = [f.result() for f in futures if f.done()]
        return {
            "answered": len(done),
            "success": sum(r.success for r in done),
            "busy": sum(not r.success and r.message.startswith("busy") for r in done),
            "other": sum(not r.success and not r.message.startswith("busy") for r in done),
            "no_answer": calls - len(done),
        }
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    ns, calls, start_at, depth = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(main(ns, calls, start_at, depth)), flush=True)
