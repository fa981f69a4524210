"""Video files decoded with PyAV: every frame once, in presentation order, on the stream's own clock."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamseg.errors import SourceError
from streamseg.sources.base import BaseSource
from streamseg.sources.pyav import RgbConverter, StreamEnded, check_threads, configure_threads, decoded_frames, legacy_rotation
from streamseg.types import Frame

if TYPE_CHECKING:
    import av
    import av.container
    import av.video.stream

__all__ = ["VideoFileSource"]

log = logging.getLogger(__name__)

_MAX_DEMUX_FAILURES = 64  # consecutive unreadable packets before a file counts as unreadable


class VideoFileSource(BaseSource):
    """A video file, decoded with threaded PyAV: every frame exactly once, in presentation order.

    ``pts``/``time_base`` are the stream's own (variable frame rate is kept, never
    resampled). A frame without a pts gets the previous pts plus the previous
    frame's duration (or one nominal frame interval, or 1 tick), so ``pts`` is
    never ``None``. Rotation/flip from the display matrix is applied. A corrupt
    packet mid-file is logged, counted in ``stats.decode_errors`` and skipped, as
    are frames the decoder marks corrupt and every frame up to the next keyframe
    (they are predicted from damaged pictures): frames are never invented, at the
    cost of up to one GOP after a damaged spot.
    ``read(timeout)`` ignores ``timeout``: decoding a local file does not wait on anyone, unless
    ``realtime=True``: then frames are handed out at the file's own pace, as a camera would, and
    ``read`` raises ``TimeoutError`` when the next one is not due within ``timeout`` (for demos and
    for trying live sinks on a file). Such a source is still finite and lossless.

    ``fps`` and ``frame_count`` are estimates from the header (``None`` when
    unknown), meant for progress bars, set by :meth:`open`.
    """

    kind = "file"
    live = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        source_id: str = "0",
        threads: int | str = "auto",
        realtime: bool = False,
    ) -> None:
        super().__init__(source_id)
        self.path = Path(path)
        self.threads = check_threads(threads)
        self.realtime = bool(realtime)
        self._held: tuple[Any, int] | None = None  # a decoded picture waiting for its time (realtime)
        self._clock: tuple[float, float] | None = None  # (monotonic, stream seconds) of the first frame
        self.fps: float | None = None
        self.frame_count: int | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.time_base: Fraction | None = None
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._to_rgb: RgbConverter | None = None
        self._last_pts: int | None = None
        self._last_duration: int | None = None

    def _describe(self) -> str:
        return str(self.path)

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> None:
        """Check the file and open its first video stream; every problem is a SourceError here."""
        import av

        self._check_path()
        try:
            container = av.open(str(self.path), mode="r")
        except av.error.PermissionError as exc:
            raise SourceError(
                f"{self.path}: permission denied; make it readable (chmod +r) or run as its owner"
            ) from exc
        except av.error.InvalidDataError as exc:
            raise SourceError(
                f"{self.path}: not a video FFmpeg can read (invalid data: truncated, damaged, or not a video at all); "
                "check the file plays in a media player, or re-export it"
            ) from exc
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{self.path}: cannot open video ({exc}); check the path and file") from exc
        try:
            stream = self._pick_stream(container)
        except BaseException:
            container.close()
            raise
        self._container = container
        configure_threads(stream, self.threads)
        self.time_base = stream.time_base
        self.width, self.height = stream.codec_context.width or None, stream.codec_context.height or None
        self._to_rgb = RgbConverter(rotate_deg=legacy_rotation(stream))
        self.fps, self.frame_count = _estimates(container, stream)
        self._frames = decoded_frames(container, stream, self.stats, self.source_id, skip_unreadable=_MAX_DEMUX_FAILURES - 1)
        self._opened = True
        log.debug(
            "opened %s: %s %sx%s, ~%s fps, ~%s frames, time_base %s",
            self.path,
            stream.codec_context.name,
            self.width,
            self.height,
            self.fps,
            self.frame_count,
            self.time_base,
        )

    def read(self, timeout: float = 0.0) -> Frame | None:
        """The next frame in presentation order, or ``None`` at the end of the file."""
        self._check_open()
        if self._held is None:
            self._held = self._decode()
            if self._held is None:
                return None
        image, pts = self._held
        if self.realtime:
            self._wait_until_due(pts, timeout)
        self._held = None
        return self._emit(image, pts=pts, time_base=self.time_base)

    def _decode(self) -> tuple[Any, int] | None:
        assert self._frames is not None and self._to_rgb is not None
        try:
            vframe = next(self._frames, None)
        except StreamEnded as exc:
            raise SourceError(
                f"{self.path}: {exc.failures} unreadable packets in a row after {self._index} frames; "
                "the file is damaged beyond this point, repair or re-export it"
            ) from exc.cause
        if vframe is None:
            return None
        start = time.perf_counter()
        image, pts = self._to_rgb(vframe), self._pts(vframe)
        self.stats.busy_s += time.perf_counter() - start
        return image, pts

    def _wait_until_due(self, pts: int, timeout: float) -> None:
        """Sleep until the frame's time on the file's clock; TimeoutError when that is more than ``timeout`` away."""
        assert self.time_base is not None
        seconds = float(pts * self.time_base)
        if self._clock is None:
            self._clock = (time.monotonic(), seconds)
        wait = self._clock[0] + (seconds - self._clock[1]) - time.monotonic()
        if wait > timeout:
            time.sleep(max(0.0, timeout))
            raise TimeoutError(f"{self.path}: next frame due in {wait:.3f} s (realtime)")
        if wait > 0:
            time.sleep(wait)

    def close(self) -> None:
        """Release the decoder; safe to call twice or after a failed open()."""
        self._frames = self._to_rgb = self._held = None
        self._opened = False
        if self._container is not None:
            self._container.close()
            self._container = None
            if self.stats.decode_errors:
                log.warning(
                    "source %s (%s): skipped %d corrupt packet(s)/frame(s) in total",
                    self.source_id,
                    self.path,
                    self.stats.decode_errors,
                )

    # -- internals -----------------------------------------------------------------

    def _check_path(self) -> None:
        path = self.path
        if not path.exists():
            hint = "" if path.is_absolute() else f" (relative to {os.getcwd()})"
            raise SourceError(f"video file not found: {path}{hint}; check the path")
        if path.is_dir():
            raise SourceError(
                f"{path} is a directory, not a video file; pass a file, or images:{path} for a folder of images"
            )
        if not os.access(path, os.R_OK):
            raise SourceError(f"{path}: permission denied; make it readable (chmod +r) or run as its owner")
        if path.is_file() and path.stat().st_size == 0:
            raise SourceError(f"{path} is empty (0 bytes), e.g. an interrupted recording; use a complete file")

    def _pick_stream(self, container: av.container.InputContainer) -> av.video.stream.VideoStream:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise SourceError(
                f"{self.path} has no video stream (streams: {', '.join(kinds)}); pick a file that contains video"
            )
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise SourceError(
                f"{self.path}: this FFmpeg build has no decoder for its video codec; "
                "re-encode it (e.g. to H.264) or install a PyAV build with that decoder"
            )
        return stream

    def _pts(self, vframe: av.VideoFrame) -> int:
        """The frame's pts; a missing one continues from the previous frame (documented in the class)."""
        pts = vframe.pts
        if pts is None:
            if self._last_pts is None:
                pts = 0
            else:
                step = self._last_duration
                if not step and self.fps and self.time_base:
                    step = round(1 / (self.fps * self.time_base))
                pts = self._last_pts + max(1, step or 1)
        self._last_duration = vframe.duration or (pts - self._last_pts if self._last_pts is not None else None)
        self._last_pts = pts
        return pts


def _estimates(container: Any, stream: Any) -> tuple[float | None, int | None]:
    """``(fps, frame_count)`` from the header, for progress bars; either may be ``None``."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None
    count = int(stream.frames) if stream.frames else None
    if count is None and fps:
        seconds = None
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / 1_000_000  # AV_TIME_BASE
        if seconds:
            count = max(1, round(seconds * fps))
    return fps, count
