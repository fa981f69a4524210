"""What the synthetic scenes are made of: the classes, their shapes, colours and textures, and backgrounds.

Class colours overlap on purpose (the main hue ranges of neighbouring classes nearly touch, and an
object's second colour may take any hue), so a model must use shape and texture too. Every draw
comes from the ``Generator`` passed in; OpenCV calls take integer paths, so results are the same
on any machine with the same numpy/OpenCV versions.
"""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

from streamseg.datasets import IGNORE_INDEX

__all__ = ["CLASSES", "PALETTE", "IGNORE_INDEX"]

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


NUM_OBJECT_CLASSES = len(CLASSES) - 1

PATCH_RADIUS = 1.05  # half-extent of a texture patch in canonical object units (shapes fit in radius 1)

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

def _hsv(h_deg: float, s: float, v: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb((h_deg % 360.0) / 360.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return np.array([r * 255.0, g * 255.0, b * 255.0], dtype=np.float32)

def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))

def _circle(n: int, rx: float, ry: float) -> np.ndarray:
    return np.array([[rx * math.cos(2 * math.pi * k / n), ry * math.sin(2 * math.pi * k / n)] for k in range(n)])

def make_shape(rng: np.random.Generator, cls: int) -> list[np.ndarray]:
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

def object_colours(rng: np.random.Generator, cls: int) -> tuple[np.ndarray, np.ndarray]:
    """Two colours: the class draws its main hue from a wide range that overlaps its neighbours'."""
    centre = (cls - 1) * 360.0 / NUM_OBJECT_CLASSES
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
    k = 2.0 * PATCH_RADIUS / p
    c = (np.arange(p, dtype=np.float32) + np.float32(0.5)) * np.float32(k) - np.float32(PATCH_RADIUS)
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

def make_texture(rng: np.random.Generator, cls: int, p: int) -> np.ndarray:
    """An RGB uint8 ``p x p`` patch that rotates and scales with its object."""
    kinds, probs = _TEXTURES[cls]
    kind = str(rng.choice(kinds, p=probs))
    a, b = object_colours(rng, cls)
    w = _pattern(rng, kind, p, cls)[..., None]
    out = a * (np.float32(1.0) - w) + b * w
    # a soft light direction so flat objects are not perfectly flat
    u, v = _canonical_grid(p)
    ang = float(rng.uniform(0, 2 * math.pi))
    light = u * np.float32(math.cos(ang)) + v * np.float32(math.sin(ang))
    shade = np.float32(1.0) + np.float32(rng.uniform(0.0, 0.18)) * light
    out *= shade[..., None]
    return np.clip(out + np.float32(0.5), 0, 255).astype(np.uint8)

def make_background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
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
