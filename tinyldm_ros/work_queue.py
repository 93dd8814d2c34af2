"""The node worker's inbox: a one-frame slot for the camera, a bounded queue of service calls that go
first, and warm-up requests for a new target count.

A newer frame replaces an unprocessed one (the caller counts it as dropped), so the node never falls
behind the camera; `pace` spaces frames for the node's max_rate_hz. Only the executor's callbacks
put work in and only the worker thread takes it out.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

from rclpy.task import Future
from sensor_msgs.msg import CameraInfo, Image

from tinyldm_ros.srv import SynthesizeView


@dataclass
class Frame:
    image: Image
    camera_info: CameraInfo | None
    received: float  # time.monotonic() at receipt


@dataclass
class Request:
    request: SynthesizeView.Request
    future: Future
    received: float


@dataclass(frozen=True)
class Warmup:
    views: int  # the target count the engine should build its sessions for


class WorkQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._requests: collections.deque[Request] = collections.deque()
        self._warm_views = 0
        self._next_frame_at = 0.0
        self._stop = False

    @property
    def slot(self) -> Frame | None:
        """The frame waiting for the worker, if any."""
        return self._slot

    def put_frame(self, frame: Frame) -> bool:
        """Offer the latest camera frame; True when it replaced one the worker had not taken yet."""
        with self._cond:
            dropped = self._slot is not None
            self._slot = frame
            self._cond.notify()
        return dropped

    def put_request(self, request: Request, max_pending: int) -> int | None:
        """Queue a service call; None when queued, else how many are pending (the call is refused)."""
        with self._cond:
            if len(self._requests) >= max_pending:
                return len(self._requests)
            self._requests.append(request)
            self._cond.notify()
        return None

    def put_warmup(self, views: int) -> None:
        """Ask the worker to build the engine's sessions for `views` targets (replaces an earlier ask)."""
        with self._cond:
            self._warm_views = views
            self._cond.notify()

    def pace(self, max_rate_hz: float) -> None:
        """The next frame is taken no sooner than 1 / max_rate_hz from now (0: at once)."""
        self._next_frame_at = time.monotonic() + (1.0 / max_rate_hz if max_rate_hz > 0 else 0.0)

    def take(self) -> Warmup | Request | Frame | None:
        """The next job, waiting for one: a warm-up, then service calls, then the frame once its
        pace allows; None once the queue is closed."""
        with self._cond:
            while not self._stop:
                if self._requests or self._warm_views:
                    break
                wait = self._next_frame_at - time.monotonic()
                if self._slot is not None and wait <= 0:
                    break
                self._cond.wait(timeout=wait if self._slot is not None else None)
            if self._stop:
                return None
            if self._warm_views:
                views, self._warm_views = self._warm_views, 0
                return Warmup(views)
            if self._requests:
                return self._requests.popleft()
            frame, self._slot = self._slot, None
            return frame

    def close(self) -> list[Request]:
        """Stop the worker's take(); the service calls still pending, for the caller to answer."""
        with self._cond:
            self._stop = True
            pending, self._requests = list(self._requests), collections.deque()
            self._cond.notify_all()
        return pending
