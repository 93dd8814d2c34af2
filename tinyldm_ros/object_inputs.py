"""The node's optional object inputs and their matching to the colour image (see docs/node.md):

    mask         sensor_msgs/Image          mono8 / 8UC1 / 8SC1 / mono16 / 16UC1, non-zero = object
    depth        sensor_msgs/Image          16UC1 (mm) or 32FC1 (m), aligned to the colour image
    roi          sensor_msgs/RegionOfInterest   no header: the latest one (if younger than
                                                object_input_timeout_s) is used
    detections   vision_msgs/Detection2DArray   where vision_msgs is installed

Each stamped input keeps its last few messages (StampCache); the worker takes, for the image being
processed, the one whose stamp is nearest to the image's within object_sync_tolerance_s. A topic that
has published in the last object_input_timeout_s is expected: the worker waits up to object_wait_s
for it (a late segmentation), then goes on without it and logs why (throttled). A topic that never
published, or went quiet, is not waited for. message_filters is not used: it is not on every install,
and its synchroniser drops the image when a mask is missing instead of falling back.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from sensor_msgs.msg import Image, RegionOfInterest

from tinyldm_ros.object_isolation import ObjectCues


@dataclass(frozen=True)
class ObjectInputConfig:
    object_sync_tolerance_s: float = 0.02
    object_wait_s: float = 0.1
    object_input_timeout_s: float = 2.0
    mask_feather_px: float = 0.0
    detection_class_id: str = ""
    detection_min_score: float = 0.5


SPECS = {
    "object_sync_tolerance_s": (
        "Largest stamp difference between the image and its mask / depth / detections.",
        (0.0, 10.0),
    ),
    "object_wait_s": (
        "How long the worker waits for a mask / depth / detections still to come for an image (only "
        "for topics that published within object_input_timeout_s).",
        (0.0, 5.0),
    ),
    "object_input_timeout_s": (
        "A mask / depth / detections topic silent this long is no longer waited for.",
        (0.0, 3600.0),
    ),
    "mask_feather_px": (
        "Extra blur (Gaussian sigma, model pixels) of the mask's edge where the background turns white; "
        "0 keeps the anti-aliased edge of an exact mask, raise it for a ragged segmentation.",
        (0.0, 8.0),
    ),
    "detection_class_id": ("Class id of the detection to isolate; empty = any class.", None),
    "detection_min_score": ("Detections below this score are ignored.", (0.0, 1.0)),
}


class StampCache:
    """The last `capacity` messages of one topic by stamp (nanoseconds), for the worker to match."""

    def __init__(self, capacity: int = 8) -> None:
        self._items: collections.deque[tuple[int, object]] = collections.deque(maxlen=capacity)
        self._cond = threading.Condition()
        self.last_arrival: float | None = None  # time.monotonic()

    def put(self, stamp_ns: int, msg: object) -> None:
        with self._cond:
            self._items.append((stamp_ns, msg))
            self.last_arrival = time.monotonic()
            self._cond.notify_all()

    def nearest(self, stamp_ns: int, tolerance_ns: int) -> object | None:
        with self._cond:
            return self._nearest(stamp_ns, tolerance_ns)

    def _nearest(self, stamp_ns: int, tolerance_ns: int) -> object | None:
        best = min(self._items, key=lambda item: abs(item[0] - stamp_ns), default=None)
        return best[1] if best is not None and abs(best[0] - stamp_ns) <= tolerance_ns else None

    def wait_for(self, stamp_ns: int, tolerance_ns: int, timeout_s: float) -> object | None:
        """The match, waiting up to timeout_s for it to arrive."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while (found := self._nearest(stamp_ns, tolerance_ns)) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return found

    def expected(self, timeout_s: float) -> bool:
        return self.last_arrival is not None and time.monotonic() - self.last_arrival <= timeout_s


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def choose_detection(msg, class_id: str, min_score: float) -> tuple[float, float, float, float] | None:
    """The best-scoring detection of `class_id` ("" = any) scoring at least min_score, as (centre x,
    centre y, size x, size y) in pixels; None if there is none. A detection without hypotheses counts
    as score 1 of any class (a detector that only gives boxes)."""
    best, best_score = None, -1.0
    for det in msg.detections:
        hypotheses = [(r.hypothesis.class_id, r.hypothesis.score) for r in det.results] or [("", 1.0)]
        for cid, score in hypotheses:
            if (not class_id or cid == class_id) and score >= min_score and score > best_score:
                c = det.bbox.center.position
                best, best_score = (
                    (float(c.x), float(c.y), float(det.bbox.size_x), float(det.bbox.size_y)),
                    score,
                )
    return best


