"""The source protocol (``open() / read(timeout) / close()``) and :class:`BaseSource`, the per-frame
bookkeeping every built-in source shares.

One thread (the pipeline's source thread) calls all three, so a source may keep thread-affine
handles (a PyAV container, an OpenCV capture) without locks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

from streamseg.errors import SourceError
from streamseg.types import Frame

__all__ = ["BaseSource", "Source", "SourceStats", "StreamClock"]

log = logging.getLogger("streamseg.sources")


@dataclass
class SourceStats:
    """Counters a source keeps; the pipeline reads them for ``--stats-json``."""

    frames: int = 0  # frames returned by read()
    reconnects: int = 0  # successful re-opens after a lost stream
    busy_s: float = 0.0  # time spent decoding/converting inside read()
    decode_errors: int = 0  # corrupt packets/frames skipped (never replaced by invented frames)
    dropped: int = 0  # frames the source itself discarded (e.g. PushSource "latest" overflow)


@runtime_checkable
class Source(Protocol):
    """Yields Frames in order, each exactly once.

    ``live`` sources (cameras, network streams) default to the ``latest`` drop
    policy; finite ones (files, folders, iterables) to ``lossless``.
    ``read(timeout)`` returns the next Frame, ``None`` at end of stream, and
    raises ``TimeoutError`` when no frame arrived within ``timeout`` seconds
    (the caller then checks its stop event and calls again).
    """

    source_id: str
    live: bool
    stats: SourceStats

    def open(self) -> None: ...

    def read(self, timeout: float) -> Frame | None: ...

    def close(self) -> None: ...


class BaseSource:
    """Frame numbering, the counters and the open/closed state, for sources to build on.

    A subclass calls :meth:`_emit` with each picture it produces (it numbers the frame, stamps it
    and counts it) and :meth:`_check_open` at the top of ``read``.
    """

    kind = "source"
    live = False

    def __init__(self, source_id: str = "0") -> None:
        self.source_id = str(source_id)
        self.stats = SourceStats()
        self._index = 0
        self._opened = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()!r}, source_id={self.source_id!r})"

    def _describe(self) -> Any:  # what __repr__ shows of the target
        return self.kind

    def _check_open(self) -> None:
        if not self._opened:
            raise SourceError(f"{self!r}: read() before open() (or after close()); call open() first")

    def _emit(
        self,
        image: Any,
        *,
        pts: int | None = None,
        time_base: Fraction | None = None,
        capture_time: float | None = None,
        discontinuity: bool = False,
        index: int | None = None,
    ) -> Frame:
        """The next Frame of this source: numbered (``index`` overrides), stamped and counted."""
        frame = Frame(
            image=image,
            source_id=self.source_id,
            index=self._index if index is None else index,
            pts=pts,
            time_base=time_base,
            capture_time=capture_time or time.monotonic(),
            discontinuity=discontinuity,
        )
        self._index = frame.index + 1
        self.stats.frames += 1
        return frame


class StreamClock:
    """Timestamps of a stream that may be re-opened: strictly increasing across sessions, in one time base.

    The first session's ``pts``/``time_base`` are the stream's own; later sessions are rescaled into
    that time base and shifted to continue after the last frame (plus the wall-clock gap). A clock
    that jumps back inside a session (wrap-around, an encoder restart) is re-based the same way; a
    frame without a pts gets one from the wall clock.
    """

    def __init__(self) -> None:
        self.time_base: Fraction | None = None  # common time base of every pts handed out
        self.last_pts: int | None = None
        self._last_time: float | None = None
        self._session_tb: Fraction | None = None
        self._offset: int | None = None  # added to rescaled session pts

    def new_session(self, time_base: Fraction) -> None:
        if self.time_base is None:
            self.time_base = time_base
        self._session_tb, self._offset = time_base, None

    def pts(self, raw: int | None, now: float) -> int:
        """The pts to hand out for a frame whose stream pts is ``raw``, arriving at ``now`` (monotonic s)."""
        assert self.time_base is not None and self._session_tb is not None, "new_session() first"
        last = self.last_pts
        gap = 1
        if last is not None and self._last_time is not None:
            gap = max(1, int((now - self._last_time) / self.time_base))
        if raw is None:  # no stream clock for this frame: the wall clock
            pts = 0 if last is None else last + gap
        else:
            pts = raw if self._session_tb == self.time_base else round(raw * self._session_tb / self.time_base)
            if self._offset is None:
                self._offset = 0 if last is None else last + gap - pts
            if last is not None and pts + self._offset <= last:
                log.debug("stream clock went back (%d after %d); re-based", pts + self._offset, last)
                self._offset = last + gap - pts
            pts += self._offset
        self.last_pts, self._last_time = pts, now
        return pts
