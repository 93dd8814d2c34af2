"""Procedural toy cars from boxes and cylinders, in the canonical pose of ShapeNet/SRN cars.

A car faces +x, its width is along y and it stands on z = min; the whole car is centred on its
bounding box at the origin.  Length 0.88-1.08 units, so at the SRN camera radius 1.3 and 52 degree
field of view it fills the frame about as an SRN car does.  Body colours follow the rough world
share of car colours (white, black, grey and silver are most of them).
"""

from __future__ import annotations

import colorsys

import numpy as np

from training.objects.meshes import inset, plate, prism
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
# Side-profile stations as fractions of the length (x forward): windshield base, roof front,
# roof rear, rear-window base.
BODY_STYLES: dict[str, tuple[float, float, float, float]] = {
    "sedan": (0.20, 0.02, -0.20, -0.32),
    "coupe": (0.16, -0.02, -0.14, -0.36),
    "hatchback": (0.18, 0.02, -0.36, -0.46),
    "wagon": (0.20, 0.04, -0.44, -0.47),
    "suv": (0.24, 0.12, -0.44, -0.47),
    "van": (0.40, 0.28, -0.47, -0.49),
    "pickup": (0.22, 0.10, -0.10, -0.11),
}
_STYLE_SHARE = {
    "sedan": 0.28,
    "coupe": 0.08,
    "hatchback": 0.18,
    "wagon": 0.08,
    "suv": 0.22,
    "van": 0.06,
    "pickup": 0.1,
}


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
    styles = list(BODY_STYLES)
    share = np.array([_STYLE_SHARE[k] for k in styles])
    style = styles[rng.choice(len(styles), p=share / share.sum())]
    colour_name, body = sample_colour(rng)
    roof = body
    if rng.random() < 0.15:  # two-tone: contrasting roof and pillars
        roof = _grey(0.06) if colour_name in ("white", "silver", "beige", "yellow") else _grey(0.9)
    trim = _grey(rng.uniform(0.05, 0.2)) if rng.random() < 0.6 else body
    glass = (0.07, 0.09, 0.12, 1.0) if rng.random() < 0.8 else (0.22, 0.28, 0.36, 1.0)
    tall = style in ("suv", "van")

    L = rng.uniform(0.88, 1.08)
    W = L * rng.uniform(0.40, 0.47)
    wheel_r = L * rng.uniform(0.085, 0.115) * (1.1 if tall else 1.0)
    z0 = wheel_r * rng.uniform(0.45, 0.7) * (1.25 if tall else 1.0)
    body_h = L * rng.uniform(0.14, 0.19) * (1.15 if tall else 1.0)
    cabin_h = L * {"suv": 0.19, "van": 0.25, "coupe": 0.12}.get(style, 0.15) * rng.uniform(0.88, 1.12)
    z_belt, z_roof = z0 + body_h, z0 + body_h + cabin_h
    stations = np.array(BODY_STYLES[style]) + rng.uniform(-0.025, 0.025, size=4)
    ws, rf, rr, rw = np.maximum.accumulate(stations[::-1])[::-1] * L  # keep front-to-back order
    cabin_w = W * rng.uniform(0.78, 0.9)

    # Lower body: a bevelled side profile extruded across the width.
    bevel = body_h * 0.15
    nose = z_belt - body_h * rng.uniform(0.1, 0.35)
    tail = z_belt - body_h * rng.uniform(0.05, 0.2)
    hood_edge, boot_edge = L / 2 - L * rng.uniform(0.03, 0.08), -L / 2 + L * rng.uniform(0.02, 0.05)
    lower = [
        (-L / 2 + bevel, z0),
        (L / 2 - bevel, z0),
        (L / 2, z0 + bevel),
        (L / 2, nose),
        (hood_edge, z_belt),
        (boot_edge, z_belt),
        (-L / 2, tail),
        (-L / 2, z0 + bevel),
    ]
    parts = [prism(lower, -W / 2, W / 2, body, "body")]
    # Greenhouse: roof and pillars in the roof colour, windows as dark plates just outside it.
    cabin = [(ws, z_belt - 0.005), (rf, z_roof), (rr, z_roof), (rw, z_belt - 0.005)]
    parts.append(prism(cabin, -cabin_w / 2, cabin_w / 2, roof, "cabin"))
    window = inset([(ws, z_belt), (rf, z_roof), (rr, z_roof), (rw, z_belt)], cabin_h * 0.12)
    for sy in (1.0, -1.0):
        y = sy * (cabin_w / 2 + 0.002)
        parts.append(plate([(x, y, z) for x, z in window], (0, sy, 0), glass, "side_window"))
        if style not in ("coupe", "pickup"):  # B-pillar
            xm, half = (
                (window[0, 0] + window[3, 0]) / 2 * 0.6 + (window[1, 0] + window[2, 0]) / 2 * 0.4,
                L * 0.012,
            )
            zb, zt = window[:, 1].min(), window[:, 1].max()
            y2 = sy * (cabin_w / 2 + 0.004)
            corners = [(xm - half, y2, zb), (xm + half, y2, zb), (xm + half, y2, zt), (xm - half, y2, zt)]
            parts.append(plate(corners, (0, sy, 0), roof, "pillar"))
    for (xa, za), (xb, zb), tag in (
        ((ws, z_belt), (rf, z_roof), "windshield"),
        ((rw, z_belt), (rr, z_roof), "rear_window"),
    ):
        d = np.array([xb - xa, zb - za])
        normal = np.array([d[1], 0.0, -d[0]]) if tag == "windshield" else np.array([-d[1], 0.0, d[0]])
        normal /= np.linalg.norm(normal)
        corners = []
        for s_, sy in ((0.1, -1), (0.1, 1), (0.9, 1), (0.9, -1)):
            x, z = np.array([xa, za]) + s_ * d
            corners.append(np.array([x, sy * cabin_w / 2 * 0.86, z]) + normal * 0.003)
        parts.append(plate(corners, normal, glass, tag))
    if style == "pickup":
        bed = [(boot_edge + 0.02, -W / 2 * 0.85, z_belt + 0.002), (rw - 0.02, -W / 2 * 0.85, z_belt + 0.002)]
        bed += [(rw - 0.02, W / 2 * 0.85, z_belt + 0.002), (boot_edge + 0.02, W / 2 * 0.85, z_belt + 0.002)]
        parts.append(plate(bed, (0, 0, 1), _grey(0.12), "bed"))

    # Wheels: tyres with hubcaps, axis along y, half hidden in the body.
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

    # Lights, grille, bumpers, mirrors.
    light_w = W * rng.uniform(0.12, 0.2)
    front_lo, front_hi = z0 + bevel, nose
    lz0, lz1 = (
        front_hi - (front_hi - front_lo) * rng.uniform(0.3, 0.45),
        front_hi - (front_hi - front_lo) * 0.08,
    )
    rear_lo, rear_hi = z0 + bevel, tail
    tz0, tz1 = rear_hi - (rear_hi - rear_lo) * rng.uniform(0.25, 0.4), rear_hi - (rear_hi - rear_lo) * 0.08
    for sy in (1.0, -1.0):
        y_out, y_in = sy * (W / 2 - W * 0.04), sy * (W / 2 - W * 0.04 - light_w)
        x = L / 2 + 0.002
        parts.append(
            plate(
                [(x, y_in, lz0), (x, y_out, lz0), (x, y_out, lz1), (x, y_in, lz1)],
                (1, 0, 0),
                (1.0, 0.95, 0.78, 1.0),
                "headlight",
            )
        )
        x = -L / 2 - 0.002
        parts.append(
            plate(
                [(x, y_in, tz0), (x, y_out, tz0), (x, y_out, tz1), (x, y_in, tz1)],
                (-1, 0, 0),
                (0.75, 0.04, 0.04, 1.0),
                "taillight",
            )
        )
    if rng.random() < 0.7:
        gy = W / 2 - W * 0.06 - light_w
        x = L / 2 + 0.002
        parts.append(
            plate(
                [(x, -gy, lz0), (x, gy, lz0), (x, gy, lz1), (x, -gy, lz1)], (1, 0, 0), _grey(0.08), "grille"
            )
        )
    bumper_h = body_h * rng.uniform(0.18, 0.28)
    for sx in (1.0, -1.0):
        parts.append(
            Part(
                "box",
                (0.012, W / 2 * 1.01, bumper_h / 2),
                (sx * (L / 2 + 0.006), 0.0, z0 + bevel + bumper_h / 2),
                rgba=trim,
                tag="bumper",
            )
        )
    if rng.random() < 0.6:
        for sy in (1.0, -1.0):
            parts.append(
                Part(
                    "box",
                    (0.015, 0.025, 0.015),
                    (ws - 0.02 * L, sy * (cabin_w / 2 + 0.03), z_belt + 0.025),
                    rgba=body,
                    tag="mirror",
                )
            )
    if style in ("sedan", "coupe") and rng.random() < 0.15:
        spoiler_z, sx = z_belt + L * 0.05, boot_edge + L * 0.04
        parts.append(
            Part("box", (L * 0.035, W / 2 * 0.9, 0.006), (sx, 0.0, spoiler_z), rgba=trim, tag="spoiler")
        )
        for sy in (1.0, -1.0):
            strut = (spoiler_z - z_belt) / 2 + 0.003
            parts.append(
                Part(
                    "box",
                    (0.008, 0.008, strut),
                    (sx, sy * W * 0.3, z_belt + strut - 0.003),
                    rgba=trim,
                    tag="spoiler",
                )
            )
    if style in ("suv", "wagon") and rng.random() < 0.25:
        for sy in (1.0, -1.0):
            parts.append(
                Part(
                    "box",
                    ((rf - rr) / 2 * 0.85, 0.008, 0.01),
                    ((rf + rr) / 2, sy * cabin_w * 0.35, z_roof + 0.012),
                    rgba=_grey(0.15),
                    tag="roof_rack",
                )
            )
    return centre_parts(parts)


def _part_bounds(p: Part) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds of a part (of its rotated local bounding box for primitives)."""
    if p.kind == "trimesh":
        v = np.asarray(p.vertices) + np.asarray(p.position)
        return v.min(axis=0), v.max(axis=0)
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
