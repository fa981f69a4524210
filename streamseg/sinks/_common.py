"""What the built-in sinks share: the registry, counters, per-source routing and output timestamps.

Routing (documented in :mod:`streamseg.sinks`): a sink writes its target as
given while it has seen one ``source_id``. When a second id arrives, every
source gets its own output: the first source's output is moved aside to its
per-source name, so a multi-source run never mixes sources and a one-source
run keeps the plain name. A ``{source}`` placeholder in the target asks for
per-source outputs from the first frame on.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections import deque
from fractions import Fraction
from pathlib import Path
from statistics import median_low
from typing import TYPE_CHECKING, Any

from streamseg.errors import ConfigError, SinkError
from streamseg.registry import Registry
from streamseg.sinks.base import Sink, SinkContext
from streamseg.types import Frame, Prediction

if TYPE_CHECKING:
    import av
    import numpy as np

log = logging.getLogger("streamseg.sinks")


class _SinkRegistry(Registry[Sink]):
    """The sink registry; the built-in kinds register when their modules load, on the first lookup.

    Loading them lazily keeps ``import streamseg.sinks`` free of cv2/av.
    """

    _loading = False

    def _load_builtins(self) -> None:
        if not self._loading:
            type(self)._loading = True
            from streamseg.sinks import callback, display, masks, rtsp, video  # noqa: F401

    def get(self, name: str) -> Any:
        self._load_builtins()
        return super().get(name)

    def names(self) -> list[str]:
        self._load_builtins()
        return super().names()


SINKS: Registry[Sink] = _SinkRegistry("streamseg.sinks")

PLACEHOLDER = "{source}"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_source_id(source_id: str) -> str:
    """``source_id`` as one file-name/URL-path component (a URL or path as id would nest or escape)."""
    cleaned = _UNSAFE.sub("_", source_id).strip("._")
    return cleaned or "source"


def fill_placeholder(target: str, source_id: str) -> str:
    return target.replace(PLACEHOLDER, safe_source_id(source_id))


def check_options(mode: str, alpha: float, fps: float) -> tuple[str, float, Fraction]:
    """Shared validation of the drawing/timing options of the visual sinks."""
    from streamseg.draw import MODES  # cv2 loads with the sink modules, not with the registry

    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    try:
        alpha = float(alpha)
        fps_f = Fraction(str(fps)).limit_denominator(1001000)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"alpha and fps must be numbers ({exc})") from exc
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must lie in 0..1, got {alpha}")
    if fps_f <= 0:
        raise ConfigError(f"fps must be > 0, got {fps}")
    return mode, alpha, fps_f


def ensure_writable_dir(directory: Path, what: str, hint: str) -> None:
    """Create ``directory`` and prove it takes a file (as root, permissions never refuse: only a write tells)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as exc:
        raise SinkError(f"{what}: {exc.strerror or exc}; {hint}") from exc


class BaseSink:
    """Counters the pipeline reports (``frames``, ``busy_s``) and the open/write/close bookkeeping.

    Subclasses implement ``_open``, ``_write`` (return ``False`` when the frame
    was not written, e.g. dropped) and ``_close``; ``close()`` runs ``_close``
    once, also after a failed ``open``.
    """

    kind = "sink"

    def __init__(self, name: str) -> None:
        self.name = name
        self.frames = 0
        self.busy_s = 0.0
        self.context: SinkContext | None = None
        self._closed = False

    def open(self, context: SinkContext) -> None:
        if self._closed:
            raise SinkError(f"{self.name}: open() after close(); a sink is used once, build a new one")
        self.context = context
        self._open(context)

    def write(self, prediction: Prediction) -> None:
        if self.context is None:
            raise SinkError(f"{self.name}: write() before open(); call open(context) first")
        if self._closed:
            raise SinkError(f"{self.name}: write() after close(); build a new sink to write more")
        start = time.perf_counter()
        try:
            written = self._write(prediction)
        finally:
            self.busy_s += time.perf_counter() - start
        if written is not False:
            self.frames += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close()

    def stats(self) -> dict[str, Any]:
        """The counters as a dict (what ``--stats-json`` shows for this sink)."""
        out: dict[str, Any] = {"name": self.name, "frames": self.frames, "busy_s": round(self.busy_s, 6)}
        for key in ("dropped", "reconnects"):
            if hasattr(self, key):
                out[key] = getattr(self, key)
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} frames={self.frames}>"

    def _render(self, prediction: Prediction) -> Any:
        """The picture a drawing sink shows: ``mode``/``alpha``/``legend`` applied to frame + mask."""
        from streamseg.draw import render

        assert self.context is not None
        return render(
            prediction.frame.image,
            prediction.mask,
            self.context.palette,
            mode=self.mode,  # type: ignore[attr-defined]
            alpha=self.alpha,  # type: ignore[attr-defined]
            classes=self.context.classes,
            legend=self.legend,  # type: ignore[attr-defined]
        )

    # Subclass hooks -------------------------------------------------------

    def _open(self, context: SinkContext) -> None:  # pragma: no cover - trivial default
        pass

    def _write(self, prediction: Prediction) -> bool | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover - trivial default
        pass


