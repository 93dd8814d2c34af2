"""The shipped Fast DDS profile for large images: it loads, it enlarges the shared-memory segment, and
a camera-sized image crosses between processes with it."""

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tinyldm_ros.dds_profile import PROFILE_VARIABLES, large_image_profile, set_profile

REPO = Path(__file__).resolve().parent.parent
RMW = os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
needs_fastdds_shm = pytest.mark.skipif(
    RMW != "rmw_fastrtps_cpp" or not Path("/dev/shm").is_dir(),
    reason=f"needs Fast DDS (RMW_IMPLEMENTATION={RMW}) and /dev/shm",
)

# A participant in its own process (a profile is read once per process), reporting the Fast DDS
# shared-memory segments it created: /dev/shm/fastrtps_<id> (not the _el locks or the port queues).
SEGMENTS = textwrap.dedent(
    """
    import os, rclpy
    from sensor_msgs.msg import Image
    def segments():
        return {f for f in os.listdir("/dev/shm") if f.startswith("fastrtps_")
                and not f.endswith("_el") and not f.startswith("fastrtps_port")}
    before = segments()
    rclpy.init()
    node = rclpy.create_node("segment_probe")
    node.create_publisher(Image, "image", 1)
    for name in sorted(segments() - before):
        print(name, os.path.getsize(os.path.join("/dev/shm", name)))
    node.destroy_node()
    rclpy.shutdown()
    """
)


def segment_size() -> int:
    root = ET.parse(large_image_profile()).getroot()
    ns = {"p": root.tag.split("}")[0].strip("{")}
    return int(root.find(".//p:transport_descriptor[p:type='SHM']/p:segment_size", ns).text)


def new_segments(profile: Path | None) -> list[int]:
    env = dict(os.environ)
    set_profile(env, profile)
    out = subprocess.run(
        [sys.executable, "-c", SEGMENTS], env=env, capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert "XMLPARSER" not in out.stderr and "Error" not in out.stderr, out.stderr
    return [int(line.split()[1]) for line in out.stdout.splitlines()]


def test_profile_is_found_and_fits_a_full_hd_image():
    assert large_image_profile().is_file()
    assert segment_size() >= 1920 * 1080 * 3  # one rgb8 1080p frame (6.2 MB)


def test_set_profile_sets_both_fast_dds_names_and_removes_them():
    env = {"OTHER": "1"}
    set_profile(env, Path("/x.xml"))
    assert {k: env[k] for k in PROFILE_VARIABLES} == dict.fromkeys(PROFILE_VARIABLES, "/x.xml")
    set_profile(env, None)
    assert env == {"OTHER": "1"}


@needs_fastdds_shm
def test_profile_enlarges_the_shared_memory_segment():
    default = new_segments(None)
    shipped = new_segments(large_image_profile())
    assert default and shipped, (default, shipped)
    assert max(default) < 640 * 480 * 3  # why the profile exists: a VGA image does not fit by default
    assert max(shipped) >= segment_size()


@needs_fastdds_shm
def test_vga_image_crosses_processes_with_the_profile(ros_context):
    """A camera process with the profile (best effort, as camera drivers publish) -> this process."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from tinyldm_ros.conversions import image_to_numpy

    received = []
    node = rclpy.create_node("profile_listener")
    node.create_subscription(Image, "profile_image", received.append, qos_profile_sensor_data)
    camera = textwrap.dedent(
        """
        import time, numpy as np, rclpy
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from tinyldm_ros.conversions import numpy_to_image
        rclpy.init()
        node = rclpy.create_node("profile_camera")
        pub = node.create_publisher(Image, "profile_image", qos_profile_sensor_data)
        msg = numpy_to_image(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8), "rgb8")
        deadline = time.monotonic() + 20
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(60):
            pub.publish(msg)
            time.sleep(1 / 30)
        """
    )
    env = dict(os.environ)
    set_profile(env, large_image_profile())
    proc = subprocess.Popen([sys.executable, "-c", camera], env=env, cwd=REPO)
    try:
        while proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
        for _ in range(20):
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        proc.wait(timeout=30)
        node.destroy_node()
    assert proc.returncode == 0
    # Without the profile about 1 in 4 of these arrived here (benchmarks/bench_dds.py): UDP fragments
    # of a best-effort sample get lost. Through shared memory they all do; half leaves room for load.
    assert len(received) >= 30, f"{len(received)} of 60 best-effort 640x480 images arrived"
    expected = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    np.testing.assert_array_equal(image_to_numpy(received[-1])[0], expected)
