"""The sink protocol (``open(context) / write(prediction) / close()`` and the counters the pipeline reads),
and :class:`BaseSink`, the bookkeeping every built-in sink shares.

Each sink runs in its own thread with its own bounded queue; that thread calls all three methods,
so a sink may keep thread-affine handles without locks.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

import numpy as np

from streamseg.errors import SinkError
from streamseg.types import Prediction

if TYPE_CHECKING:
    from streamseg.draw import View  # draw loads OpenCV: only sinks that draw pay for it

__all__ = ["BaseSink", "RunView", "Sink", "SinkContext", "ensure_writable_dir"]


def _no_stats() -> dict[str, Any]:
    return {}


def _healthy() -> bool:
    return True


@dataclass(frozen=True, eq=False)
class RunView:
    """A read-only look at the run a sink serves, for live views (a status page, metrics)."""

    snapshot: Callable[[], dict[str, Any]] = _no_stats  # the run's statistics now (what --stats-json writes)
    healthy: Callable[[], bool] = _healthy  # False once a stage has failed


@dataclass(frozen=True, eq=False)
class SinkContext:
    """What every sink may need to know: the model's classes, and a view of the run it serves."""

    classes: tuple[str, ...]
    palette: np.ndarray  # (num_classes, 3) uint8 RGB
    run: RunView | None = None  # None outside a pipeline (a sink driven by hand)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@runtime_checkable
class Sink(Protocol):
    """Consumes Predictions (from one or several sources, tagged by ``frame.source_id``).

    ``close()`` must leave outputs valid (a playable video, complete PNGs) even
    after an error or an interrupt, and must be safe to call after a failed ``open``.
    Optionally a sink names a ``view`` (:class:`streamseg.draw.View`): a GPU engine then draws
    it on the device and hands it over in ``Prediction.rendered`` (:class:`BaseSink`: None).
    """

    name: str
    live: bool  # a live output (a window, a stream): the pipeline's default policy for it is to drop, not wait
    dropped: int  # frames the sink skipped itself (e.g. while its server is away)
    reconnects: int  # successful re-connections of a network output
    stop_requested: threading.Event | None  # set when the sink asks the run to end (a window closed with q)

    def open(self, context: SinkContext) -> None: ...

    def write(self, prediction: Prediction) -> None: ...

    def close(self) -> None: ...


class BaseSink:
    """Counters (``frames``, ``busy_s``, ``dropped``, ``reconnects``) and the open/write/close bookkeeping.

    Subclasses implement ``_open``, ``_write`` (return ``False`` when the frame was not written,
    e.g. dropped) and ``_close``; ``close()`` runs ``_close`` once, also after a failed ``open``.
    """

    kind = "sink"
    live = False
    stop_requested: threading.Event | None = None
    view: View | None = None  # what a GPU engine may draw for this sink (Prediction.rendered)

    def __init__(self, name: str) -> None:
        self.name = name
        self.frames = 0
        self.busy_s = 0.0
        self.dropped = 0
        self.reconnects = 0
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
        """The counters as a dict; a live sink adds what it dropped and how often it reconnected."""
        out: dict[str, Any] = {"name": self.name, "frames": self.frames, "busy_s": round(self.busy_s, 6)}
        if self.live:
            out.update(dropped=self.dropped, reconnects=self.reconnects)
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} frames={self.frames}>"

    # Subclass hooks -------------------------------------------------------

    def _open(self, context: SinkContext) -> None:  # pragma: no cover - trivial default
        pass

    def _write(self, prediction: Prediction) -> bool | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover - trivial default
        pass


def ensure_writable_dir(directory: Path, what: str, hint: str) -> None:
    """Create ``directory`` and prove it takes a file (as root, permissions never refuse: only a write tells)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as exc:
        raise SinkError(f"{what}: {exc.strerror or exc}; {hint}") from exc
