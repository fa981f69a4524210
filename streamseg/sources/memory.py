"""Frames handed over by Python code: an iterable (pulled) or ``submit()`` calls (pushed, e.g. robotics).

Both check every image up front (RGB uint8 ``H x W x 3``) so a bad array fails
with the item that caused it, not deep inside the engine.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np

from streamseg.errors import ConfigError, SourceError
from streamseg.frames import as_rgb_uint8
from streamseg.sources.base import BaseSource
from streamseg.types import Frame

__all__ = ["IterableSource", "PushSource", "check_image", "iterable_source", "push_source"]

log = logging.getLogger(__name__)

#: ``PushSource`` timestamps (seconds) become integer microseconds.
US = Fraction(1, 1_000_000)
_END = object()


def check_image(image: Any, what: str) -> np.ndarray:
    """``image`` as RGB uint8 ``H x W x 3`` (grey and RGBA converted), or an InputError saying what is wrong."""
    return as_rgb_uint8(image, what=what, allow_tensor=False)


class IterableSource(BaseSource):
    """Frames from any iterable of RGB uint8 arrays or :class:`Frame` objects, pulled lazily.

    A Frame item keeps its ``pts``/``time_base``/``discontinuity`` and its
    ``capture_time`` (if non-zero), but gets this source's ``source_id`` and the
    next ``index``, so indices are always 0, 1, 2, ... per source. A bad item is an
    InputError naming its position. ``read(timeout)`` cannot interrupt a slow
    iterator: it waits for the next item. ``close()`` closes a generator (running
    its ``finally`` blocks).
    """

    kind = "iterable"
    live = False

    def __init__(self, iterable: Iterable[np.ndarray | Frame], *, source_id: str = "0") -> None:
        if isinstance(iterable, (str, bytes)) or not isinstance(iterable, Iterable):
            raise ConfigError(
                f"IterableSource needs an iterable of RGB uint8 arrays or Frames, not {type(iterable).__name__}"
            )
        super().__init__(source_id)
        self.iterable = iterable
        self.frame_count: int | None = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        self._it: Iterator[np.ndarray | Frame] | None = None

    def _describe(self) -> str:
        return type(self.iterable).__name__

    def open(self) -> None:
        """Start iterating (a one-shot iterator can be opened once)."""
        self._it = iter(self.iterable)
        self._index = 0
        self._opened = True

    def read(self, timeout: float = 0.0) -> Frame | None:
        """The next item as a Frame, ``None`` when the iterable is exhausted."""
        self._check_open()
        item = next(self._it, _END)  # type: ignore[arg-type]
        if item is _END:
            return None
        what = f"item {self._index} of source {self.source_id!r}"
        if isinstance(item, Frame):
            image = check_image(item.image, f"{what} (a Frame)")
            return self._emit(image, pts=item.pts, time_base=item.time_base, capture_time=item.capture_time,
                              discontinuity=item.discontinuity)  # fmt: skip
        return self._emit(check_image(item, what))

    def close(self) -> None:
        """Stop iterating; a generator is closed so its cleanup runs."""
        it, self._it, self._opened = self._it, None, False
        close = getattr(it, "close", None)
        if callable(close):
            close()


def iterable_source(target: Any, *, source_id: str = "0", **options: Any) -> IterableSource:
    """``iterable:`` cannot come from a string: build it in Python (``IterableSource(arrays)``)."""
    if isinstance(target, str):
        raise ConfigError(
            "an iterable source cannot be given as a string; in Python pass the arrays: "
            "open_source([img0, img1, ...]) or IterableSource(frames)"
        )
    return IterableSource(target, source_id=source_id, **options)


class PushSource(BaseSource):
    """Frames pushed by other threads with :meth:`submit` (a ROS callback, a robot's control loop).

    ``maxsize`` frames wait at most. ``policy="latest"``: a full buffer drops its
    oldest waiting frame (counted in ``stats.dropped``; its index is skipped), so
    the consumer always gets the freshest images. ``policy="lossless"``:
    :meth:`submit` blocks until there is room, raising TimeoutError after its
    ``timeout``. ``timestamp`` (seconds, any clock) becomes ``pts`` in
    microseconds; without it ``pts`` is ``None``. :meth:`end` marks the end of the
    stream (idempotent): frames already submitted are still delivered, then
    ``read()`` returns ``None``. ``copy=False`` skips copying submitted arrays (only
    if the caller never reuses them).
    """

    kind = "push"
    live = True

    def __init__(self, *, source_id: str = "0", maxsize: int = 1, policy: str = "latest", copy: bool = True) -> None:
        if maxsize < 1:
            raise ConfigError(f"PushSource maxsize must be >= 1, not {maxsize}")
        if policy not in ("latest", "lossless"):
            raise ConfigError(f"PushSource policy must be 'latest' or 'lossless', not {policy!r}")
        super().__init__(source_id)
        self.maxsize = maxsize
        self.policy = policy
        self.copy = copy
        self._buffer: collections.deque[tuple[int, np.ndarray, int | None, float]] = collections.deque()
        self._cond = threading.Condition()
        self._next_index = 0
        self._ended = False
        self._closed = False

    def __repr__(self) -> str:
        return f"PushSource(source_id={self.source_id!r}, maxsize={self.maxsize}, policy={self.policy!r})"

    def submit(self, image: np.ndarray, *, timestamp: float | None = None, timeout: float | None = 10.0) -> int:
        """Queue one RGB uint8 image; returns its frame index. Thread-safe.

        With ``policy="lossless"`` a full buffer blocks for up to ``timeout`` s
        (``None``: forever) and then raises TimeoutError. Submitting after
        :meth:`end` or :meth:`close` is a SourceError.
        """
        image = check_image(image, f"image submitted to push source {self.source_id!r}")
        if self.copy:
            image = image.copy()
        pts = None if timestamp is None else round(float(timestamp) * 1_000_000)
        with self._cond:
            self._check_accepting()
            if self.policy == "lossless":
                if not self._cond.wait_for(
                    lambda: len(self._buffer) < self.maxsize or self._ended or self._closed, timeout
                ):
                    raise TimeoutError(
                        f"push source {self.source_id!r}: buffer full for {timeout} s; the consumer is too slow or "
                        "stopped (use policy='latest' to drop old frames instead of blocking)"
                    )
                self._check_accepting()
            elif len(self._buffer) >= self.maxsize:
                dropped = self._buffer.popleft()
                self.stats.dropped += 1
                log.debug("source %s: dropped frame %d (buffer full)", self.source_id, dropped[0])
            index = self._next_index
            self._next_index += 1
            self._buffer.append((index, image, pts, time.monotonic()))
            self._cond.notify_all()
        return index

    def end(self) -> None:
        """No more frames will come; waiting frames are still delivered. Calling it again does nothing."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    @property
    def dropped(self) -> int:
        """Frames dropped by the ``latest`` policy (same as ``stats.dropped``)."""
        return self.stats.dropped

    @property
    def pending(self) -> int:
        """Frames submitted and not yet read."""
        with self._cond:
            return len(self._buffer)

    def open(self) -> None:
        """Nothing to open: frames may be submitted before or after."""

    def read(self, timeout: float) -> Frame | None:
        """The oldest waiting frame; ``None`` once :meth:`end` was called and all were read."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._buffer or self._ended or self._closed, max(0.0, timeout)):
                raise TimeoutError(f"push source {self.source_id!r}: nothing submitted within {timeout} s")
            if not self._buffer:
                return None
            index, image, pts, captured = self._buffer.popleft()
            self._cond.notify_all()  # wake a blocked lossless submit()
        return self._emit(image, pts=pts, time_base=US if pts is not None else None, capture_time=captured, index=index)

    def close(self) -> None:
        """Stop accepting frames (blocked submitters raise SourceError); waiting frames are discarded."""
        with self._cond:
            self._closed = True
            self._buffer.clear()
            self._cond.notify_all()

    def _check_accepting(self) -> None:
        if self._closed:
            raise SourceError(f"push source {self.source_id!r} is closed (the pipeline stopped); stop submitting")
        if self._ended:
            raise SourceError(f"push source {self.source_id!r}: submit() after end(); create a new PushSource")


def push_source(target: str = "", *, source_id: str = "0", **options: Any) -> PushSource:
    """``push:`` (no target): a PushSource; the frames come from ``submit()`` in Python."""
    if target:
        raise ConfigError(f"push sources take no target (got {target!r}); use 'push:' and call submit() in Python")
    return PushSource(source_id=source_id, **options)
