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

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from streamseg.errors import ConfigError
from streamseg.synth.raster import (
    Pose,
    draw_object,
    finish_frame,
    make_vignette,
    motion_blur,
)
from streamseg.synth.shapes import (
    CLASSES,
    IGNORE_INDEX,
    NUM_OBJECT_CLASSES,
    PALETTE,
    PATCH_RADIUS,
    _u,
    make_background,
    make_shape,
    make_texture,
)

__all__ = ["CLASSES", "PALETTE", "IGNORE_INDEX", "SceneClip", "random_sample"]


_MIN_SIDE = 16


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


def _wave(rng: np.random.Generator, amp: tuple[float, float], freq: tuple[float, float]) -> tuple[float, float, float]:
    """(amplitude, angular frequency, phase) of a smooth sinusoidal drift."""
    return _u(rng, *amp), _u(rng, *freq), _u(rng, 0.0, 2 * math.pi)


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


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

    def pose(self, t: float, w: int, h: int) -> Pose:
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
        return Pose(cx=x * w, cy=y * h, radius=self.radius * scale * side, angle=angle)


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
        self.vignette = make_vignette(rng, w, h)
        m = self._margin
        self._background = make_background(_rng(self.seed, _K_BACKGROUND), w + 2 * m, h + 2 * m)
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
        deck = _rng(self.seed, _K_BAG, n // NUM_OBJECT_CLASSES).permutation(NUM_OBJECT_CLASSES)
        cls = int(deck[n % NUM_OBJECT_CLASSES]) + 1
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
            contours=make_shape(rng, cls),
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
            p = int(min(320, max(24, math.ceil(2 * PATCH_RADIUS * actor.radius * 1.15 * side))))
            patch = make_texture(_rng(self.seed, _K_TEXTURE, actor.uid), actor.cls, p)
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
            draw_object(img, mask, actor.contours, self._patch(actor), actor.pose(t, w, h), actor.cls)
        length, angle = self._blur_at(t)
        motion_blur(img, mask, length, angle)
        gain = self._gain0 * (1.0 + sum(a * math.sin(f * t + p) for a, f, p in self._gain_drift))
        tint = tuple(gain * (1.0 + a * math.sin(f * t + p)) for a, f, p in self._tint)
        noise_rng = _rng(self.seed, _K_NOISE, i)
        return finish_frame(img, tint, self.vignette, self._sigma, noise_rng), mask  # type: ignore[arg-type]

    def frames(self, n: int, *, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Frames ``start .. start + n - 1`` in order (shares the object and texture caches)."""
        if n < 0 or start < 0:
            raise ConfigError(f"frames needs n >= 0 and start >= 0, got n={n}, start={start}")
        for i in range(start, start + n):
            yield self.frame(i)


def random_sample(rng: np.random.Generator, size: tuple[int, int] = (640, 360)) -> tuple[np.ndarray, np.ndarray]:
    """One independent random scene (2-6 objects) with random lighting, noise and blur, for training."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"random_sample needs a numpy.random.Generator, got {type(rng).__name__}: use np.random.default_rng(seed)"
        )
    w, h = _check_size(size)
    side = min(w, h)
    img = make_background(rng, w, h)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(2, 7))):
        cls = int(rng.integers(1, NUM_OBJECT_CLASSES + 1))
        lo, hi = _SIZES[cls]
        radius = float(rng.uniform(lo, hi)) / 2.0 * side
        contours = make_shape(rng, cls)
        p = int(min(320, max(24, math.ceil(2 * PATCH_RADIUS * radius * 1.05))))
        patch = make_texture(rng, cls, p)
        spread = (-0.1, 1.1) if rng.random() < 0.25 else (0.08, 0.92)
        pose = Pose(
            cx=float(rng.uniform(*spread)) * w,
            cy=float(rng.uniform(*spread)) * h,
            radius=radius,
            angle=float(rng.uniform(0, 2 * math.pi)),
        )
        draw_object(img, mask, contours, patch, pose, cls)
    if rng.random() < 0.2:
        motion_blur(img, mask, int(round(side * float(rng.uniform(0.008, 0.03)))), float(rng.uniform(0, math.pi)))
    g = float(rng.uniform(0.7, 1.25))
    gain = tuple(g * float(rng.uniform(0.92, 1.08)) for _ in range(3))
    shade = make_vignette(rng, w, h)
    sigma = float(rng.uniform(0.0, 8.0))
    return finish_frame(img, gain, shade, sigma, rng), mask  # type: ignore[arg-type]