def encoder_frame(image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """An RGB uint8 image as a frame for an encoder that wants ``pix_fmt``.

    4:2:0 goes through OpenCV's BT.601 limited-range conversion: FFmpeg's (swscale) colours,
    luma within one level and chroma averaged over 2x2, in a quarter of its time (720p: 0.7 ms
    against 3.0 ms, once per frame in every video sink). Anything else is left to FFmpeg.
    """
    import av
    import cv2

    h, w = image.shape[:2]
    if pix_fmt == "yuv420p" and h % 2 == 0 and w % 2 == 0:
        return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(image, format="rgb24")


class Timeline:
    """Strictly increasing output pts for one encoded stream, taken from the frames' own clock.

    The time base is the first frame's (so source timestamps are kept exactly,
    variable frame rate included) or ``1/fps`` for frames without pts, which
    are placed at ``index / fps``. The first frame lands at 0. At a
    discontinuity (``frame.discontinuity``, or a pts that does not increase,
    e.g. after a reconnect) the timeline continues one frame duration after
    the previous frame: time that passed in a gap is not represented, and the
    muxer never sees a non-monotonic timestamp.
    """

    def __init__(self, fps: Fraction) -> None:
        self.fps = fps
        self.time_base: Fraction | None = None
        self.last_pts: int | None = None
        self._deltas: deque[int] = deque(maxlen=15)
        self._offset = 0

    @staticmethod
    def seconds(frame: Frame, fps: Fraction) -> Fraction:
        if frame.pts is not None and frame.time_base:
            return Fraction(frame.pts) * Fraction(frame.time_base)
        return Fraction(frame.index) / fps

    def start(self, frame: Frame) -> Fraction:
        """Fix the time base from the first frame and return it."""
        if frame.pts is not None and frame.time_base:
            self.time_base = Fraction(frame.time_base)
        else:
            self.time_base = 1 / self.fps
        return self.time_base

    @property
    def default_step(self) -> int:
        assert self.time_base is not None
        return max(1, round(1 / (self.fps * self.time_base)))

    @property
    def frame_duration(self) -> int:
        """Duration of the latest frame in ticks: the median of the recent pts steps.

        The next frame's pts is not known yet; the median keeps one long gap
        (a dropped frame, a VFR pause) from stretching the last frame.
        """
        return int(median_low(self._deltas)) if self._deltas else self.default_step

    def pts(self, frame: Frame) -> int:
        if self.time_base is None:
            self.start(frame)
        assert self.time_base is not None
        ticks = round(self.seconds(frame, self.fps) / self.time_base)
        if self.last_pts is None:
            self._offset = ticks
            self.last_pts = 0
            return 0
        pts = ticks - self._offset
        if frame.discontinuity or pts <= self.last_pts:
            step = self.frame_duration
            log.debug("discontinuity at frame %d: pts %d after %d, continuing", frame.index, pts, self.last_pts)
            self._offset = ticks - (self.last_pts + step)
            pts = self.last_pts + step
        self._deltas.append(pts - self.last_pts)
        self.last_pts = pts
        return pts
