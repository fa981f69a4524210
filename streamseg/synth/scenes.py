"""Synthetic scenes with pixel-exact ground truth.

Real SegNeXt weights cannot be fetched everywhere streamseg is tested, so a
small model is trained on these scenes and the end-to-end tests score the
pipeline's masks against their ground truth. The scenes are built to be
learnable but not trivial: class colours overlap (the main hue ranges of
neighbouring classes nearly touch, lighting and tints shift them across, and an
object's second colour may take any hue), so shape and texture have to be used;
backgrounds are textured and cluttered; objects move, rotate, scale, occlude
each other and enter/leave the frame; lighting drifts, sensors add noise,
cameras shake.

Image and mask are drawn from the same rasterised polygons, so the mask is the
class of the top-most object at every pixel (background 0). Where camera-shake
blur mixes two classes, a thin band is marked ``IGNORE_INDEX``.

Determinism: every random draw comes from a numpy ``Generator`` (PCG64) seeded
from the clip seed plus a purpose/index key, scalar geometry uses Python's
``math``, and the OpenCV calls are integer paths (``fillPoly`` with fixed-point
vertices, uint8 ``resize``/``warpAffine``), so the same arguments give the
same frames on any machine with the same numpy/OpenCV versions. Scene layout
is defined in frame-relative units, so one seed gives the same scene at any
resolution of the same aspect ratio.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from streamseg.errors import ConfigError

__all__ = ["CLASSES", "PALETTE", "IGNORE_INDEX", "SceneClip", "random_sample"]

CLASSES: tuple[str, ...] = ("background", "disc", "box", "triangle", "star", "ring", "bar", "blob")
PALETTE: np.ndarray = np.array(
    [
        [0, 0, 0],
        [230, 25, 75],
        [255, 225, 25],
        [60, 180, 75],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
    ],
    dtype=np.uint8,
)
PALETTE.setflags(write=False)
IGNORE_INDEX = 255

_NUM_OBJ_CLASSES = len(CLASSES) - 1
_MIN_SIDE = 16
_R0 = 1.05  # half-extent of a texture patch in canonical object units (shapes fit in radius 1)

# Random-stream keys: one independent stream per purpose, so lazily created
# parts (textures) never shift the draws of others.
_K_CLIP, _K_OBJECT, _K_BAG, _K_BLUR, _K_NOISE, _K_TEXTURE, _K_BACKGROUND = range(7)

# Per class: diameter range as a fraction of the frame's shorter side, texture
# choices with probabilities, and the centre of its (wide, overlapping) hue range.
_SIZES = {
    1: (0.18, 0.42),
    2: (0.20, 0.45),
    3: (0.24, 0.50),  # triangles and stars cover less of their circle: draw them larger
    4: (0.26, 0.50),
    5: (0.26, 0.50),
    6: (0.30, 0.55),  # bars are long and thin: their width must survive stride 8
    7: (0.20, 0.45),
}
_TEXTURES: dict[int, tuple[tuple[str, ...], tuple[float, ...]]] = {
    1: (("dots", "plain", "gradient"), (0.55, 0.25, 0.20)),
    2: (("checker", "stripes", "plain"), (0.65, 0.20, 0.15)),
    3: (("stripes", "gradient", "plain"), (0.60, 0.25, 0.15)),
    4: (("plain", "noise", "gradient"), (0.45, 0.35, 0.20)),
    5: (("gradient", "plain", "stripes"), (0.50, 0.30, 0.20)),
    6: (("stripes", "noise", "checker"), (0.45, 0.30, 0.25)),
    7: (("noise", "dots"), (0.75, 0.25)),
}
_HUE_SPREAD = 20.0  # degrees either side of the class centre (centres 51 apart); second colours overlap


def _rng(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    """An independent stream per (seed, purpose, index); SeedSequence wants non-negative words."""
    return np.random.default_rng([seed, purpose, abs(index), 1 if index < 0 else 0])


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be (width, height) integers, got {size!r}") from None
    if w < _MIN_SIDE or h < _MIN_SIDE:
        raise ConfigError(f"size {w}x{h} is too small: use at least {_MIN_SIDE}x{_MIN_SIDE}")
    return w, h


def _hsv(h_deg: float, s: float, v: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb((h_deg % 360.0) / 360.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return np.array([r * 255.0, g * 255.0, b * 255.0], dtype=np.float32)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _wave(rng: np.random.Generator, amp: tuple[float, float], freq: tuple[float, float]) -> tuple[float, float, float]:
    """(amplitude, angular frequency, phase) of a smooth sinusoidal drift."""
    return _u(rng, *amp), _u(rng, *freq), _u(rng, 0.0, 2 * math.pi)


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _circle(n: int, rx: float, ry: float) -> np.ndarray:
    return np.array([[rx * math.cos(2 * math.pi * k / n), ry * math.sin(2 * math.pi * k / n)] for k in range(n)])


# --------------------------------------------------------------------------- shapes


def _make_shape(rng: np.random.Generator, cls: int) -> list[np.ndarray]:
    """Canonical contours (float64 ``N x 2``) inside the unit circle; several contours = holes (even-odd)."""
    name = CLASSES[cls]
    if name == "disc":
        a = float(rng.uniform(0.87, 1.0))
        return [_circle(64, 1.0, a)]
    if name == "ring":
        a = float(rng.uniform(0.9, 1.0))
        inner = float(rng.uniform(0.48, 0.6))
        return [_circle(64, 1.0, a), _circle(48, inner, inner * a)]
    if name in ("box", "bar"):
        aspect = float(rng.uniform(1.0, 1.6) if name == "box" else rng.uniform(2.8, 4.0))
        ang = math.atan(1.0 / aspect)
        hx, hy = math.cos(ang), math.sin(ang)
        return [np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])]
    if name == "triangle":
        pts = []
        for k in range(3):
            a = math.radians(-90.0 + 120.0 * k + float(rng.uniform(-12, 12)))
            r = float(rng.uniform(0.9, 1.0))
            pts.append([r * math.cos(a), r * math.sin(a)])
        return [np.array(pts)]
    if name == "star":
        points = int(rng.choice([5, 5, 6]))
        inner = float(rng.uniform(0.5, 0.6))
        pts = []
        for k in range(2 * points):
            a = -math.pi / 2 + math.pi * k / points
            r = 1.0 if k % 2 == 0 else inner
            pts.append([r * math.cos(a), r * math.sin(a)])
        return [np.array(pts)]
    if name == "blob":
        # strong low harmonics: a blob must not pass for a disc
        spans = {2: (0.08, 0.18), 3: (0.08, 0.18), 4: (0.03, 0.1)}
        harmonics = [(k, _u(rng, *spans[k]), _u(rng, 0, 2 * math.pi)) for k in (2, 3, 4)]
        radii = []
        for j in range(72):
            t = 2 * math.pi * j / 72
            radii.append(1.0 + sum(a * math.cos(k * t + p) for k, a, p in harmonics))
        peak = max(radii)
        angles = [2 * math.pi * j / 72 for j in range(72)]
        return [np.array([[r / peak * math.cos(a), r / peak * math.sin(a)] for a, r in zip(angles, radii)])]
    raise AssertionError(f"no shape for class {cls}")


# --------------------------------------------------------------------------- colours and textures


def _object_colours(rng: np.random.Generator, cls: int) -> tuple[np.ndarray, np.ndarray]:
    """Two colours: the class draws its main hue from a wide range that overlaps its neighbours'."""
    centre = (cls - 1) * 360.0 / _NUM_OBJ_CLASSES
    hue = centre + float(rng.uniform(-_HUE_SPREAD, _HUE_SPREAD))
    sat, val = float(rng.uniform(0.35, 1.0)), float(rng.uniform(0.45, 1.0))
    a = _hsv(hue, sat, val)
    if rng.random() < 0.5:  # same hue, different brightness
        b = _hsv(hue + _u(rng, -20, 20), sat * _u(rng, 0.5, 1.1), val * _u(rng, 0.3, 0.7))
    else:  # a second hue
        shift = _u(rng, 40, 180) * (1 if rng.random() < 0.5 else -1)
        b = _hsv(hue + shift, _u(rng, 0.2, 1.0), _u(rng, 0.25, 1.0))
    return a, b


