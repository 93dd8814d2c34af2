"""What Debian's torcs-data holds for the `torcs` set: each car's body, liveries and wheels, read from
its folder and its XML (the parameters TORCS itself places the wheels by), and the split by model.

    python -m training.objects.torcs_catalogue [--torcs-cache DIR]   # lists the cars and their splits
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from training.objects.torcs_fetch import TorcsDataError, torcs_root

# TORCS parameter units (attnum's `unit`) in metres; no unit means metres.
_UNITS = {None: 1.0, "m": 1.0, "mm": 0.001, "cm": 0.01, "in": 0.0254}
_WHEELS = (
    ("Front Right Wheel", "Front Axle"),
    ("Front Left Wheel", "Front Axle"),
    ("Rear Right Wheel", "Rear Axle"),
    ("Rear Left Wheel", "Rear Axle"),
)
# car1-trb3 reworks car1-trb1's body (same authors and readme, same 4.5 x 2.1 x 1.3 m box): one model
# for the split, so neither is ever seen in training while the other is tested.
_SAME_BODY = {"car1-trb3": "car1-trb1"}
_HELD_OUT_PER_SPLIT = 2  # test and val models each (of 16 distinct bodies)


@dataclass(frozen=True)
class Wheel:
    """One wheel in the TORCS car frame (x forward, y left, z up; metres), as TORCS draws it: a tyre of
    radius rim + tyre height and the tyre's width, centred at the axle's x, the wheel's y and, at rest,
    z = radius - ride height (the model's z = 0 is the car's floor, ride height above the road)."""

    x: float
    y: float
    z: float
    radius: float
    rim_radius: float
    width: float


@dataclass(frozen=True)
class TorcsCar:
    """One car of torcs-data: its highest-detail body, the texture its liveries replace, its liveries
    (the car's own first, then each robot driver's repaint) and its four wheels."""

    name: str
    body: Path
    livery_name: str  # the body's texture file that a livery stands in for (<name>.rgb)
    liveries: tuple[Path, ...]
    wheel_texture: Path | None
    wheels: tuple[Wheel, ...]

    @property
    def split_key(self) -> str:
        return _SAME_BODY.get(self.name, self.name)


def _section(params: ET.Element, path: str) -> ET.Element | None:
    """The nested <section> at `path` ("Graphic Objects/Ranges/1"), or None."""
    node = params
    for name in path.split("/"):
        node = next((s for s in node.findall("section") if s.get("name") == name), None)
        if node is None:
            return None
    return node


def _num(params: ET.Element, section: str, name: str, xml: Path) -> float:
    node = _section(params, section)
    for a in node.findall("attnum") if node is not None else ():
        if a.get("name") == name:
            unit = a.get("unit")
            if unit not in _UNITS:
                raise TorcsDataError(f"{xml}: {section}/{name} has unit {unit!r}, not one of m, mm, cm, in")
            return float(a.get("val")) * _UNITS[unit]
    raise TorcsDataError(f"{xml}: no {section}/{name} (the wheels cannot be placed without it)")


def _str(params: ET.Element, section: str, name: str) -> str:
    node = _section(params, section)
    for a in node.findall("attstr") if node is not None else ():
        if a.get("name") == name:
            return a.get("val", "")
    return ""


def read_wheels(xml: Path) -> tuple[Wheel, ...]:
    """The four wheels a car XML describes (front right, front left, rear right, rear left)."""
    params = ET.parse(xml).getroot()
    wheels = []
    for wheel, axle in _WHEELS:
        rim = _num(params, wheel, "rim diameter", xml) / 2
        width = _num(params, wheel, "tire width", xml)
        radius = rim + width * _num(params, wheel, "tire height-width ratio", xml)
        ride = _num(params, wheel, "ride height", xml)
        x, y = _num(params, axle, "xpos", xml), _num(params, wheel, "ypos", xml)
        wheels.append(Wheel(x, y, radius - ride, radius, rim, width))
    return tuple(wheels)


def read_car(root: Path, folder: Path) -> TorcsCar:
    """The car in `root`/cars/<folder>, with its liveries from `root`/drivers."""
    name = folder.name
    xml = folder / f"{name}.xml"
    params = ET.parse(xml).getroot()
    body = folder / (_str(params, "Graphic Objects/Ranges/1", "car") or f"{name}.acc")
    if not body.is_file():
        raise TorcsDataError(f"{xml}: its body {body.name} is not in {folder}")
    livery_name = f"{name}.rgb"
    # TORCS looks for a car's textures in drivers/<robot>/<index>/ and drivers/<robot>/ before the
    # car's own folder, so every <name>.rgb there is a livery of this body.
    liveries = [folder / livery_name] if (folder / livery_name).is_file() else []
    liveries += sorted((root / "drivers").glob(f"*/*/{livery_name}"))
    liveries += sorted((root / "drivers").glob(f"*/{livery_name}"))
    if not liveries:
        raise TorcsDataError(f"{folder}: no livery {livery_name} in the car's folder or drivers/")
    wheel_texture = folder / _str(params, "Graphic Objects", "wheel texture")
    return TorcsCar(
        name,
        body,
        livery_name,
        tuple(liveries),
        wheel_texture if wheel_texture.is_file() else None,
        read_wheels(xml),
    )


@lru_cache(maxsize=4)
def read_catalogue(root: Path) -> tuple[TorcsCar, ...]:
    """Every car under `root`/cars (a folder with a <name>.xml), sorted by name."""
    folders = sorted(p for p in (root / "cars").iterdir() if (p / f"{p.name}.xml").is_file())
    if not folders:
        raise TorcsDataError(f"{root / 'cars'}: no car folders (a <name>/<name>.xml each)")
    return tuple(read_car(root, f) for f in folders)


def catalogue(cache: str | Path | None = None) -> tuple[TorcsCar, ...]:
    """The cars of torcs-data (fetched into the cache on first use, see torcs_fetch)."""
    return read_catalogue(torcs_root(cache))


def split_of(car: TorcsCar, cars: tuple[TorcsCar, ...]) -> str:
    """The car's split by a fixed hash of its body's name: the first 2 bodies in hash order test, the
    next 2 val, the rest train (a reworked body goes with the one it reworks, `_SAME_BODY`)."""
    keys = sorted({c.split_key for c in cars}, key=lambda k: (zlib.crc32(k.encode()), k))
    rank = keys.index(car.split_key)
    if rank < _HELD_OUT_PER_SPLIT:
        return "test"
    return "val" if rank < 2 * _HELD_OUT_PER_SPLIT else "train"


def cars_of(split: str, cars: tuple[TorcsCar, ...]) -> list[TorcsCar]:
    return [c for c in cars if split_of(c, cars) == split]


def describe(cars: tuple[TorcsCar, ...]) -> str:
    """One line per split: its cars, each with its number of liveries."""
    lines = []
    for split in ("train", "val", "test"):
        pool = cars_of(split, cars)
        names = ", ".join(f"{c.name} ({len(c.liveries)})" for c in pool)
        liveries = sum(len(c.liveries) for c in pool)
        lines.append(f"torcs {split}: {len(pool)} cars, {liveries} liveries: {names}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.objects.torcs_catalogue", description=__doc__)
    p.add_argument("--torcs-cache", default=None, help="folder holding (or to fetch) the torcs-data .deb")
    args = p.parse_args(argv)
    try:
        cars = catalogue(args.torcs_cache)
    except TorcsDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(describe(cars))
    return 0


if __name__ == "__main__":
    sys.exit(main())
