"""tinyldm_ros.object_inputs: the stamp cache the worker matches mask / depth / detections with, and
the choice of a detection (vision_msgs is not installed everywhere: its fields are mirrored here)."""

import threading
import time
from types import SimpleNamespace as Fields

from tinyldm_ros.object_inputs import StampCache, choose_detection


def test_nearest_within_tolerance_and_bounded() -> None:
    cache = StampCache(capacity=3)
    for t in (100, 200, 300, 400):
        cache.put(t, f"m{t}")
    assert cache.nearest(290, 20) == "m300"
    assert cache.nearest(150, 20) is None  # between two, neither close enough
    assert cache.nearest(100, 0) is None  # the oldest fell out of the 3-message cache


def test_wait_for_returns_a_late_message_and_times_out_without_one() -> None:
    cache = StampCache()
    threading.Timer(0.05, lambda: cache.put(1000, "late")).start()
    t0 = time.monotonic()
    assert cache.wait_for(1000, 0, 1.0) == "late" and time.monotonic() - t0 < 0.5
    t0 = time.monotonic()
    assert cache.wait_for(5000, 0, 0.05) is None and time.monotonic() - t0 >= 0.05


def test_expected_only_after_a_recent_message() -> None:
    cache = StampCache()
    assert not cache.expected(10.0)
    cache.put(1, "m")
    assert cache.expected(10.0) and not cache.expected(-1.0)


def _detection(cx, cy, sx, sy, *hypotheses):
    results = [Fields(hypothesis=Fields(class_id=c, score=s)) for c, s in hypotheses]
    return Fields(
        bbox=Fields(center=Fields(position=Fields(x=cx, y=cy)), size_x=sx, size_y=sy), results=results
    )


def test_the_best_detection_of_the_wanted_class_above_the_score() -> None:
    msg = Fields(
        detections=[
            _detection(10, 10, 4, 4, ("person", 0.9)),
            _detection(50, 40, 20, 10, ("car", 0.6), ("truck", 0.3)),
            _detection(70, 40, 20, 10, ("car", 0.8)),
        ]
    )
    assert choose_detection(msg, "car", 0.5) == (70.0, 40.0, 20.0, 10.0)
    assert choose_detection(msg, "", 0.5) == (10.0, 10.0, 4.0, 4.0)
    assert choose_detection(msg, "car", 0.85) is None
    assert choose_detection(msg, "bus", 0.0) is None
    assert choose_detection(Fields(detections=[_detection(1, 2, 3, 4)]), "", 0.5) == (1.0, 2.0, 3.0, 4.0)