def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1] (float32): a coarse uint8 grid upsampled by OpenCV's integer cubic path."""
    gh = max(2, round(cells * h / max(h, w))) + 1
    gw = max(2, round(cells * w / max(h, w))) + 1
    grid = rng.integers(0, 256, size=(gh, gw), dtype=np.uint8)
    up = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return up.astype(np.float32) * np.float32(1.0 / 255.0)


def _canonical_grid(p: int) -> tuple[np.ndarray, np.ndarray]:
    k = 2.0 * _R0 / p
    c = (np.arange(p, dtype=np.float32) + np.float32(0.5)) * np.float32(k) - np.float32(_R0)
    return c[None, :].repeat(p, 0), c[:, None].repeat(p, 1)


def _pattern(rng: np.random.Generator, kind: str, p: int, cls: int) -> np.ndarray:
    """Texture mix weights in [0, 1] over a ``p x p`` patch in canonical object coordinates."""
    u, v = _canonical_grid(p)
    if kind == "plain":
        ang = float(rng.uniform(0, 2 * math.pi))
        ramp = u * np.float32(math.cos(ang)) + v * np.float32(math.sin(ang))
        return (ramp + np.float32(1.0)) * np.float32(float(rng.uniform(0.0, 0.12)))
    if kind == "gradient":
        if CLASSES[cls] == "ring" or rng.random() < 0.3:
            ramp = np.sqrt(u * u + v * v)
        else:
            ang = float(rng.uniform(0, 2 * math.pi))
            ramp = (u * np.float32(math.cos(ang)) + v * np.float32(math.sin(ang)) + np.float32(1.0)) * np.float32(0.5)
        return np.clip(ramp, 0.0, 1.0)
    if kind == "checker":
        cell = np.float32(rng.uniform(0.18, 0.4))
        ang = float(rng.uniform(0, math.pi / 2)) if rng.random() < 0.4 else 0.0
        cu = u * np.float32(math.cos(ang)) + v * np.float32(math.sin(ang))
        cv_ = v * np.float32(math.cos(ang)) - u * np.float32(math.sin(ang))
        return ((np.floor(cu / cell) + np.floor(cv_ / cell)) % 2).astype(np.float32)
    if kind == "stripes":
        period = np.float32(rng.uniform(0.2, 0.45))
        duty = np.float32(rng.uniform(0.35, 0.65))
        ang = float(rng.uniform(0, math.pi))
        s = (u * np.float32(math.cos(ang)) + v * np.float32(math.sin(ang))) / period + np.float32(rng.uniform(0, 1))
        return ((s - np.floor(s)) < duty).astype(np.float32)
    if kind == "dots":
        spacing = np.float32(rng.uniform(0.25, 0.45))
        radius = spacing * np.float32(rng.uniform(0.25, 0.4))
        ou, ov = (np.float32(x) for x in rng.uniform(0, 1, size=2))
        fu = u / spacing + ou
        fv = v / spacing + ov
        du = (fu - np.floor(fu) - np.float32(0.5)) * spacing
        dv = (fv - np.floor(fv) - np.float32(0.5)) * spacing
        return ((du * du + dv * dv) < radius * radius).astype(np.float32)
    if kind == "noise":
        n = _value_noise(rng, p, p, int(rng.integers(4, 9)))
        fine = _value_noise(rng, p, p, int(rng.integers(14, 24)))
        mix = n * np.float32(0.7) + fine * np.float32(0.3)
        lo, hi = float(mix.min()), float(mix.max())
        return (mix - np.float32(lo)) * np.float32(1.0 / max(hi - lo, 1e-3))
    raise AssertionError(f"unknown texture {kind}")


