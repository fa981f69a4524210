"""Turning a drawn RGB picture into encoder input: the video and RTSP sinks' shared encoder helpers.

Output timestamps (:class:`Timeline`), the H.264 stream set-up both sinks use
(:func:`add_video_stream`), sizes fitted to the encoder (:func:`fit_frame`) and the RGB -> 4:2:0
conversion (:func:`encoder_frame`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections import deque
from fractions import Fraction
from statistics import median_low
from typing import Any

import av
import cv2
import numpy as np

from streamseg.draw import VIEW_FORMATS, View
from streamseg.errors import ConfigError
from streamseg.types import Frame, Prediction

__all__ = [
    "Timeline", "add_video_stream", "chroma_alignment", "encoder_frame", "fit_frame", "parse_fps", "picture_size",
    "rendered_frame", "sink_view",
]  # fmt: skip

log = logging.getLogger("streamseg.sinks")


def parse_fps(fps: float | str) -> Fraction:
    """A frame rate as an exact fraction (29.97 -> 2997/100); > 0."""
    try:
        value = Fraction(str(fps)).limit_denominator(1001000)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"fps must be a number ({exc})") from exc
    if value <= 0:
        raise ConfigError(f"fps must be > 0, got {fps}")
    return value


def chroma_alignment(pix_fmt: str) -> tuple[int, int]:
    """(width, height) multiples a frame needs for ``pix_fmt``: (2, 2) for 4:2:0, (1, 1) for 4:4:4/RGB."""
    fmt = av.VideoFormat(pix_fmt, 4, 4)
    return 4 // max(1, fmt.chroma_width()), 4 // max(1, fmt.chroma_height())


def fit_frame(image: np.ndarray, size: tuple[int, int], align: tuple[int, int]) -> np.ndarray:
    """``image`` rescaled to ``size`` (w, h) if it differs, then edge-padded to the chroma alignment."""
    w, h = size
    if image.shape[1] != w or image.shape[0] != h:
        shrink = image.shape[1] > w or image.shape[0] > h
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    pad_w, pad_h = (-w) % align[0], (-h) % align[1]
    if pad_w or pad_h:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
    return image


_X26X = {"libx264", "libx265", "libx264rgb"}


@functools.lru_cache(maxsize=1)
def nvenc_available() -> bool:
    """True when this FFmpeg has ``h264_nvenc`` and a GPU with a video encoder opens a session for it.

    Asked once per process (~2 ms where there is none). H100/H200 have no encoder; L4/L40S do.
    """
    try:
        ctx = av.CodecContext.create("h264_nvenc", "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 256, 256, "yuv420p", Fraction(1, 30)
        ctx.open()
    except (av.FFmpegError, ValueError, OSError) as exc:
        log.debug("h264_nvenc unavailable: %s", exc)
        return False
    return True


def encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """Quality and speed options in each encoder's own terms: x264's ``crf``/``preset``, NVENC's ``cq``/``p1..p7``."""
    if codec in _X26X:
        return {"crf": str(crf), "preset": preset}
    if codec.endswith("_nvenc"):
        return {"rc": "vbr", "cq": str(crf), "preset": preset if preset[:1] == "p" and preset[1:].isdigit() else "p4"}
    return {}


def encoder_threads(threads: int | str, *, what: str) -> int:
    """An encoder's frame-thread count: ``auto`` is one per core plus one, so a frame is always being
    prepared while the others encode (2 cores, 720p: 109 fps against 99 for x264's own choice of
    threads, same CPU time); an integer is taken as is."""
    if threads == "auto":
        return (os.cpu_count() or 1) + 1
    try:
        count = int(threads)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise ConfigError(f"{what}: threads must be 'auto' or an integer >= 1, got {threads!r}")
    return count


def add_video_stream(
    container: Any, codec: str, size: tuple[int, int], *, pix_fmt: str, fps: Fraction, time_base: Fraction,
    gop: int, options: dict[str, str], threads: int = 0,
) -> Any:  # fmt: skip
    """An encoder stream for pictures of ``size`` (w, h), padded to the chroma alignment, without B-frames
    (their reorder delay is what breaks MP4 timestamps; see :mod:`streamseg.sinks.video`); ``threads``
    frame threads (0: the encoder's own choice)."""
    align = chroma_alignment(pix_fmt)
    w, h = size
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = w + (-w) % align[0], h + (-h) % align[1]
    stream.pix_fmt = pix_fmt
    stream.codec_context.time_base = time_base
    stream.codec_context.gop_size = gop
    stream.codec_context.max_b_frames = 0
    if threads:
        stream.codec_context.thread_type = "FRAME"
        stream.codec_context.thread_count = threads
    if options:
        stream.options = options
    return stream


def encoder_frame(image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """An RGB uint8 image as a frame for an encoder that wants ``pix_fmt``.

    4:2:0 goes through OpenCV's BT.601 limited-range conversion: FFmpeg's (swscale) colours, luma
    within one level, chroma taken from each 2x2 block's top-left pixel, in a quarter of its time
    (720p: 0.7 ms against 3.0 ms, once per frame in every video sink). Anything else is left to
    FFmpeg. :func:`streamseg.render.rgb_to_i420` is the same conversion on the engine's device.
    """
    h, w = image.shape[:2]
    if pix_fmt == "yuv420p" and h % 2 == 0 and w % 2 == 0:
        return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def sink_view(mode: str, alpha: float, legend: bool, pix_fmt: str) -> View | None:
    """What an encoding sink asks an engine to render on its device; None (draw on the host) for a pixel
    format the renderer does not make."""
    return View(mode, alpha, pix_fmt, legend) if pix_fmt in VIEW_FORMATS else None


def picture_size(frame: Frame, mode: str) -> tuple[int, int]:
    """(w, h) of what a sink draws for ``frame`` in ``mode``: side by side is twice as wide."""
    h, w = frame.image.shape[:2]
    return (2 * w if mode == "side_by_side" else w, h)


def rendered_frame(
    prediction: Prediction, view: View | None, size: tuple[int, int], pix_fmt: str, align: tuple[int, int]
) -> av.VideoFrame | None:
    """The engine's rendering of ``view`` as the encoder's frame, when it made one of ``size`` (w, h); else None
    and the sink draws on the host (:func:`encoder_frame` of :func:`fit_frame`: equal within one grey level)."""
    planes = prediction.rendered.get(view) if view is not None else None
    if planes is None or planes.shape != _planes_shape(size, pix_fmt, align):
        return None
    return av.VideoFrame.from_ndarray(planes, format=pix_fmt)


def _planes_shape(size: tuple[int, int], pix_fmt: str, align: tuple[int, int]) -> tuple[int, ...]:
    w, h = size[0] + (-size[0]) % align[0], size[1] + (-size[1]) % align[1]
    return (h * 3 // 2, w) if pix_fmt == "yuv420p" else (h, w, 3)


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
