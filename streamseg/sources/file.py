"""Video files decoded with PyAV: every frame once, in presentation order, on the stream's own clock.

Also home of the PyAV helpers the network source shares (frame -> RGB with the
display matrix applied, and counting skipped corrupt data).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamseg.errors import ConfigError, SourceError
from streamseg.sources import SOURCES
from streamseg.sources.base import SourceStats
from streamseg.types import Frame

if TYPE_CHECKING:
    import av
    import av.container
    import av.video.stream

__all__ = ["VideoFileSource", "RgbConverter", "display_transform", "apply_display_transform"]

log = logging.getLogger(__name__)

_MAX_LOGGED_ERRORS = 5  # per source; later decode errors only go to DEBUG (the count is in stats)
_MAX_DEMUX_FAILURES = 64  # consecutive unreadable packets before a file counts as unreadable


def display_transform(frame: av.VideoFrame) -> tuple[bool, bool, bool]:
    """``(transpose, flip_rows, flip_cols)`` that turn a decoded frame into its displayed orientation.

    Read from the frame's display-matrix side data (FFmpeg attaches the container's
    matrix to every decoded frame). FFmpeg's matrix maps a source point ``(x, y)``
    to ``(a*x + c*y, b*x + d*y)``; for the eight right-angle orientations that is a
    transpose plus axis flips. Other angles are rare and logged, not applied.
    """
    from av.sidedata.sidedata import Type

    side = frame.side_data.get(Type.DISPLAYMATRIX)
    if side is None:
        return False, False, False
    m = np.frombuffer(bytes(side), dtype="<i4", count=9).astype(np.float64)
    a, b, c, d = (np.sign(np.round(v / 65536.0, 3)) for v in (m[0], m[1], m[3], m[4]))
    if a == 0 and d == 0 and b != 0 and c != 0:  # x' depends on y: transpose
        return True, bool(b < 0), bool(c < 0)
    if b == 0 and c == 0 and a != 0 and d != 0:
        return False, bool(d < 0), bool(a < 0)
    log.warning("display matrix %s is not a right-angle rotation/flip; frames are returned as decoded", m)
    return False, False, False


def apply_display_transform(image: np.ndarray, transform: tuple[bool, bool, bool]) -> np.ndarray:
    """Apply :func:`display_transform`'s result to an ``H x W x C`` array (a view; the caller copies)."""
    transpose, flip_rows, flip_cols = transform
    if transpose:
        image = image.transpose(1, 0, 2)
    if flip_rows:
        image = image[::-1]
    if flip_cols:
        image = image[:, ::-1]
    return image


