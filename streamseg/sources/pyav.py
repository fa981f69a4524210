"""PyAV decoding shared by the file and network sources: one demux/decode loop, one frame -> RGB conversion.

:func:`decoded_frames` demuxes and decodes one stream, skipping what is damaged without inventing
anything: an unreadable packet, a packet the decoder rejects, a frame it marks corrupt, and (with
``resync``) every frame up to the next keyframe after damage, since those are predicted from
damaged pictures. Each skip is counted in ``stats.decode_errors`` and logged (the first few at
WARNING). Decoding time goes into ``stats.busy_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from streamseg.errors import ConfigError
from streamseg.sources.base import SourceStats

if TYPE_CHECKING:
    import av
    import av.video.stream

__all__ = [
    "RgbConverter",
    "apply_display_transform",
    "check_threads",
    "configure_threads",
    "decoded_frames",
    "display_transform",
    "legacy_rotation",
    "StreamEnded",
]

log = logging.getLogger("streamseg.sources")

_MAX_LOGGED_ERRORS = 5  # per source; later decode errors only go to DEBUG (the count is in stats)


def _skipped(stats: SourceStats, what: str, source_id: str, exc: BaseException | None = None) -> None:
    """Count one skipped packet/frame and log it (the first few at WARNING, the rest at DEBUG)."""
    stats.decode_errors += 1
    level = logging.WARNING if stats.decode_errors <= _MAX_LOGGED_ERRORS else logging.DEBUG
    detail = f": {exc}" if exc is not None else ""
    log.log(level, "source %s: skipped %s%s (decode error #%d)", source_id, what, detail, stats.decode_errors)
    if stats.decode_errors == _MAX_LOGGED_ERRORS:
        log.warning("source %s: further decode errors are logged at DEBUG level only", source_id)


class StreamEnded(Exception):
    """The demuxer gave up: ``cause`` is the error (a clean end of stream just ends the frames)."""

    def __init__(self, cause: BaseException, failures: int) -> None:
        super().__init__(str(cause))
        self.cause, self.failures = cause, failures


def decoded_frames(
    container: Any, stream: Any, stats: SourceStats, source_id: str, *, skip_unreadable: int = 0, resync: bool = True
) -> Iterator[av.VideoFrame]:
    """Decoded frames of ``stream`` in presentation order, damaged ones skipped and counted.

    Up to ``skip_unreadable`` unreadable packets in a row are skipped (a damaged spot in a file);
    one more, or any with ``0`` (a live stream whose connection broke), raises :class:`StreamEnded`.
    """
    import av

    failures, damaged = 0, False
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except (StopIteration, av.error.EOFError):
            return
        except (av.FFmpegError, OSError, EOFError) as exc:
            failures += 1
            if failures > skip_unreadable:
                raise StreamEnded(exc, failures) from exc
            _skipped(stats, "unreadable packet", source_id, exc)
            packets = container.demux(stream)  # a new demux generator continues where the last stopped
            continue
        failures = 0
        start = time.perf_counter()
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            _skipped(stats, f"corrupt packet (pts {packet.pts})", source_id, exc)
            damaged = resync
            continue
        finally:
            stats.busy_s += time.perf_counter() - start
        for vframe in frames:
            if vframe.is_corrupt:
                _skipped(stats, f"frame the decoder marked corrupt (pts {vframe.pts})", source_id)
                damaged = resync
            elif damaged and not vframe.key_frame:
                # predicted from a damaged reference: the decoder's guess, not the real picture
                _skipped(stats, f"frame before the next keyframe (pts {vframe.pts})", source_id)
            else:
                damaged = False
                yield vframe


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


