"""What the web sink shows, shared between the sink's thread (writer) and the server's loop (reader).

One :class:`Tile` per source holds the newest preview JPEG and the source's live numbers; everything
in it is fixed-size, so a tile costs the same after a week as after a minute. The server never
touches a frame: it reads bytes the sink already encoded.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from streamseg.meters import LatencyWindow, RateMeter

__all__ = ["Board", "Tile"]


class Tile:
    """One source's preview and numbers, as the web sink saw them."""

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        self.frames = 0  # predictions of this source that reached the web sink
        self.encoded = 0  # previews encoded (at most the preview fps)
        self.rate = RateMeter()
        self.latency = LatencyWindow(size=600)  # capture -> web sink, the last ~minute at 10 fps
        self.jpeg: bytes | None = None
        self.frame_index = -1  # the source's frame index of the newest preview
        self.version = 0  # bumped on every new preview; what a viewer compares to know it is new
        self.size: tuple[int, int] = (0, 0)  # preview width, height
        self.last_encode = -float("inf")

    def view(self, now: float) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "fps": round(self.rate.rate(now), 2),
            "latency_ms": self.latency.percentiles(),
            "previews": self.encoded,
            "frame_index": self.frame_index,
            "size": list(self.size),
        }


class Board:
    """The tiles by source id, a lock around their previews, and a wake-up for waiting viewers."""

    def __init__(self) -> None:
        self.tiles: dict[str, Tile] = {}
        self._lock = threading.Lock()
        self.on_change: Callable[[], None] | None = None  # set by the server: wakes its streaming viewers

    def tile(self, source_id: str) -> Tile:
        tile = self.tiles.get(source_id)
        if tile is None:
            with self._lock:
                tile = self.tiles.setdefault(source_id, Tile(source_id))
        return tile

    def publish(self, tile: Tile, jpeg: bytes, frame_index: int, size: tuple[int, int]) -> None:
        with self._lock:
            tile.jpeg, tile.frame_index, tile.size = jpeg, frame_index, size
            tile.version += 1
            tile.encoded += 1
        if self.on_change is not None:
            self.on_change()

    def latest(self, source_id: str) -> tuple[int, int, bytes | None]:
        """``(version, frame_index, jpeg)`` of a source's newest preview."""
        with self._lock:
            tile = self.tiles.get(source_id)
            if tile is None:
                return 0, -1, None
            return tile.version, tile.frame_index, tile.jpeg

    def views(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            tiles = list(self.tiles.values())
        return {t.source_id: t.view(now) for t in tiles}
