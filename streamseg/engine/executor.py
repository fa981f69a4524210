"""What the three executors (``cpu``, ``cuda``, ``openvino``) share: their protocol, how a batch's frames
are checked and grouped, and the in-flight bookkeeping of the two that keep batches running.

An executor runs batches on one backend: ``submit`` starts a batch, ``poll`` hands back finished
ones in submission order, ``flush`` waits for all. :class:`AsyncExecutor` implements ``poll`` and
``flush`` over :class:`InFlight` for the CUDA and OpenVINO executors, which finish their own
batches (``_finish``) with the helpers of :mod:`.results`.
"""

from __future__ import annotations

import collections
from typing import Any, Generic, Protocol, Sequence, TypeVar

import numpy as np

from streamseg.engine.results import EngineStats
from streamseg.frames import as_rgb_uint8
from streamseg.types import Batch, Frame, Prediction

__all__ = ["AsyncExecutor", "Executor", "InFlight", "checked_images", "frames_of", "size_groups"]


class Executor(Protocol):
    """Runs batches on one backend; results come back in submission order."""

    stats: EngineStats

    def submit(self, batch: Batch, *, confidence: bool = False, logits: bool = False) -> None: ...

    def poll(self, *, wait: bool = False) -> list[list[Prediction]]: ...

    def flush(self) -> list[list[Prediction]]: ...


class _Done(Protocol):
    def query(self) -> bool: ...


class _Pending(Protocol):
    done: _Done  # a CUDA event, or OpenVINO handles: query() is True once the batch can be collected


P = TypeVar("P", bound=_Pending)


class InFlight(Generic[P]):
    """Batches in flight, oldest first: only the bookkeeping; the executor finishes what comes out."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._items: collections.deque[P] = collections.deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: P) -> None:
        self._items.append(item)

    def make_room(self) -> list[P]:
        """The oldest batches to collect now so that one more fits under the limit."""
        return [self._items.popleft() for _ in range(len(self._items) - self.limit + 1)]

    def due(self, *, wait: bool) -> list[P]:
        """Leading batches that are done; with ``wait``, at least the oldest one (collecting it blocks)."""
        out = []
        while self._items and (self._items[0].done.query() or wait and not out):
            out.append(self._items.popleft())
        return out

    def drain(self) -> list[P]:
        out, self._items = list(self._items), collections.deque()
        return out


def frames_of(batch: Batch) -> tuple[Frame, ...]:
    """The batch's items as Frames (a bare image becomes a Frame of stream ``"0"``)."""
    return tuple(f if isinstance(f, Frame) else Frame(image=f) for f in batch.frames)


def checked_images(frames: Sequence[Frame]) -> list[Any]:
    """Each frame's image as RGB uint8 ``H x W x 3``; what sources deliver passes without a copy."""
    images = []
    for f in frames:
        image = f.image
        ok = type(image) is np.ndarray and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size
        images.append(image if ok and image.flags.c_contiguous else as_rgb_uint8(image, what=f"frame {f.source_id}/{f.index}"))
    return images


def size_groups(images: Sequence[Any]) -> dict[tuple[int, int], list[int]]:
    """Positions of the images by ``(height, width)``: each size is one forward."""
    groups: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
    for pos, image in enumerate(images):
        groups[(int(image.shape[0]), int(image.shape[1]))].append(pos)
    return groups




class AsyncExecutor(Generic[P]):
    """``poll``/``flush`` for executors whose batches finish later: subclasses ``add`` what ``submit`` starts
    (after collecting ``make_room()``) and implement ``_finish(pending)``."""

    def __init__(self, limit: int) -> None:
        self._in_flight: InFlight[P] = InFlight(limit)
        self._ready: list[list[Prediction]] = []

    def _make_room(self) -> None:
        self._ready += [self._finish(p) for p in self._in_flight.make_room()]

    def poll(self, *, wait: bool = False) -> list[list[Prediction]]:
        """Finished batches in submission order (``wait`` blocks for the oldest one)."""
        out = self._ready + [self._finish(p) for p in self._in_flight.due(wait=wait and not self._ready)]
        self._ready = []
        return out

    def flush(self) -> list[list[Prediction]]:
        """Every outstanding batch, waiting for those still running."""
        self._ready += [self._finish(p) for p in self._in_flight.drain()]
        return self.poll()

    def _finish(self, pending: P) -> list[Prediction]:  # pragma: no cover - abstract
        raise NotImplementedError