def _make_texture(rng: np.random.Generator, cls: int, p: int) -> np.ndarray:
    """An RGB uint8 ``p x p`` patch that rotates and scales with its object."""
    kinds, probs = _TEXTURES[cls]
    kind = str(rng.choice(kinds, p=probs))
    a, b = _object_colours(rng, cls)
    w = _pattern(rng, kind, p, cls)[..., None]
    out = a * (np.float32(1.0) - w) + b * w
    # a soft light direction so flat objects are not perfectly flat
    u, v = _canonical_grid(p)
    ang = float(rng.uniform(0, 2 * math.pi))
    light = u * np.float32(math.cos(ang)) + v * np.float32(math.sin(ang))
    shade = np.float32(1.0) + np.float32(rng.uniform(0.0, 0.18)) * light
    out *= shade[..., None]
    return np.clip(out + np.float32(0.5), 0, 255).astype(np.uint8)


def _make_background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Gradient + optional clouds, low-contrast pattern and small clutter (all class 0)."""
    side = min(w, h)
    c1 = _hsv(float(rng.uniform(0, 360)), float(rng.uniform(0.0, 0.7)), float(rng.uniform(0.2, 0.95)))
    c2 = _hsv(float(rng.uniform(0, 360)), float(rng.uniform(0.0, 0.7)), float(rng.uniform(0.2, 0.95)))
    ys = np.arange(h, dtype=np.float32)[:, None] / np.float32(max(h - 1, 1))
    xs = np.arange(w, dtype=np.float32)[None, :] / np.float32(max(w - 1, 1))
    ang = float(rng.uniform(0, 2 * math.pi))
    ramp = xs * np.float32(math.cos(ang)) + ys * np.float32(math.sin(ang))
    ramp = (ramp - ramp.min()) / np.float32(max(float(ramp.max() - ramp.min()), 1e-6))
    ramp *= np.float32(rng.uniform(0.3, 1.0))
    img = c1 * (np.float32(1.0) - ramp[..., None]) + c2 * ramp[..., None]
    if rng.random() < 0.7:  # clouds / stains
        c3 = _hsv(float(rng.uniform(0, 360)), float(rng.uniform(0.0, 0.8)), float(rng.uniform(0.1, 1.0)))
        n = _value_noise(rng, h, w, int(rng.integers(3, 12)))
        amt = np.float32(rng.uniform(0.2, 0.6))
        img += (c3 - img) * (n[..., None] * amt)
    if rng.random() < 0.5:  # a faint screen-space pattern, easy to confuse with object textures at high contrast
        kind = str(rng.choice(["stripes", "checker", "grid", "dots"]))
        period = np.float32(side * rng.uniform(0.04, 0.14))
        yy, xx = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
        if kind == "stripes":
            a = float(rng.uniform(0, math.pi))
            s = (xx * np.float32(math.cos(a)) + yy * np.float32(math.sin(a))) / period
            pat = ((s - np.floor(s)) < np.float32(0.5)).astype(np.float32)
        elif kind == "checker":
            pat = ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(np.float32)
        elif kind == "grid":
            fx, fy = xx / period, yy / period
            pat = (((fx - np.floor(fx)) < np.float32(0.12)) | ((fy - np.floor(fy)) < np.float32(0.12))).astype(np.float32)
        else:
            fx, fy = xx / period, yy / period
            dx, dy = fx - np.floor(fx) - np.float32(0.5), fy - np.floor(fy) - np.float32(0.5)
            pat = ((dx * dx + dy * dy) < np.float32(0.06)).astype(np.float32)
        contrast = np.float32(rng.uniform(0.06, 0.25)) * (np.float32(1.0) if rng.random() < 0.5 else np.float32(-1.0))
        img *= (np.float32(1.0) + contrast * pat)[..., None]
    out = np.clip(img + np.float32(0.5), 0, 255).astype(np.uint8)
    if rng.random() < 0.6:  # thin clutter that stays background
        for _ in range(int(rng.integers(2, 10))):
            col = tuple(int(x) for x in rng.integers(0, 256, size=3))
            if rng.random() < 0.6:
                p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                cv2.line(out, p1, p2, col, int(rng.integers(1, max(2, side // 120) + 1)), cv2.LINE_8)
            else:
                centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                cv2.circle(out, centre, int(rng.integers(1, max(2, side // 40) + 1)), col, -1, cv2.LINE_8)
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True, eq=False)
class _Pose:
    """Where an object is in one frame: centre (px), radius (px) and rotation (rad)."""

    cx: float
    cy: float
    radius: float
    angle: float


def _draw(img: np.ndarray, mask: np.ndarray, contours: list[np.ndarray], patch: np.ndarray, pose: _Pose, cls: int) -> None:
    """Paint one object's texture and class where its polygon covers the frame (same raster for both)."""
    h, w = mask.shape
    c, s = math.cos(pose.angle), math.sin(pose.angle)
    pts = []
    for con in contours:
        x = pose.cx + pose.radius * (c * con[:, 0] - s * con[:, 1])
        y = pose.cy + pose.radius * (s * con[:, 0] + c * con[:, 1])
        pts.append((x, y))
    x0 = max(0, int(math.floor(min(float(p[0].min()) for p in pts))) - 1)
    y0 = max(0, int(math.floor(min(float(p[1].min()) for p in pts))) - 1)
    x1 = min(w, int(math.ceil(max(float(p[0].max()) for p in pts))) + 2)
    y1 = min(h, int(math.ceil(max(float(p[1].max()) for p in pts))) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    bw, bh = x1 - x0, y1 - y0
    local = [np.round(np.stack([x - x0, y - y0], axis=1) * 16.0).astype(np.int32) for x, y in pts]
    cover = np.zeros((bh, bw), np.uint8)
    cv2.fillPoly(cover, local, 1, cv2.LINE_8, 4)
    sel = cover.view(bool)
    if not sel.any():
        return
    # patch pixel (a, b) sits at canonical (k*a + b0, k*b + b0); map it into the box
    p = patch.shape[0]
    k = 2.0 * _R0 / p
    b0 = -_R0 + 0.5 * k
    r = pose.radius
    m = np.array(
        [
            [r * c * k, -r * s * k, pose.cx - x0 + r * (c * b0 - s * b0)],
            [r * s * k, r * c * k, pose.cy - y0 + r * (s * b0 + c * b0)],
        ]
    )
    tex = cv2.warpAffine(patch, m, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    roi = img[y0:y1, x0:x1]
    np.copyto(roi, tex, where=sel[..., None])
    mask[y0:y1, x0:x1][sel] = cls


def _taps(length: int, angle: float, reach: float) -> list[tuple[int, int]]:
    """Integer pixel offsets of a ``length``-tap line kernel, keeping taps within ``reach`` of the centre."""
    out = []
    for j in range(length):
        o = j - (length - 1) / 2.0
        if abs(o) <= reach:
            out.append((int(round(o * math.cos(angle))), int(round(o * math.sin(angle)))))
    return out


def _shifted(padded: np.ndarray, pad: int, dx: int, dy: int, h: int, w: int) -> np.ndarray:
    return padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w]


def _motion_blur(img: np.ndarray, mask: np.ndarray, length: int, angle: float) -> None:
    """Linear camera-shake blur in integer arithmetic; marks the mixed band around edges as ignore.

    A pixel within a quarter of the blur length of a class edge (along the blur
    direction) is more than a quarter someone else's colour: it gets IGNORE_INDEX.
    """
    if length < 2:
        return
    h, w = mask.shape
    taps = _taps(length, angle, reach=float(length))
    pad = length // 2 + 2
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    acc = np.zeros(img.shape, np.uint16)
    for dx, dy in taps:
        acc += _shifted(padded, pad, dx, dy, h, w)
    acc += len(taps) // 2
    acc //= len(taps)
    img[...] = acc
    band = set(_taps(length, angle, reach=length / 4.0))
    if len(band) < 2:
        return
    mpad = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    lo = mask.copy()
    hi = mask.copy()
    for dx, dy in band:
        view = _shifted(mpad, pad, dx, dy, h, w)
        np.minimum(lo, view, out=lo)
        np.maximum(hi, view, out=hi)
    mask[lo != hi] = IGNORE_INDEX


def _vignette(rng: np.random.Generator, w: int, h: int) -> np.ndarray | None:
    strength = float(rng.uniform(0.0, 0.35)) if rng.random() < 0.6 else 0.0
    if strength == 0.0:
        return None
    cx, cy = float(rng.uniform(0.3, 0.7)) * w, float(rng.uniform(0.3, 0.7)) * h
    xs = (np.arange(w, dtype=np.float32) - np.float32(cx)) / np.float32(max(w, h) * 0.7)
    ys = (np.arange(h, dtype=np.float32) - np.float32(cy)) / np.float32(max(w, h) * 0.7)
    v = np.float32(1.0) - np.float32(strength) * (xs[None, :] ** 2 + ys[:, None] ** 2)
    return np.maximum(v, np.float32(0.4))[..., None]


def _finish(
    img: np.ndarray,
    gain: tuple[float, float, float],
    vignette: np.ndarray | None,
    sigma: float,
    noise_rng: np.random.Generator,
) -> np.ndarray:
    """Lighting (per-channel gain, vignette) then sensor noise, in float32, rounded back to uint8."""
    out = img.astype(np.float32)
    out *= np.asarray(gain, dtype=np.float32)
    if vignette is not None:
        out *= vignette
    if sigma > 0:
        noise = noise_rng.standard_normal(img.shape, dtype=np.float32)
        noise *= np.float32(sigma)
        out += noise
    out += np.float32(0.5)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


# --------------------------------------------------------------------------- clips


@dataclass(frozen=True, eq=False)
class _Actor:
    """One object of a clip: its look and its smooth path, all in frame-relative units."""

    uid: int
    cls: int
    t0: float
    t1: float
    depth: float
    contours: list[np.ndarray]
    radius: float  # fraction of the shorter side
    p_in: tuple[float, float]  # off-frame entry point (fractions of width/height)
    p_out: tuple[float, float]
    t_in: float
    t_out: float
    centre: tuple[float, float]
    amp: tuple[float, float]
    omega: tuple[float, float]
    phase: tuple[float, float]
    angle0: float
    spin: float
    wobble: tuple[float, float, float]  # amplitude, frequency, phase of rotation wobble
    breathe: tuple[float, float, float]  # same for scale

    def alive(self, t: float) -> bool:
        return self.t0 <= t <= self.t1

    def pose(self, t: float, w: int, h: int) -> _Pose:
        side = min(w, h)
        ix = self.centre[0] + self.amp[0] * math.sin(self.omega[0] * t + self.phase[0])
        iy = self.centre[1] + self.amp[1] * math.sin(self.omega[1] * t + self.phase[1])
        e_in = _smoothstep((t - self.t0) / self.t_in)
        e_out = _smoothstep((self.t1 - t) / self.t_out)
        x = self.p_in[0] + (ix - self.p_in[0]) * e_in
        y = self.p_in[1] + (iy - self.p_in[1]) * e_in
        x = self.p_out[0] + (x - self.p_out[0]) * e_out
        y = self.p_out[1] + (y - self.p_out[1]) * e_out
        angle = self.angle0 + self.spin * t + self.wobble[0] * math.sin(self.wobble[1] * t + self.wobble[2])
        scale = 1.0 + self.breathe[0] * math.sin(self.breathe[1] * t + self.breathe[2])
        return _Pose(cx=x * w, cy=y * h, radius=self.radius * scale * side, angle=angle)


def _offframe_point(rng: np.random.Generator, radius: float, w: int, h: int) -> tuple[float, float]:
    """A centre (fractions of w/h) from which an object of ``radius`` (fraction of the shorter side) is fully outside."""
    side = min(w, h)
    mx = (radius * 1.25 * side + 2.0) / w
    my = (radius * 1.25 * side + 2.0) / h
    edge = int(rng.integers(0, 4))
    along = float(rng.uniform(0.0, 1.0))
    if edge == 0:
        return (-mx, along)
    if edge == 1:
        return (1.0 + mx, along)
    if edge == 2:
        return (along, -my)
    return (along, 1.0 + my)


class SceneClip:
    """A deterministic, endless synthetic clip: ``frame(i)`` renders frame ``i`` at time ``i / fps``.

    Object ``n`` spawns in time slot ``n`` (one per slot, slots ``spawn_every``
    seconds long, negative slots too, so the first frame is already populated);
    classes are dealt from shuffled decks of all seven, so every class shows up
    within a few decks. Everything is a closed-form function of time, so frames
    can be rendered in any order.
    """

    _MAX_LIFE = 10.0
    _MIN_LIFE = 3.5

    def __init__(self, *, seed: int, size: tuple[int, int] = (640, 360), fps: float = 30) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
        self.seed = int(seed)
        self.width, self.height = _check_size(size)
        try:
            self.fps = float(fps)
        except (TypeError, ValueError):
            raise ConfigError(f"fps must be a positive number, got {fps!r}") from None
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ConfigError(f"fps must be a positive number, got {fps!r}")
        w, h = self.width, self.height
        rng = _rng(self.seed, _K_CLIP)
        self._spawn_every = float(rng.uniform(1.3, 2.0))
        side = min(w, h)
        self._margin = max(2, round(0.05 * side))
        pan = rng.random() < 0.6
        # camera pan (background only) and lighting: smooth waves (amplitude, angular frequency, phase)
        self._pan = [_wave(rng, (0.3, 1.0) if pan else (0.0, 0.0), (0.1, 0.5)) for _ in range(2)]
        self._gain0 = _u(rng, 0.8, 1.15)
        self._gain_drift = [_wave(rng, (0.03, 0.15), (0.1, 0.8)) for _ in range(2)]
        self._tint = [_wave(rng, (0.0, 0.07), (0.05, 0.5)) for _ in range(3)]
        self._sigma = float(rng.uniform(1.0, 6.0))
        self._vignette = _vignette(rng, w, h)
        m = self._margin
        self._background = _make_background(_rng(self.seed, _K_BACKGROUND), w + 2 * m, h + 2 * m)
        self._actors: dict[int, _Actor] = {}
        self._patches: dict[int, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"SceneClip(seed={self.seed}, size=({self.width}, {self.height}), fps={self.fps:g})"

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    # -- scene description

    def _actor(self, n: int) -> _Actor:
        actor = self._actors.get(n)
        if actor is None:
            if len(self._actors) > 256:
                self._actors.clear()
            actor = self._actors[n] = self._make_actor(n)
        return actor

    def _make_actor(self, n: int) -> _Actor:
        w, h = self.width, self.height
        deck = _rng(self.seed, _K_BAG, n // _NUM_OBJ_CLASSES).permutation(_NUM_OBJ_CLASSES)
        cls = int(deck[n % _NUM_OBJ_CLASSES]) + 1
        rng = _rng(self.seed, _K_OBJECT, n)
        t0 = (n + float(rng.uniform(0.0, 1.0))) * self._spawn_every
        t1 = t0 + float(rng.uniform(self._MIN_LIFE, self._MAX_LIFE))
        lo, hi = _SIZES[cls]
        radius = float(rng.uniform(lo, hi)) / 2.0
        amp = (float(rng.uniform(0.03, 0.3)), float(rng.uniform(0.03, 0.3)))
        centre = (_u(rng, 0.15 + amp[0] / 2, 0.85 - amp[0] / 2), _u(rng, 0.15 + amp[1] / 2, 0.85 - amp[1] / 2))
        return _Actor(
            uid=n,
            cls=cls,
            t0=t0,
            t1=t1,
            depth=float(rng.uniform(0.0, 1.0)),
            contours=_make_shape(rng, cls),
            radius=radius,
            p_in=_offframe_point(rng, radius * 1.2, w, h),
            p_out=_offframe_point(rng, radius * 1.2, w, h),
            t_in=float(rng.uniform(0.6, 1.8)),
            t_out=float(rng.uniform(0.6, 1.8)),
            centre=centre,
            amp=amp,
            omega=(float(rng.uniform(0.3, 1.1)), float(rng.uniform(0.3, 1.1))),
            phase=(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))),
            angle0=float(rng.uniform(0, 2 * math.pi)),
            spin=float(rng.uniform(-1.2, 1.2)),
            wobble=(float(rng.uniform(0.0, 0.4)), float(rng.uniform(0.5, 2.0)), float(rng.uniform(0, 2 * math.pi))),
            breathe=(float(rng.uniform(0.0, 0.15)), float(rng.uniform(0.3, 1.5)), float(rng.uniform(0, 2 * math.pi))),
        )

    def _patch(self, actor: _Actor) -> np.ndarray:
        patch = self._patches.get(actor.uid)
        if patch is None:
            if len(self._patches) > 64:
                self._patches.clear()
            side = min(self.width, self.height)
            p = int(min(320, max(24, math.ceil(2 * _R0 * actor.radius * 1.15 * side))))
            patch = _make_texture(_rng(self.seed, _K_TEXTURE, actor.uid), actor.cls, p)
            self._patches[actor.uid] = patch
        return patch

    def _actors_at(self, t: float) -> list[_Actor]:
        """Objects alive at time ``t`` (seconds), back to front."""
        first = math.floor((t - self._MAX_LIFE) / self._spawn_every) - 1
        last = math.floor(t / self._spawn_every)
        alive = [a for n in range(first, last + 1) if (a := self._actor(n)).alive(t)]
        alive.sort(key=lambda a: (a.depth, a.uid))
        return alive

    def _blur_at(self, t: float) -> tuple[int, float]:
        """Camera-shake episodes: ~15 % of one-second windows hold a short burst of motion blur."""
        side = min(self.width, self.height)
        for win in (math.floor(t) - 1, math.floor(t)):
            rng = _rng(self.seed, _K_BLUR, win)
            if rng.random() >= 0.15:
                continue
            start = win + float(rng.uniform(0.0, 0.6))
            dur = float(rng.uniform(0.2, 0.5))
            peak = side * float(rng.uniform(0.012, 0.03))
            angle = float(rng.uniform(0.0, math.pi))
            if start <= t <= start + dur:
                return int(round(peak * math.sin(math.pi * (t - start) / dur))), angle
        return 0, 0.0

    # -- rendering

    def frame(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``i``: RGB uint8 ``H x W x 3`` and its uint8 ``H x W`` class-id mask."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
            raise ConfigError(f"frame index must be an integer >= 0, got {i!r}")
        i = int(i)
        w, h = self.width, self.height
        t = i / self.fps
        m = self._margin
        ox, oy = (m + int(round(m * a * math.sin(f * t + p))) for a, f, p in self._pan)
        img = self._background[oy : oy + h, ox : ox + w].copy()
        mask = np.zeros((h, w), np.uint8)
        for actor in self._actors_at(t):
            _draw(img, mask, actor.contours, self._patch(actor), actor.pose(t, w, h), actor.cls)
        length, angle = self._blur_at(t)
        _motion_blur(img, mask, length, angle)
        gain = self._gain0 * (1.0 + sum(a * math.sin(f * t + p) for a, f, p in self._gain_drift))
        tint = tuple(gain * (1.0 + a * math.sin(f * t + p)) for a, f, p in self._tint)
        noise_rng = _rng(self.seed, _K_NOISE, i)
        return _finish(img, tint, self._vignette, self._sigma, noise_rng), mask  # type: ignore[arg-type]

    def frames(self, n: int, *, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Frames ``start .. start + n - 1`` in order (shares the object and texture caches)."""
        if n < 0 or start < 0:
            raise ConfigError(f"frames needs n >= 0 and start >= 0, got n={n}, start={start}")
        for i in range(start, start + n):
            yield self.frame(i)


# --------------------------------------------------------------------------- training snapshots


def random_sample(rng: np.random.Generator, size: tuple[int, int] = (640, 360)) -> tuple[np.ndarray, np.ndarray]:
    """One independent random scene (2-6 objects) with random lighting, noise and blur, for training."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"random_sample needs a numpy.random.Generator, got {type(rng).__name__}: use np.random.default_rng(seed)"
        )
    w, h = _check_size(size)
    side = min(w, h)
    img = _make_background(rng, w, h)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(2, 7))):
        cls = int(rng.integers(1, _NUM_OBJ_CLASSES + 1))
        lo, hi = _SIZES[cls]
        radius = float(rng.uniform(lo, hi)) / 2.0 * side
        contours = _make_shape(rng, cls)
        p = int(min(320, max(24, math.ceil(2 * _R0 * radius * 1.05))))
        patch = _make_texture(rng, cls, p)
        spread = (-0.1, 1.1) if rng.random() < 0.25 else (0.08, 0.92)
        pose = _Pose(
            cx=float(rng.uniform(*spread)) * w,
            cy=float(rng.uniform(*spread)) * h,
            radius=radius,
            angle=float(rng.uniform(0, 2 * math.pi)),
        )
        _draw(img, mask, contours, patch, pose, cls)
    if rng.random() < 0.2:
        _motion_blur(img, mask, int(round(side * float(rng.uniform(0.008, 0.03)))), float(rng.uniform(0, math.pi)))
    g = float(rng.uniform(0.7, 1.25))
    gain = tuple(g * float(rng.uniform(0.92, 1.08)) for _ in range(3))
    vignette = _vignette(rng, w, h)
    sigma = float(rng.uniform(0.0, 8.0))
    return _finish(img, gain, vignette, sigma, rng), mask  # type: ignore[arg-type]
