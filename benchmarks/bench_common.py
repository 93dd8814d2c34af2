"""Helpers of the benchmark scripts: timing a call, the machine's state, test poses and images."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    """Peak RSS of this process. VmHWM, not ru_maxrss: the latter carries the parent's peak over
    fork + exec, which would charge the engine child with the parent's torch."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(fn, reps: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    wall_ms, cpu_ms = np.array(wall) * 1e3, np.array(cpu) * 1e3
    return {
        "p50_ms": float(np.percentile(wall_ms, 50)),
        "p95_ms": float(np.percentile(wall_ms, 95)),
        "min_ms": float(wall_ms.min()),
        "cpu_p50_ms": float(np.percentile(cpu_ms, 50)),
        "reps": reps,
    }


def orbit(n: int) -> np.ndarray:
    from tinyldm_ros.poses import look_at

    cond = look_at([0.0, 0.0, -1.3], [0.0, 0.0, 0.0], up=(0.0, -1.0, 0.0))
    out = []
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False):
        eye = [1.3 * np.sin(a), 0.3, -1.3 * np.cos(a)]
        out.append(np.linalg.inv(cond) @ look_at(eye, [0.0, 0.0, 0.0], up=(0.0, -1.0, 0.0)))
    return np.stack(out)


def test_image(size: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)


def machine_state() -> dict:
    """CPU, load and the other busy processes (this machine may be shared with other jobs)."""
    import psutil

    me = os.getpid()
    procs = []
    for p in psutil.process_iter(["pid", "name", "cpu_percent", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(0.5)
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            if p.pid in (me, os.getppid()):
                continue
            c = p.cpu_percent(None)
            if c >= 10.0:
                procs.append({"pid": p.pid, "cpu_percent": c, "cmd": " ".join(p.info["cmdline"] or [])[:100]})
        except psutil.Error:
            pass
    cores = os.cpu_count() or 1
    load = os.getloadavg()
    busy = sum(p["cpu_percent"] for p in procs) / 100.0
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cores": cores,
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "other_busy_processes": sorted(procs, key=lambda p: -p["cpu_percent"])[:8],
        "other_processes_cores_busy": round(busy, 2),
        "shared": busy >= 0.5 or load[0] >= 0.5 * cores,
    }


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else the architecture; node_process.py uses it too."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