class ObjectInputs:
    """Subscriptions, parameters and stamp matching of the object inputs of `node`."""

    def __init__(self, node, image_qos) -> None:
        self.cfg = self._declare(node)
        self._caches = {"mask": StampCache(), "depth": StampCache(), "detections": StampCache()}
        self._roi: tuple[RegionOfInterest, float] | None = None  # the latest, time.monotonic() at receipt
        for name in ("mask", "depth"):
            node.create_subscription(Image, name, self._keep(name), image_qos)
        node.create_subscription(RegionOfInterest, "roi", self._on_roi, image_qos)
        try:  # like tf2_ros: only where the package is installed
            from vision_msgs.msg import Detection2DArray

            node.create_subscription(Detection2DArray, "detections", self._keep("detections"), 5)
            self.detections_missing = ""
        except ImportError as e:
            self.detections_missing = f"vision_msgs is not installed ({e}): no detections input"

    def _declare(self, node) -> ObjectInputConfig:
        base = ObjectInputConfig()
        for name, (description, bounds) in SPECS.items():
            d = ParameterDescriptor(description=description)
            if bounds is not None:
                d.floating_point_range = [
                    FloatingPointRange(from_value=bounds[0], to_value=bounds[1], step=0.0)
                ]
            node.declare_parameter(name, getattr(base, name), d)
        # rclpy checks the ranges and types from the descriptors; the values apply after the set
        node.add_post_set_parameters_callback(self._apply)
        return replace(base, **{f.name: node.get_parameter(f.name).value for f in fields(base)})

    def _apply(self, params) -> None:
        changes = {p.name: p.value for p in params if p.name in SPECS}
        if changes:
            self.cfg = replace(self.cfg, **changes)  # one assignment: the worker sees old or new

    def _keep(self, name: str) -> Callable:
        cache = self._caches[name]
        return lambda msg: cache.put(stamp_ns(msg.header.stamp), msg)

    def _on_roi(self, msg: RegionOfInterest) -> None:
        self._roi = (msg, time.monotonic())

    def cues_for(self, header, report: Callable[..., None]) -> ObjectCues | None:
        """The inputs matched to the image with `header` (worker thread: may wait object_wait_s);
        report(cause, message, kind) for each expected one that did not come or did not fit."""
        cfg = self.cfg
        wanted = stamp_ns(header.stamp)
        tolerance = int(cfg.object_sync_tolerance_s * 1e9)
        deadline = time.monotonic() + cfg.object_wait_s
        found = {}
        for name, cache in self._caches.items():
            if not cache.expected(cfg.object_input_timeout_s):
                continue
            found[name] = cache.wait_for(wanted, tolerance, max(0.0, deadline - time.monotonic()))
            if found[name] is None:
                report(
                    f"{name}_late",
                    f"no {name} within {cfg.object_sync_tolerance_s:g} s of the image "
                    f"stamp after waiting {cfg.object_wait_s:g} s; going on without it",
                )
        box = None
        if found.get("detections") is not None:
            box = choose_detection(found["detections"], cfg.detection_class_id, cfg.detection_min_score)
            if box is None:
                report(
                    "detection",
                    f"no detection of class {cfg.detection_class_id or 'any'!r} with score "
                    f">= {cfg.detection_min_score:g}",
                    "no_match",
                )
        roi = self._roi
        fresh_roi = (
            roi[0] if roi is not None and time.monotonic() - roi[1] <= cfg.object_input_timeout_s else None
        )
        cues = ObjectCues(found.get("mask"), found.get("depth"), fresh_roi, box)
        return cues if cues.any() else None
