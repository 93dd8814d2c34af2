"""Procedural toy cars from boxes and cylinders, in the canonical pose of ShapeNet/SRN cars.

A car faces +x, its width is along y and it stands on z = min; the whole car is centred on its
bounding box at the origin.  Length 0.88-1.08 units, so at the SRN camera radius 1.3 and 52 degree
field of view it fills the frame about as an SRN car does.  Body colours follow the rough world
share of car colours (white, black, grey and silver are most of them).
"""

from __future__ import annotations

import colorsys

import numpy as np

from training.objects.parts import Part, shift

# (name, share, base RGB in [0, 1]): roughly the global new-car colour mix.
CAR_COLOURS: tuple[tuple[str, float, tuple[float, float, float]], ...] = (
    ("white", 0.25, (0.93, 0.93, 0.92)),
    ("black", 0.19, (0.07, 0.07, 0.08)),
    ("grey", 0.15, (0.42, 0.43, 0.45)),
    ("silver", 0.11, (0.72, 0.73, 0.75)),
    ("blue", 0.09, (0.10, 0.22, 0.55)),
    ("red", 0.09, (0.70, 0.08, 0.08)),
    ("brown", 0.04, (0.40, 0.26, 0.16)),
    ("green", 0.025, (0.10, 0.38, 0.18)),
    ("beige", 0.02, (0.80, 0.72, 0.55)),
    ("yellow", 0.015, (0.92, 0.78, 0.10)),
    ("orange", 0.015, (0.92, 0.45, 0.08)),
    ("gold", 0.01, (0.75, 0.62, 0.30)),
    ("purple", 0.01, (0.35, 0.15, 0.45)),
)
BODY_STYLES = ("sedan", "hatchback", "suv", "pickup", "van", "coupe")
_STYLE_SHARE = (0.32, 0.2, 0.2, 0.1, 0.08, 0.1)


def sample_colour(rng: np.random.Generator) -> tuple[str, tuple[float, float, float, float]]:
    """A body colour: a named colour from the car-colour mix, jittered in hue/saturation/value."""
    shares = np.array([c[1] for c in CAR_COLOURS])
    name, _, rgb = CAR_COLOURS[rng.choice(len(CAR_COLOURS), p=shares / shares.sum())]
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    h = (h + rng.normal(0.0, 0.02)) % 1.0
    s = float(np.clip(s * rng.uniform(0.8, 1.2), 0.0, 1.0))
    v = float(np.clip(v * rng.uniform(0.85, 1.1), 0.0, 1.0))
    return name, (*colorsys.hsv_to_rgb(h, s, v), 1.0)


def _grey(v: float) -> tuple[float, float, float, float]:
    return (v, v, v, 1.0)


