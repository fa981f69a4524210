"""The source protocol: ``open() / read(timeout) / close()``.

One thread (the pipeline's source thread) calls all three, so a source may keep
thread-affine handles (a PyAV container, an OpenCV capture) without locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from streamseg.types import Frame


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
