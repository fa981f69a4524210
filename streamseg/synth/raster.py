"""Rasterising a scene: each object's texture and class painted from one polygon raster, then the camera
(motion blur with an ignore band where classes mix, vignette, noise)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from streamseg.synth.shapes import IGNORE_INDEX, PATCH_RADIUS


@dataclass(frozen=True, eq=False)
class Pose:
    """Where an object is in one frame: centre (px), radius (px) and rotation (rad)."""

    cx: float
    cy: float
    radius: float
    angle: float


def draw_object(img: np.ndarray, mask: np.ndarray, contours: list[np.ndarray], patch: np.ndarray, pose: Pose, cls: int) -> None:
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
    k = 2.0 * PATCH_RADIUS / p
    b0 = -PATCH_RADIUS + 0.5 * k
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


def motion_blur(img: np.ndarray, mask: np.ndarray, length: int, angle: float) -> None:
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


def make_vignette(rng: np.random.Generator, w: int, h: int) -> np.ndarray | None:
    strength = float(rng.uniform(0.0, 0.35)) if rng.random() < 0.6 else 0.0
    if strength == 0.0:
        return None
    cx, cy = float(rng.uniform(0.3, 0.7)) * w, float(rng.uniform(0.3, 0.7)) * h
    xs = (np.arange(w, dtype=np.float32) - np.float32(cx)) / np.float32(max(w, h) * 0.7)
    ys = (np.arange(h, dtype=np.float32) - np.float32(cy)) / np.float32(max(w, h) * 0.7)
    v = np.float32(1.0) - np.float32(strength) * (xs[None, :] ** 2 + ys[:, None] ** 2)
    return np.maximum(v, np.float32(0.4))[..., None]


def finish_frame(
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
