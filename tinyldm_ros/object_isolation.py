"""Where the object is, from whatever the robot offers alongside the colour image: a mask, a region
of interest or a detection box, and a depth image for its distance (tinyldm_ros.object_inputs matches
them to the image). The result says how to aim the virtual camera (tinyldm_ros.virtual_camera), what
to keep of the image, and the object's distance; every unusable cue becomes a Problem and the next
cue down is used: mask > ROI > detection > the principal point; depth > the
object_distance parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
from sensor_msgs.msg import Image, RegionOfInterest

from tinyldm_ros.conversions import ImageConversionError, depth_to_metres, mask_to_numpy
from tinyldm_ros.object_crop import grabcut_mask, roi_alpha
from tinyldm_ros.virtual_camera import (
    pixel_direction,
    ray_distances,
    silhouette_direction,
    surface_points,
    virtual_camera,
)

# What a distance to an object may be, in metres: the object_distance parameter's range, which a depth
# image's distance must also fall in.
OBJECT_DISTANCE_M = (0.01, 1000.0)

# The median depth of an object's visible surface is nearer than its centre. For the training cars
# (radius 1.3, unit diagonal) the median camera-to-surface distance of the masked pixels is 1.3 / 1.20
# on average over views (12 procedural test cars at random views, std 0.08; measured with
# training.tiny_renderer's depth): the centre is this factor further away.
SURFACE_TO_CENTRE = 1.20


class Problem(NamedTuple):
    """An unusable cue. `cause` keys the diagnostics count (rejected_<cause>); `kind` splits its log
    line (one throttle per cause and kind), so a second kind of bad mask is not hidden by the first."""

    cause: str
    message: str
    kind: str = ""


@dataclass(frozen=True)
class ObjectCues:
    """The cues matched to one colour image; any may be missing."""

    mask: Image | None = None
    depth: Image | None = None
    roi: RegionOfInterest | None = None
    box: tuple[float, float, float, float] | None = None  # a chosen detection: centre x, y, size x, y

    def any(self) -> bool:
        return any(c is not None for c in (self.mask, self.depth, self.roi, self.box))


@dataclass
class Isolation:
    view: np.ndarray = field(default_factory=lambda: np.eye(4))  # the virtual camera, input frame
    alpha: np.ndarray | None = None  # (H, W) bool: keep these pixels, white elsewhere
    distance: float | None = None  # metres to the object centre, from depth
    source: str = ""  # "mask", "roi", "detection" or "" (the principal point)
    segmented: bool = False  # alpha is the object's own outline (a mask, or GrabCut of the box)
    problems: list[Problem] = field(default_factory=list)


def _decoded(
    name: str, decode: Callable[[Image], np.ndarray], msg: Image, width: int, height: int, out: Isolation
) -> np.ndarray | None:
    """decode(msg), an (H, W) array, when the message reads and has the image's size; else None and a
    problem under `name` (kind: the message's fault, or "shape")."""
    try:
        array = decode(msg)
    except ImageConversionError as e:
        out.problems.append(Problem(name, f"{name} ignored: {e}", e.cause))
        return None
    if array.shape != (height, width):
        h, w = array.shape
        message = f"{name} ignored: it is {w}x{h}, the image {width}x{height}"
        out.problems.append(Problem(name, message, "shape"))
        return None
    return array


def _decoded_mask(msg: Image, width: int, height: int, out: Isolation) -> np.ndarray | None:
    mask = _decoded("mask", mask_to_numpy, msg, width, height, out)
    if mask is None:
        return None
    if not mask.any():
        out.problems.append(Problem("mask_empty", "mask ignored: it has no object pixel"))
        return None
    return mask


def _clipped_box(x0: float, y0: float, w: float, h: float, width: int, height: int):
    x1, y1 = min(int(np.ceil(x0 + w)), width), min(int(np.ceil(y0 + h)), height)
    x0, y0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def _box_cue(cues: ObjectCues, width: int, height: int, out: Isolation):
    """(x0, y0, w, h) clipped to the image from the ROI, else the detection; None if neither is usable."""
    if cues.roi is not None and cues.roi.width > 0 and cues.roi.height > 0:  # 0 x 0: "not set" (REP)
        r = cues.roi
        box = _clipped_box(r.x_offset, r.y_offset, r.width, r.height, width, height)
        if box is not None:
            out.source = "roi"
            return box
        out.problems.append(
            Problem(
                "roi",
                f"roi ignored: {r.width}x{r.height} at ({r.x_offset}, {r.y_offset}) "
                f"is outside the {width}x{height} image",
            )
        )
    if cues.box is not None:
        cx, cy, sx, sy = cues.box
        box = (
            _clipped_box(cx - sx / 2, cy - sy / 2, sx, sy, width, height)
            if np.all(np.isfinite(cues.box))
            else None
        )
        if box is not None:
            out.source = "detection"
            return box
        out.problems.append(
            Problem("detection", f"detection ignored: box {cues.box} is outside the image", "outside")
        )
    return None


def isolate(
    cues: ObjectCues,
    width: int,
    height: int,
    K: np.ndarray,
    up: np.ndarray | None = None,
    rgb: np.ndarray | None = None,
) -> Isolation:
    """The virtual camera (no roll about `up`, see virtual_camera), the pixels to keep and the
    distance for an image of width x height with intrinsics K, from `cues`; problems lists what was
    unusable. With `rgb` (uint8 (H, W, 3)), a box is segmented by GrabCut (object_crop.grabcut_mask)
    and then used as a mask."""
    out = Isolation()
    mask = _decoded_mask(cues.mask, width, height, out) if cues.mask is not None else None
    direction = None
    if mask is not None:
        out.source = "mask"
    else:
        box = _box_cue(cues, width, height, out)
        if box is not None:
            x0, y0, w, h = box
            mask = grabcut_mask(rgb, box) if rgb is not None else None
            if mask is None:
                out.alpha = roi_alpha(height, width, x0, y0, w, h)
                direction = pixel_direction(K, x0 + w / 2, y0 + h / 2)
    if mask is not None:
        out.alpha, out.segmented = mask, True
        direction = silhouette_direction(mask, K)
    if direction is not None:
        try:
            out.view = virtual_camera(direction, up)
        except ValueError as e:
            out.problems.append(Problem("off_axis", f"{e}; cropping around the principal point"))
    if cues.depth is not None:
        out.distance = _in_range(_distance(cues.depth, out, width, height, K), out)
        if (
            mask is not None
            and out.distance is not None
            and not any(p.cause == "depth" for p in out.problems)
        ):
            _centre_from_depth(cues.depth, mask, K, up, out)
            out.distance = _in_range(out.distance, out)
    return out


def _in_range(distance: float | None, out: Isolation) -> float | None:
    """The depth's distance if it is one the object_distance parameter could hold, else None (the
    parameter is used) and a problem: a depth in the wrong unit, or of the far wall, must not scale
    the target poses by a factor of 1000."""
    lo, hi = OBJECT_DISTANCE_M
    if distance is None or lo <= distance <= hi:
        return distance
    out.problems.append(
        Problem("depth", f"depth ignored: object {distance:.3g} m away, outside [{lo:g}, {hi:g}] m", "range")
    )
    return None


def footprint_centre(points: np.ndarray, up: np.ndarray) -> np.ndarray:
    """The centre of the box an object standing on the ground fills, from its visible surface
    `points` (N, 3) and the world's `up`, both in the input camera's frame: across the ground, the
    centre of the smallest rectangle around the points' footprint (OpenCV's minAreaRect: an elevated
    view sees the top and two sides, whose footprint spans the whole object); up, the middle of their
    heights. Measured on training renders: 0.4 px rms off the true centre's projection at 32 px, where
    the silhouette's mean direction is 2.9 px off (it leans towards the near end)."""
    e1 = np.cross(up, [0.0, 0.0, 1.0]) if abs(up[2]) < 0.9 else np.cross(up, [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    (c1, c2), _, _ = cv2.minAreaRect(np.stack([points @ e1, points @ e2], axis=1).astype(np.float32))
    heights = points @ up
    lo, hi = np.percentile(heights, [0.5, 99.5])
    return c1 * e1 + c2 * e2 + (lo + hi) / 2 * up


def _centre_from_depth(msg: Image, mask: np.ndarray, K: np.ndarray, up, out: Isolation) -> None:
    """Aim at the object's centre found in 3D (footprint_centre), and take its distance from there."""
    points = surface_points(depth_to_metres(msg), mask, K)
    reach = np.linalg.norm(points, axis=1)
    median = np.median(reach) if len(reach) else 0.0
    points = points[(reach > 0.5 * median) & (reach < 2.0 * median)]  # a loose mask's far background
    if len(points) < 16:
        return
    up = np.array([0.0, -1.0, 0.0]) if up is None else np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    centre = footprint_centre(points, up)
    try:
        out.view = virtual_camera(centre, up)
    except ValueError:
        return
    out.distance = float(np.linalg.norm(centre))


def _distance(msg: Image, out: Isolation, width: int, height: int, K: np.ndarray) -> float | None:
    depth = _decoded("depth", depth_to_metres, msg, width, height, out)
    if depth is None:
        return None
    where = out.alpha
    if where is None or not out.segmented:
        # Without a mask the box holds background too: its central ninth is mostly the object.
        if where is None:
            x0, y0, w, h = 0, 0, width, height
        else:
            ys, xs = np.nonzero(where.any(axis=1))[0], np.nonzero(where.any(axis=0))[0]
            x0, y0, w, h = xs[0], ys[0], xs[-1] + 1 - xs[0], ys[-1] + 1 - ys[0]
        where = roi_alpha(height, width, x0 + w // 3, y0 + h // 3, max(1, w // 3), max(1, h // 3))
    d = ray_distances(depth, where, K)
    if d.size == 0:
        out.problems.append(
            Problem("depth", "depth ignored: no valid reading (0 or NaN) on the object", "no_reading")
        )
        return None
    return float(np.median(d)) * SURFACE_TO_CENTRE
