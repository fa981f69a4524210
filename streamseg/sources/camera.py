"""Cameras through OpenCV's ``VideoCapture`` (V4L2, MSMF, AVFoundation, GStreamer, ...).

``pts`` is the driver's timestamp (``CAP_PROP_POS_MSEC``) while it looks like a
clock (non-negative and increasing), else milliseconds of the capture clock since
``open()``; either way in ``time_base = 1/1000`` and strictly increasing.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import ConfigError, SourceError
from streamseg.sources.base import BaseSource
from streamseg.types import Frame

__all__ = ["CameraSource"]

log = logging.getLogger(__name__)

MS = Fraction(1, 1000)
_MAX_GRAB_FAILURES = 3  # in a row, before a device counts as gone
_APIS = {
    "any": "CAP_ANY",
    "v4l2": "CAP_V4L2",
    "v4l": "CAP_V4L2",
    "ffmpeg": "CAP_FFMPEG",
    "gstreamer": "CAP_GSTREAMER",
    "dshow": "CAP_DSHOW",
    "msmf": "CAP_MSMF",
    "avfoundation": "CAP_AVFOUNDATION",
    "images": "CAP_IMAGES",
}


def _parse_device(device: int | str | os.PathLike[str]) -> int | str:
    """``0`` / ``"0"`` -> camera index 0; anything else is a path, URL or pipeline OpenCV may open."""
    if isinstance(device, bool):
        raise ConfigError(f"camera device must be an index or a path, not {device!r}")
    if isinstance(device, int):
        if device < 0:
            raise ConfigError(f"camera index must be >= 0, not {device}")
        return device
    text = os.fspath(device)
    return int(text) if text.isdigit() else text


class CameraSource(BaseSource):
    """A camera by index (``0``) or device path (``/dev/video0``), read with OpenCV.

    ``device`` may be any target OpenCV's ``VideoCapture`` opens (a video file, a
    GStreamer pipeline string with ``api="gstreamer"``); a regular file is played
    once (``live=False``, ``None`` at its end) instead of being treated as a camera.
    ``width``/``height``/``fps``/``fourcc`` are requests: the driver may choose
    other values, which are logged and exposed as attributes after ``open()``.
    ``api`` is a backend name (``"v4l2"``, ``"ffmpeg"``, ``"gstreamer"``, ``"dshow"``,
    ``"msmf"``, ``"avfoundation"``) or an OpenCV ``CAP_*`` constant.

    ``read(timeout)`` is bounded by the driver's own wait (OpenCV cannot be
    interrupted); a failed grab raises TimeoutError, and three in a row a SourceError.
    """

    kind = "camera"

    def __init__(
        self,
        device: int | str | os.PathLike[str],
        *,
        source_id: str = "0",
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
        api: str | int | None = None,
    ) -> None:
        super().__init__(source_id)
        self.device = _parse_device(device)
        if fourcc is not None and len(fourcc) != 4:
            raise ConfigError(f"fourcc must be 4 characters like 'MJPG' or 'YUYV', not {fourcc!r}")
        for name, value in (("width", width), ("height", height), ("fps", fps)):
            if value is not None and value <= 0:
                raise ConfigError(f"camera {name} must be > 0, not {value}")
        self.requested = {"width": width, "height": height, "fps": fps, "fourcc": fourcc}
        self.api = api
        self.is_file = isinstance(self.device, str) and Path(self.device).is_file()
        self.live = not self.is_file
        self.width: int | None = None
        self.height: int | None = None
        self.fps: float | None = None
        self._cap: Any = None
        self._opened_at = 0.0
        self._use_driver_clock = True
        self._last_pts: int | None = None
        self._grab_failures = 0
        self._primed = False

    def _describe(self) -> int | str:
        return self.device

    def _api_id(self) -> int:
        import cv2

        if self.api is None:
            return int(cv2.CAP_ANY)
        if isinstance(self.api, int):
            return self.api
        name = _APIS.get(str(self.api).lower())
        if name is None or not hasattr(cv2, name):
            raise ConfigError(f"unknown OpenCV capture api {self.api!r}; use one of {', '.join(sorted(_APIS))}")
        return int(getattr(cv2, name))

    def open(self) -> None:
        """Open the device and apply the requested format; SourceError naming the device if it fails."""
        import cv2

        api = self._api_id()
        dev = self.device
        if isinstance(dev, str) and re.match(r"^/dev/", dev):
            if not os.path.exists(dev):
                raise SourceError(
                    f"camera {dev} does not exist; check it is plugged in (ls /dev/video*, v4l2-ctl --list-devices)"
                )
            if not os.access(dev, os.R_OK | os.W_OK):
                raise SourceError(
                    f"camera {dev}: permission denied; add your user to the 'video' group (then log in again)"
                )
        cap = cv2.VideoCapture(dev, api)
        if not cap.isOpened():
            cap.release()
            what = f"camera {dev}" if not self.is_file else f"{dev}"
            raise SourceError(
                f"cannot open {what}; check it exists and is connected, that you may access it (e.g. the 'video' "
                "group), and that no other program is using it"
            )
        self._configure(cap)
        # V4L2 "opens" a device another program is streaming from; only grabbing shows it is busy.
        self._primed = self.live and cap.grab()
        if self.live and not self._primed:
            cap.release()
            raise SourceError(
                f"camera {dev!r} opened but delivers no frames; check that no other program is using it "
                "and that it supports the requested size/fps/fourcc"
            )
        self._cap = cap
        self._opened = True
        self._opened_at = time.monotonic()
        self._use_driver_clock, self._last_pts, self._grab_failures = True, None, 0
        log.info(
            "source %s: opened camera %r (%s, %sx%s @ %s fps)",
            self.source_id,
            dev,
            cap.getBackendName(),
            self.width,
            self.height,
            self.fps,
        )

    def _configure(self, cap: Any) -> None:
        import cv2

        req = self.requested
        if req["fourcc"]:  # V4L2 wants the pixel format before the size
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*req["fourcc"]))
        if req["width"]:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, req["width"])
        if req["height"]:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, req["height"])
        if req["fps"]:
            cap.set(cv2.CAP_PROP_FPS, req["fps"])
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
        self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        for name, got in (("width", self.width), ("height", self.height), ("fps", self.fps)):
            want = req[name]
            if want and got and abs(float(want) - float(got)) > 0.01:
                log.warning("source %s: camera gave %s=%s instead of the requested %s", self.source_id, name, got, want)

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame (RGB); ``None`` at the end of a file target."""
        import cv2

        self._check_open()
        if self._primed:  # the frame grabbed by open()
            self._primed = False
            ok, bgr = self._cap.retrieve()
        else:
            ok, bgr = self._cap.read()
        now = time.monotonic()
        if not ok or bgr is None:
            if self.is_file:
                return None
            self._grab_failures += 1
            if self._grab_failures >= _MAX_GRAB_FAILURES:
                raise SourceError(
                    f"camera {self.device!r} stopped delivering frames ({self._grab_failures} failed reads in a row); "
                    "check it is still connected and not taken by another program"
                )
            raise TimeoutError(f"camera {self.device!r}: no frame")
        self._grab_failures = 0
        start = time.perf_counter()
        image = _to_rgb(bgr, cv2)
        pts = self._pts(float(self._cap.get(cv2.CAP_PROP_POS_MSEC)), now)
        self.stats.busy_s += time.perf_counter() - start
        return self._emit(image, pts=pts, time_base=MS, capture_time=now)

    def close(self) -> None:
        """Release the device; safe to call twice or after a failed open()."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._opened = False

    def _pts(self, pos_ms: float, now: float) -> int:
        """Driver clock while it behaves, else the capture clock; strictly increasing either way.

        A driver without a clock reports 0 (or -1) for every frame: that shows at the
        second frame at the latest, and from then on the capture clock is used.
        """
        last = self._last_pts
        if self._use_driver_clock:
            if math.isfinite(pos_ms) and pos_ms >= 0 and (last is None or round(pos_ms) > last):
                self._last_pts = round(pos_ms)
                return self._last_pts
            log.debug("source %s: CAP_PROP_POS_MSEC=%s is no clock; using the capture clock", self.source_id, pos_ms)
            self._use_driver_clock = False
        clock_ms = round((now - self._opened_at) * 1000)
        self._last_pts = clock_ms if last is None else max(last + 1, clock_ms)
        return self._last_pts


def _to_rgb(image: np.ndarray, cv2: Any) -> np.ndarray:
    """OpenCV's BGR (or gray/BGRA/16-bit) -> RGB uint8, C-contiguous."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
