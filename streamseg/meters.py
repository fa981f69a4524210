"""Fixed-size meters for live numbers: latencies (percentiles, a histogram) and a frame rate.

Each allocates its storage once: a meter updated for every frame of a week-long run must not grow.
"""

from __future__ import annotations

import threading
import time

import numpy as np

__all__ = ["LATENCY_BUCKETS_S", "LatencyWindow", "RateMeter"]

#: Upper bounds (seconds) of the latency histogram's buckets, as Prometheus reads them (``le``).
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyWindow:
    """The last ``size`` latencies in a ring (percentiles), and every latency in fixed buckets (a histogram)."""

    def __init__(self, size: int = 10_000) -> None:
        self._values = np.zeros(size, np.float64)
        self._count = 0
        self._bounds = np.asarray(LATENCY_BUCKETS_S)
        self._buckets = np.zeros(len(LATENCY_BUCKETS_S) + 1, np.int64)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values[self._count % len(self._values)] = seconds
            self._count += 1
            self._buckets[int(np.searchsorted(self._bounds, seconds, side="left"))] += 1
            self._sum += seconds

    def __len__(self) -> int:
        return min(self._count, len(self._values))

    @property
    def count(self) -> int:
        """Latencies added since the start (the window keeps only the last ``size``)."""
        return self._count

    def percentiles(self) -> dict[str, float | None]:
        """p50 and p95 of the window, in milliseconds (``None`` before the first value)."""
        with self._lock:
            values = self._values[: len(self)] * 1000
        if not values.size:
            return {"p50": None, "p95": None}
        return {"p50": round(float(np.percentile(values, 50)), 2), "p95": round(float(np.percentile(values, 95)), 2)}

    def histogram(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative ``(le, count)`` pairs over every latency so far, and their sum in seconds."""
        with self._lock:
            cumulative = np.cumsum(self._buckets)
            total = self._sum
        les = [f"{b:g}" for b in LATENCY_BUCKETS_S] + ["+Inf"]
        return list(zip(les, (int(c) for c in cumulative))), total


class RateMeter:
    """Events per second over the last ``horizon_s`` seconds (a ring of arrival times; 0 once events stop).

    Frames arrive in bursts (a batch's predictions at once), so the rate is events over the time
    window, at least ``min_window_s`` long, not over the span between the first and last event.
    """

    def __init__(self, size: int = 1024, horizon_s: float = 3.0, min_window_s: float = 1.0) -> None:
        self._times = np.full(size, -np.inf)
        self._count = 0
        self._first = 0.0
        self.horizon_s, self.min_window_s = horizon_s, min_window_s
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._count == 0:
                self._first = now
            self._times[self._count % len(self._times)] = now
            self._count += 1

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._count == 0:
                return 0.0
            full = self._count >= len(self._times)
            oldest = self._times[self._count % len(self._times)] if full else self._first
            # the window: the horizon, but no earlier than the oldest event still known
            start = max(now - self.horizon_s, oldest)
            events = int(np.count_nonzero(self._times >= start))
        span = now - start
        if full and start == oldest:  # the ring, not the horizon, bounds the window: count intervals
            events -= 1
        elif not full:
            span = max(span, self.min_window_s)  # just started: a burst is not a rate yet
        return events / span if span > 0 else 0.0
