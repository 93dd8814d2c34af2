"""`make demo`'s driver: a clear failure without the default model, and a real run on another one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy missing: no ROS 2 in this environment (run `make setup`)")
pytest.importorskip(
    "tinyldm_ros.msg", reason="tinyldm_ros interfaces not built: run `make setup` (colcon build)"
)

REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = REPO / "test" / "fixtures" / "tiny_model"


def run_demo(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "tinyldm_ros.demo", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_missing_model_fails_with_a_message_naming_what_is_missing(tmp_path: Path) -> None:
    done = run_demo("--model", str(tmp_path / "no_model"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "no usable model" in done.stderr and "model.json" in done.stderr and "encoder.onnx" in done.stderr
    assert not (tmp_path / "out").exists()  # never a fake output


def test_demo_runs_end_to_end_on_a_model_folder(tmp_path: Path) -> None:
    done = run_demo(
        "--model",
        str(TINY_MODEL),
        "--data",
        str(REPO / "test" / "data" / "srn_sample"),
        "--out",
        str(tmp_path),
        "--azimuths",
        "90",
        "180",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_processed"] >= 1 and summary["latency_ms_p50"] > 0
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert "latency p50" in done.stdout


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["model_dir:=/no/such/model"], "/no/such/model"),
        (["steps:=5000"], "steps out of range"),
        (["orbit_elevations_deg:=[1.0,2.0]"], "orbit_elevations_deg"),
        (["image_qos:=fast"], "image_qos"),
    ],
)
def test_node_start_errors_are_one_clear_line_and_exit_code_2(params: list[str], message: str) -> None:
    args = ["--ros-args", "-p", f"model_dir:={TINY_MODEL}"]
    for p in params:
        args += ["-p", p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "tinyldm_ros.node", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stderr


def test_make_demo_runs_on_the_shipped_model_and_demo_car(tmp_path: Path) -> None:
    """What `make demo` runs: the default model, the committed demo car, no arguments but --out."""
    done = run_demo("--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"].endswith(os.path.join("models", "default"))
    assert summary["sampler"] == "one_step"  # the shipped student, at the node's default settings
    # latest-frame-only: a busy machine may drop frames, never all of them
    assert summary["data"].endswith("demo") and summary["frames_sent"] == 24
    assert summary["frames_processed"] >= 1
    assert summary["targets_per_frame"] == 7 and (tmp_path / "sweep.png").stat().st_size > 0