def sample_car(rng: np.random.Generator) -> list[Part]:
    """One random car as Parts, centred on its bounding box."""
    style = BODY_STYLES[rng.choice(len(BODY_STYLES), p=_STYLE_SHARE)]
    colour_name, body = sample_colour(rng)
    roof = body
    if rng.random() < 0.15:  # two-tone: contrasting roof
        roof = _grey(0.06) if colour_name in ("white", "silver", "beige", "yellow") else _grey(0.92)
    trim = _grey(rng.uniform(0.05, 0.2)) if rng.random() < 0.6 else body
    glass = (0.08, 0.1, 0.13, 1.0) if rng.random() < 0.8 else (0.25, 0.32, 0.4, 1.0)

    L = rng.uniform(0.88, 1.08)
    W = L * rng.uniform(0.40, 0.48)
    wheel_r = L * rng.uniform(0.085, 0.115)
    clearance = wheel_r * rng.uniform(0.35, 0.6)
    body_h = L * rng.uniform(0.13, 0.19)
    cabin_h = L * {"suv": 0.2, "van": 0.26}.get(style, 0.15) * rng.uniform(0.85, 1.15)
    cabin_len = (
        L
        * {
            "sedan": 0.48,
            "coupe": 0.40,
            "hatchback": 0.52,
            "suv": 0.62,
            "van": 0.80,
            "pickup": 0.32,
        }[style]
        * rng.uniform(0.9, 1.1)
    )
    cabin_x = {
        "sedan": -0.04,
        "coupe": -0.06,
        "hatchback": -0.12,
        "suv": -0.12,
        "van": -0.07,
        "pickup": 0.04,
    }[style] * L + rng.uniform(-0.03, 0.03) * L
    cabin_w = W * rng.uniform(0.8, 0.92)
    if style in ("suv", "van"):
        body_h *= 1.15
        clearance *= 1.3

    body_z0 = clearance
    body_top = body_z0 + body_h
    parts: list[Part] = [
        Part("box", (L / 2, W / 2, body_h / 2), (0.0, 0.0, body_z0 + body_h / 2), rgba=body, tag="body"),
        Part(
            "box",
            (cabin_len / 2, cabin_w / 2, cabin_h / 2),
            (cabin_x, 0.0, body_top + cabin_h / 2),
            rgba=roof,
            tag="cabin",
        ),
    ]
    # Windows: thin dark slabs just proud of the cabin's faces.
    eps = 0.004
    win_h = cabin_h * 0.7
    win_z = body_top + cabin_h * 0.45
    for sx, tag in ((1.0, "windshield"), (-1.0, "rear_window")):
        parts.append(
            Part(
                "box",
                (eps, cabin_w / 2 * 0.9, win_h / 2),
                (cabin_x + sx * (cabin_len / 2 + eps), 0.0, win_z),
                rgba=glass,
                tag=tag,
            )
        )
    for sy in (1.0, -1.0):
        parts.append(
            Part(
                "box",
                (cabin_len / 2 * 0.88, eps, win_h / 2),
                (cabin_x, sy * (cabin_w / 2 + eps), win_z),
                rgba=glass,
                tag="side_window",
            )
        )
    if style == "pickup":
        bed_len = (cabin_x - cabin_len / 2) + L / 2 - 0.03
        bed_x = -L / 2 + bed_len / 2 + 0.01
        parts.append(
            Part(
                "box",
                (bed_len / 2, W / 2 * 0.92, 0.004),
                (bed_x, 0.0, body_top + 0.004),
                rgba=_grey(0.15),
                tag="bed",
            )
        )
    # Wheels: tyres with hubcaps, axis along y.
    axle_x = (L / 2 - wheel_r * rng.uniform(1.3, 1.7)) * np.array([1.0, -1.0])
    tyre_w = W * rng.uniform(0.16, 0.22)
    hub = _grey(rng.choice([0.75, 0.55, 0.15]))
    for x in axle_x:
        for sy in (1.0, -1.0):
            y = sy * (W / 2 - tyre_w / 2 + 0.01)
            parts.append(
                Part(
                    "cylinder",
                    (wheel_r, tyre_w),
                    (x, y, wheel_r),
                    rpy=(np.pi / 2, 0, 0),
                    rgba=_grey(0.05),
                    tag="wheel",
                )
            )
            parts.append(
                Part(
                    "cylinder",
                    (wheel_r * 0.55, tyre_w + 0.01),
                    (x, y, wheel_r),
                    rpy=(np.pi / 2, 0, 0),
                    rgba=hub,
                    tag="hubcap",
                )
            )
    # Lights and bumpers.
    light_z = body_z0 + body_h * 0.7
    light_w, light_h = W * rng.uniform(0.12, 0.2), body_h * rng.uniform(0.15, 0.3)
    for sy in (1.0, -1.0):
        y = sy * (W / 2 - light_w / 2 - W * 0.05)
        parts.append(
            Part(
                "box",
                (0.006, light_w / 2, light_h / 2),
                (L / 2 + 0.004, y, light_z),
                rgba=(1.0, 0.96, 0.8, 1.0),
                tag="headlight",
            )
        )
        parts.append(
            Part(
                "box",
                (0.006, light_w / 2, light_h / 2),
                (-L / 2 - 0.004, y, light_z),
                rgba=(0.8, 0.05, 0.05, 1.0),
                tag="taillight",
            )
        )
    bumper_h = body_h * rng.uniform(0.2, 0.3)
    for sx in (1.0, -1.0):
        parts.append(
            Part(
                "box",
                (0.012, W / 2 * 1.01, bumper_h / 2),
                (sx * (L / 2 + 0.008), 0.0, body_z0 + bumper_h / 2 + 0.005),
                rgba=trim,
                tag="bumper",
            )
        )
    if style in ("sedan", "coupe", "hatchback") and rng.random() < 0.15:
        spoiler_z = body_top + L * 0.05
        parts.append(
            Part(
                "box",
                (L * 0.04, W / 2 * 0.9, 0.006),
                (-L / 2 + L * 0.05, 0.0, spoiler_z),
                rgba=trim,
                tag="spoiler",
            )
        )
        for sy in (1.0, -1.0):
            parts.append(
                Part(
                    "box",
                    (0.008, 0.008, (spoiler_z - body_top) / 2),
                    (-L / 2 + L * 0.05, sy * W * 0.3, (spoiler_z + body_top) / 2),
                    rgba=trim,
                    tag="spoiler",
                )
            )
    return centre_parts(parts)


def _part_bounds(p: Part) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds of a box/cylinder/sphere part (of its rotated local bounding box)."""
    if p.kind == "box":
        half = np.array(p.size)
    elif p.kind == "cylinder":
        half = np.array([p.size[0], p.size[0], p.size[1] / 2])
    else:
        half = np.full(3, p.size[0])
    cr, sr = np.cos(p.rpy[0]), np.sin(p.rpy[0])
    cp, sp = np.cos(p.rpy[1]), np.sin(p.rpy[1])
    cy, sy = np.cos(p.rpy[2]), np.sin(p.rpy[2])
    R = (
        np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        @ np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        @ np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    )
    ext = np.abs(R) @ half
    c = np.asarray(p.position)
    return c - ext, c + ext


def bounds(parts: list[Part]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = zip(*(_part_bounds(p) for p in parts), strict=True)
    return np.min(lo, axis=0), np.max(hi, axis=0)


def centre_parts(parts: list[Part]) -> list[Part]:
    lo, hi = bounds(parts)
    return shift(parts, -(lo + hi) / 2)
