"""Reading and writing the files of the SRN dataset layout (one instance directory).

    <root>/<split>/<instance>/rgb/000000.png     RGB(A) PNG, white background
    <root>/<split>/<instance>/pose/000000.txt    16 floats, row-major 4x4 camera-to-world (OpenCV)
    <root>/<split>/<instance>/intrinsics.txt     "f cx cy 0." / "0. 0. 0." / "1." / "H W"

Errors are ValueError / FileNotFoundError whose message names the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyldm_ros.poses import check_rigid

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of a square-pixel camera (pixel (i, j) covers [j, j+1) x [i, i+1))."""

    f: float
    cx: float
    cy: float
    height: int
    width: int

    def scaled_to(self, size: int) -> Intrinsics:
        """The same camera after resizing the (square) image to size x size."""
        s = size / self.width
        return Intrinsics(self.f * s, self.cx * s, self.cy * s, size, size)

    def matrix(self) -> np.ndarray:
        return np.array([[self.f, 0.0, self.cx], [0.0, self.f, self.cy], [0.0, 0.0, 1.0]])


def read_intrinsics(path: Path) -> Intrinsics:
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot read intrinsics ({e.strerror})") from None
    try:
        f, cx, cy = (float(v) for v in lines[0][:3])
        height, width = (int(float(v)) for v in lines[3][:2])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: not an SRN intrinsics file (want 'f cx cy 0.' ... 'H W')") from None
    values = np.array([f, cx, cy])
    if not np.all(np.isfinite(values)) or f <= 0 or height <= 0 or width <= 0:
        raise ValueError(f"{path}: invalid intrinsics f={f} cx={cx} cy={cy} H={height} W={width}")
    if not (0 <= cx <= width and 0 <= cy <= height):
        raise ValueError(f"{path}: principal point ({cx}, {cy}) lies outside the {width}x{height} image")
    return Intrinsics(f, cx, cy, height, width)


def format_intrinsics(k: Intrinsics) -> str:
    return f"{k.f:.6f} {k.cx:.6f} {k.cy:.6f} 0.\n0. 0. 0.\n1.\n{k.height} {k.width}\n"


def read_pose(path: Path) -> np.ndarray:
    """A 4x4 float64 c2w from a pose file (16 numbers, any whitespace), checked to be rigid."""
    path = Path(path)
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot read pose ({e.strerror})") from None
    except ValueError:
        raise ValueError(f"{path}: pose file contains something that is not a number") from None
    if values.size != 16:
        raise ValueError(f"{path}: pose must have 16 numbers (row-major 4x4), found {values.size}")
    return check_rigid(values.reshape(4, 4), name=str(path))


def format_pose(c2w: np.ndarray) -> str:
    # repr-precision so a written pose reads back bit-exactly.
    return " ".join(repr(float(v)) for v in np.asarray(c2w, dtype=np.float64).reshape(16)) + "\n"


def view_name(index: int) -> str:
    return f"{index:06d}"