class RgbConverter:
    """Decoded frames of one stream -> RGB uint8 ``H x W x 3``, C-contiguous, in display orientation.

    One per stream session, because two PyAV conveniences cost a lot per frame: ``to_ndarray(format=)``
    builds a new swscale context (with its own threads) for every frame, and reading
    ``frame.side_data`` ties the frame into a reference cycle, so the frame, its decoder buffer and
    that context live until Python's cyclic garbage collector runs. Measured on a 2-core machine:
    two threads created per frame and hundreds of frames alive at once in a live soak. Here one
    reformatter (one swscale context) serves the whole stream, and the display matrix, which FFmpeg
    copies from the stream onto every frame, is read from the first frame only.

    Formats deeper than 8 bits go through ``rgb48le`` and are rounded: swscale's direct 10-bit ->
    rgb24 path dithers and biases levels by up to 2-3 codes. ``rotate_deg`` (clockwise, from a
    legacy ``rotate`` stream tag) is used only when the frames carry no display matrix.
    """

    def __init__(self, *, rotate_deg: int = 0) -> None:
        from av.video.reformatter import VideoReformatter

        self.rotate_deg = rotate_deg
        self._reformatter = VideoReformatter()
        self._transform: tuple[bool, bool, bool] | None = None
        self._deep: dict[str, bool] = {}  # pixel format name -> more than 8 bits per component

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        fmt = frame.format
        deep = self._deep.get(fmt.name)
        if deep is None:
            deep = self._deep[fmt.name] = max((c.bits for c in fmt.components), default=8) > 8 and not fmt.has_palette
        if deep:
            wide = self._reformatter.reformat(frame, format="rgb48le").to_ndarray().astype(np.uint32)
            image = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        else:
            image = self._reformatter.reformat(frame, format="rgb24").to_ndarray()
        if self._transform is None:
            self._transform = display_transform(frame)
        if self._transform != (False, False, False):
            image = apply_display_transform(image, self._transform)
        elif self.rotate_deg % 360:
            image = np.rot90(image, k=-(self.rotate_deg // 90))
        return np.ascontiguousarray(image)


def decode_error(stats: SourceStats, what: str, source_id: str, exc: BaseException | None = None) -> None:
    """Count one skipped packet/frame and log it (the first few at WARNING, the rest at DEBUG)."""
    stats.decode_errors += 1
    level = logging.WARNING if stats.decode_errors <= _MAX_LOGGED_ERRORS else logging.DEBUG
    detail = f": {exc}" if exc is not None else ""
    log.log(level, "source %s: skipped %s%s (decode error #%d)", source_id, what, detail, stats.decode_errors)
    if stats.decode_errors == _MAX_LOGGED_ERRORS:
        log.warning("source %s: further decode errors are logged at DEBUG level only", source_id)


def configure_threads(stream: av.video.stream.VideoStream, threads: int | str, *, low_delay: bool = False) -> None:
    """Threaded decoding: ``"auto"`` lets FFmpeg pick the thread count.

    Frame threading adds one frame of latency per thread, so ``low_delay``
    (live streams) restricts FFmpeg to slice threading.
    """
    ctx = stream.codec_context
    ctx.thread_type = "SLICE" if low_delay else "AUTO"
    ctx.thread_count = 0 if threads == "auto" else int(threads)  # 0: FFmpeg picks (about one per core)


def check_threads(threads: int | str) -> int | str:
    """Validate a ``threads`` option: ``"auto"`` or a positive int."""
    if threads == "auto" or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        return threads
    if isinstance(threads, str) and threads.isdigit() and int(threads) >= 1:
        return int(threads)
    raise ConfigError(f"threads must be 'auto' or a positive integer, not {threads!r}")


def legacy_rotation(stream: av.video.stream.VideoStream) -> int:
    """Clockwise degrees from an old-style ``rotate`` stream tag (0 when absent or unparsable)."""
    tag = stream.metadata.get("rotate")
    try:
        return int(float(tag)) % 360 if tag else 0
    except ValueError:
        return 0


@SOURCES.register("file")
class VideoFileSource:
    """A video file, decoded with threaded PyAV: every frame exactly once, in presentation order.

    ``pts``/``time_base`` are the stream's own (variable frame rate is kept, never
    resampled). A frame without a pts gets the previous pts plus the previous
    frame's duration (or one nominal frame interval, or 1 tick), so ``pts`` is
    never ``None``. Rotation/flip from the display matrix is applied. A corrupt
    packet mid-file is logged, counted in ``stats.decode_errors`` and skipped, as
    are frames the decoder marks corrupt and every frame up to the next keyframe
    (they are predicted from damaged pictures): frames are never invented, at the
    cost of up to one GOP after a damaged spot.
    ``read(timeout)`` ignores ``timeout``: decoding a local file does not wait on anyone.

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
    ) -> None:
        self.path = Path(path)
        self.source_id = str(source_id)
        self.threads = check_threads(threads)
        self.stats = SourceStats()
        self.fps: float | None = None
        self.frame_count: int | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.time_base: Fraction | None = None
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._to_rgb: RgbConverter | None = None
        self._index = 0
        self._last_pts: int | None = None
        self._last_duration: int | None = None

    def __repr__(self) -> str:
        return f"VideoFileSource({str(self.path)!r}, source_id={self.source_id!r})"

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
        self._frames = self._decoded(container, stream)
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
        if self._frames is None:
            raise SourceError(f"{self!r}: read() before open() (or after close()); call open() first")
        start = time.perf_counter()
        try:
            vframe = next(self._frames, None)
            if vframe is None:
                return None
            image = self._to_rgb(vframe)
            pts = self._pts(vframe)
            frame = Frame(
                image=image,
                source_id=self.source_id,
                index=self._index,
                pts=pts,
                time_base=self.time_base,
                capture_time=time.monotonic(),
            )
        finally:
            self.stats.busy_s += time.perf_counter() - start
        self._index += 1
        self.stats.frames += 1
        return frame

    def close(self) -> None:
        """Release the decoder; safe to call twice or after a failed open()."""
        self._frames = self._to_rgb = None
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

    def _decoded(self, container: av.container.InputContainer, stream: Any) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order; corrupt packets and concealed frames are skipped."""
        import av

        failures, resync = 0, False
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as exc:
                failures += 1
                decode_error(self.stats, "unreadable packet", self.source_id, exc)
                if failures >= _MAX_DEMUX_FAILURES:
                    raise SourceError(
                        f"{self.path}: {failures} unreadable packets in a row after {self._index} frames; "
                        "the file is damaged beyond this point, repair or re-export it"
                    ) from exc
                packets = container.demux(stream)  # a new demux generator continues where the last stopped
                continue
            failures = 0
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                decode_error(self.stats, f"corrupt packet (pts {packet.pts})", self.source_id, exc)
                resync = True
                continue
            for vframe in frames:
                if vframe.is_corrupt:
                    decode_error(self.stats, f"frame the decoder marked corrupt (pts {vframe.pts})", self.source_id)
                    resync = True
                elif resync and not vframe.key_frame:
                    # predicted from a damaged reference: the decoder's guess, not the real picture
                    decode_error(self.stats, f"frame before the next keyframe (pts {vframe.pts})", self.source_id)
                else:
                    resync = False
                    yield vframe

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
