"""Node health: counters, latency window, throttled per-cause logging, diagnostic_msgs status."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


class RejectedInput(Exception):  # noqa: N818 - not an error of the node: input it refuses
    """Input the node refuses; `cause` keys the diagnostics counter and, with `kind` where one cause
    has several (e.g. image: encoding, size, step, data_length), the throttled log."""

    def __init__(self, cause: str, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.cause = cause
        self.kind = kind


class ThrottledLog:
    """One log line per cause per period; the next line says how many were suppressed meanwhile.

    rclpy's own throttling is keyed by call site, so causes logged through one helper would hide
    each other; here each cause (e.g. "encoding", "tf") has its own clock.
    """

    def __init__(self, log: Callable[[str], None], period_s: float = 5.0) -> None:
        self.log = log
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._suppressed: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, cause: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(cause)
            if last is not None and now - last < self.period_s:
                self._suppressed[cause] += 1
                return
            self._last[cause] = now
            suppressed = self._suppressed.pop(cause, 0)
        more = f" (+{suppressed} more like it in the last {self.period_s:g} s)" if suppressed else ""
        self.log(f"[{cause}] {message}{more}")


class NodeStats:
    """Thread-safe counters shared by the callbacks and the worker."""

    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self.received = 0  # images received
        self.processed = 0  # images turned into views
        self.dropped = 0  # replaced in the latest-frame slot before the worker took them
        self.idle = 0  # received while nobody listened (lazy: not processed)
        self.rejected: collections.Counter[str] = collections.Counter()  # bad input by cause
        self.requests = 0
        self.requests_failed = 0
        self.requests_answered = 0  # below `requests` while calls are pending: none may hang for ever
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=window)
        self._synthesis_ms: collections.deque[float] = collections.deque(maxlen=window)
        self._done_at: collections.deque[float] = collections.deque(maxlen=window)
        self._rejected_at_last_status = 0

    def count(self, field: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + n)

    def reject(self, cause: str) -> None:
        with self._lock:
            self.rejected[cause] += 1

    def record(self, latency_ms: float, synthesis_ms: float) -> None:
        with self._lock:
            self.processed += 1
            self._latency_ms.append(latency_ms)
            self._synthesis_ms.append(synthesis_ms)
            self._done_at.append(time.monotonic())

    def rejected_since_last_status(self, snapshot: dict[str, float]) -> int:
        """Rejections since the snapshot this was last asked with (the status period's)."""
        new = snapshot["rejected"] - self._rejected_at_last_status
        self._rejected_at_last_status = snapshot["rejected"]
        return int(new)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            lat = np.array(self._latency_ms) if self._latency_ms else None
            syn = np.array(self._synthesis_ms) if self._synthesis_ms else None
            done = list(self._done_at)
            out = {
                "received": self.received,
                "processed": self.processed,
                "dropped": self.dropped,
                "idle_skipped": self.idle,
                "rejected": sum(self.rejected.values()),
                "requests": self.requests,
                "requests_failed": self.requests_failed,
                "requests_answered": self.requests_answered,
            }
            rejected = dict(self.rejected)
        # Output rate over the last few seconds only, so a stalled node shows 0 soon.
        now = time.monotonic()
        recent = [t for t in done if now - t < 5.0]
        out["output_rate_hz"] = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 2 else 0.0
        if lat is not None:
            out["latency_p50_ms"] = float(np.percentile(lat, 50))
            out["latency_p95_ms"] = float(np.percentile(lat, 95))
            out["synthesis_p50_ms"] = float(np.percentile(syn, 50))
        out.update({f"rejected_{k}": v for k, v in sorted(rejected.items())})
        return out


def diagnostic_array(
    stamp, node_name: str, provider: str, stats: dict[str, float], warnings: list[str]
) -> DiagnosticArray:
    """One DiagnosticStatus for the node: OK, or WARN with the first reason when something is off."""
    status = DiagnosticStatus()
    status.name = f"{node_name}: novel view synthesis"
    status.hardware_id = provider
    status.level = DiagnosticStatus.WARN if warnings else DiagnosticStatus.OK
    status.message = "; ".join(warnings) if warnings else "OK"
    values = {"execution_provider": provider, **stats}
    status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array


def _fmt(v) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)
