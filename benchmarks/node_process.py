"""Shared by bench_node.py and stress_node.py: nvs_node in its own process, a client node here.

The node runs exactly as a user starts it (`python -m tinyldm_ros.node --ros-args ...`), so its CPU
time and memory can be measured on its own, and every message crosses DDS between processes.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image
from tinyldm_ros.msg import SynthesizedViews

from tinyldm_ros.conversions import numpy_to_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import cpu_model  # noqa: E402  (benchmarks/ is not a package)

REPO = Path(__file__).resolve().parent.parent


def isolate_dds() -> None:
    """A ROS domain of our own on loopback, so other ROS processes on the machine do not interfere."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(101, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def resolve_model(model: Path | None) -> Path:
    model = model or REPO / "models" / "default"
    if not (model / "model.json").is_file():
        sys.exit(
            f"no model at {model} (model.json missing). The default model is not shipped yet; "
            "measure another folder with --model, e.g. --model test/fixtures/tiny_model"
        )
    return model


class NodeProcess:
    """`python -m tinyldm_ros.node` with the given parameters, in namespace `ns`."""

    def __init__(self, ns: str, params: dict, log_path: Path) -> None:
        args = [sys.executable, "-m", "tinyldm_ros.node", "--ros-args", "-r", f"__ns:={ns}"]
        for key, value in params.items():
            args += ["-p", f"{key}:={_ros_value(value)}"]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "w")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)
        self.ps = psutil.Process(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def stop(self) -> int:
        self.proc.send_signal(subprocess.signal.SIGINT)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.log.close()


class Client:
    """Publishes images and records SynthesizedViews (receipt time) and the node's diagnostics."""

    def __init__(self, ns: str, reliable: bool = False) -> None:
        self.node = rclpy.create_node("bench_client", namespace=ns)
        qos = QoSProfile(depth=5) if reliable else qos_profile_sensor_data
        self.image_pub = self.node.create_publisher(Image, "image", qos)
        self.outputs: list[tuple[float, SynthesizedViews]] = []
        self.diagnostics: dict[str, str] = {}
        self.node.create_subscription(
            SynthesizedViews,
            "synthesized_views",
            lambda m: self.outputs.append((time.time(), m)),
            QoSProfile(depth=100),
        )
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "novel view synthesis" in status.name:
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Until the node subscribes to images (it has loaded its model) and we see its outputs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.node.count_subscribers(
                self.node.resolve_topic_name("image")
            ) and self.node.count_publishers(self.node.resolve_topic_name("synthesized_views")):
                time.sleep(1.0)  # the node's view of our subscription (its laziness check) settles
                return True
            time.sleep(0.1)
        return False

    def publish(self, msg: Image) -> None:
        now = time.time()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        self.image_pub.publish(msg)

    def latencies_ms(self, start: float, end: float) -> np.ndarray:
        """Stamp-to-receipt latency (wall clock, same machine) of the outputs of inputs stamped in
        [start, end]."""
        out = []
        for received, m in list(self.outputs):
            stamp = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
            if start <= stamp <= end:
                out.append((received - stamp) * 1e3)
        return np.array(out)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()


class CameraProcess:
    """A camera as its own process (as on a robot): `width x height` rgb8 on <ns>/image at `rate` Hz,
    stamped with the wall clock. It prints "start <t>" after `warmup` s and "end <t> <sent>" at the end.
    """

    def __init__(
        self, ns: str, width: int, height: int, rate: float, warmup: float, seconds: float, reliable: bool
    ) -> None:
        args = [
            sys.executable,
            __file__,
            "camera",
            ns,
            str(width),
            str(height),
            str(rate),
            str(warmup),
            str(seconds),
            "reliable" if reliable else "sensor_data",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=REPO)

    def wait_for(self, word: str) -> list[str]:
        for line in self.proc.stdout:
            if line.startswith(word):
                return line.split()[1:]
        raise RuntimeError(f"camera process ended before '{word}' (exit code {self.proc.wait()})")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _camera_main(ns: str, width: str, height: str, rate: str, warmup: str, seconds: str, qos: str) -> None:
    rclpy.init()
    node = rclpy.create_node("bench_camera", namespace=ns)
    profile = QoSProfile(depth=5) if qos == "reliable" else qos_profile_sensor_data
    pub = node.create_publisher(Image, "image", profile)
    while pub.get_subscription_count() == 0:
        time.sleep(0.05)
    msg = camera_image(int(width), int(height))
    period, n_warm, n = 1.0 / float(rate), int(float(rate) * float(warmup)), int(float(rate) * float(seconds))
    t0 = time.monotonic()
    for i in range(n_warm + n):
        if i == n_warm:
            print(f"start {time.time()}", flush=True)
        now = time.time()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        pub.publish(msg)
        time.sleep(max(0.0, t0 + (i + 1) * period - time.monotonic()))
    print(f"end {time.time()} {n}", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def _echo_main(ns: str, qos: str) -> None:
    """Republishes each image's header at once: image transport between processes, without the node."""
    from std_msgs.msg import Header

    rclpy.init()
    node = rclpy.create_node("bench_echo", namespace=ns)
    pub = node.create_publisher(Header, "echo", QoSProfile(depth=100))
    profile = QoSProfile(depth=5) if qos == "reliable" else qos_profile_sensor_data
    node.create_subscription(Image, "image", lambda m: pub.publish(m.header), profile)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):  # SIGINT: rclpy shuts the context down
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def camera_image(width: int, height: int, seed: int = 0) -> Image:
    rng = np.random.default_rng(seed)
    msg = numpy_to_image(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "rgb8")
    msg.header.frame_id = "camera_optical"
    return msg


def write_result(out: Path, name: str, argv: list[str] | None, fields: dict) -> None:
    """A benchmarks/results JSON: the benchmark's name, the command that made it, then `fields`."""
    command = f"python benchmarks/{name}.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": name, "command": command, **fields}, indent=2) + "\n")
    print(f"wrote {out}")


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0],
    }


def _ros_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(_ros_value(v) for v in value) + "]"
    return str(value)


if __name__ == "__main__" and len(sys.argv) == 9 and sys.argv[1] == "camera":
    _camera_main(*sys.argv[2:])
if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "echo":
    _echo_main(*sys.argv[2:])
