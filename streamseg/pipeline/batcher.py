"""Frames from several sources into batches: the sources' lanes and the batcher, plain objects testable
without threads.

A :class:`SourceLane` is one source's bounded queue with its drop policy: ``lossless`` makes the
producer wait, ``latest`` drops the oldest waiting frame (counted) and, when taking, skips frames
older than ``max_age`` if a newer one waits. The :class:`Batcher` takes from the lanes round robin,
one frame at a time, so a stalled source never stalls the others; a partial batch waits at most
``max_wait`` for more frames, then goes as it is.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Protocol, Sequence

from streamseg.types import Frame

__all__ = ["END", "TICK", "Batcher", "Lane", "SourceLane", "put_until"]

#: What a lane hands out once, after its last frame.
END = object()
TICK = 0.05  # seconds: how often a blocked producer re-checks whether to give up


def put_until(q: queue.Queue, item: object, give_up: Callable[[], bool]) -> bool:
    """Put ``item`` on ``q``, waiting as long as it takes unless ``give_up()`` turns true; True if it went in."""
    while True:
        try:
            q.put(item, timeout=TICK)
            return True
        except queue.Full:
            if give_up():
                return False


class SourceLane:
    """One source's bounded queue to the batcher, with its drop policy; every drop is counted."""

    def __init__(self, policy: str, size: int, max_age: float | None, halt: threading.Event) -> None:
        """``halt``: set when the engine takes no more frames (an abort or a failure): stop waiting for room."""
        self.policy, self.max_age, self.halt = policy, max_age, halt
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.dropped = 0
        self._lock = threading.Lock()

    def put(self, frame: Frame) -> None:
        """Producer side: ``lossless`` waits for room (an abort counts the frame as dropped); ``latest``
        makes room by dropping the oldest waiting frame."""
        if self.policy == "lossless":
            if not put_until(self.queue, frame, self.halt.is_set):
                self._count_drop()
            return
        while True:
            try:
                self.queue.put_nowait(frame)
                return
            except queue.Full:
                self._drop_one()

    def end(self) -> None:
        """The producer's last item, exactly once; when the engine takes no more, room is made for it."""
        while not put_until(self.queue, END, self.halt.is_set):
            self._drop_one()

    def take(self) -> Frame | object | None:
        """Non-blocking: the next frame, END, or None. ``latest`` skips stale frames when a newer one waits."""
        try:
            item = self.queue.get_nowait()
        except queue.Empty:
            return None
        if self.policy == "latest" and self.max_age and item is not END:
            now = time.monotonic()
            while now - item.capture_time > self.max_age and not self.queue.empty():  # type: ignore[attr-defined]
                try:
                    newer = self.queue.get_nowait()
                except queue.Empty:
                    break
                if newer is END:
                    self.queue.put_nowait(newer)
                    break
                self._count_drop()
                item = newer
        return item

    def discard(self) -> None:
        """Stopping without draining: frames queued but never segmented are counted as dropped."""
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if item is not END:
                self._count_drop()

    def _drop_one(self) -> None:
        try:
            old = self.queue.get_nowait()
        except queue.Empty:
            return
        if old is END:  # never dropped
            self.queue.put_nowait(old)
        else:
            self._count_drop()

    def _count_drop(self) -> None:
        with self._lock:
            self.dropped += 1


class Lane(Protocol):
    """One source's queue as the batcher sees it."""

    def take(self) -> Frame | object | None:
        """Non-blocking: the next Frame, :data:`END` once the source is done, or None when nothing waits."""
        ...


class Batcher:
    """Builds batches of at most ``batch_size`` frames from ``lanes`` until every lane has ended."""

    def __init__(
        self,
        lanes: Sequence[Lane],
        *,
        batch_size: int,
        max_wait: float,
        idle: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``max_wait`` (s): how long a partial batch waits; ``idle`` (s): how long :meth:`next_batch` waits
        for a first frame before returning an empty batch (so its caller can look at other things)."""
        self.active = list(lanes)
        self.batch_size, self.max_wait, self.idle = batch_size, max_wait, idle
        self._clock, self._sleep = clock, sleep
        self._cursor = 0

    @property
    def done(self) -> bool:
        """Every lane handed out :data:`END`."""
        return not self.active

    def next_batch(self) -> list[Frame]:
        """The next batch, in arrival order per lane; empty when nothing came within ``idle`` or all lanes ended."""
        frames: list[Frame] = []
        deadline = self._clock() + self.idle
        while len(frames) < self.batch_size and self.active:
            item = self._take_one()
            if item is END:
                continue
            if item is not None:
                if not frames:
                    deadline = self._clock() + self.max_wait
                frames.append(item)  # type: ignore[arg-type]
                continue
            if self._clock() >= deadline:
                break
            self._sleep(0.002 if frames else 0.005)
        return frames

    def _take_one(self) -> Frame | object | None:
        """One item from the next lane that has one (round robin); END also retires its lane."""
        for _ in range(len(self.active)):
            lane = self.active[self._cursor % len(self.active)]
            self._cursor += 1
            item = lane.take()
            if item is END:
                self.active.remove(lane)
                return END
            if item is not None:
                return item
        return None
