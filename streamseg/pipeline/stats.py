"""What a run counts: frames in and out, drops, reconnects, latency, per-stage busy time (``--stats-json``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LatencyWindow", "PipelineStats"]


class LatencyWindow:
    """The last ``size`` capture -> sink latencies, in a ring allocated once (nothing grows per frame)."""

    def __init__(self, size: int = 10_000) -> None:
        self._values = np.zeros(size, np.float64)
        self._count = 0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values[self._count % len(self._values)] = seconds
            self._count += 1

    def __len__(self) -> int:
        return min(self._count, len(self._values))

    def percentiles(self) -> dict[str, float | None]:
        with self._lock:
            values = self._values[: len(self)] * 1000
        if not values.size:
            return {"p50": None, "p95": None}
        return {"p50": round(float(np.percentile(values, 50)), 2), "p95": round(float(np.percentile(values, 95)), 2)}


@dataclass
class PipelineStats:
    """What ``--stats-json`` writes; read it live (``Pipeline.stats``) or after ``run()``."""

    frames_in: dict[str, int] = field(default_factory=dict)
    frames_out: int = 0
    expected_frames: int | None = None  # frames the finite sources hold, once all are open (None: live or unknown)
    dropped: dict[str, int] = field(default_factory=dict)
    reconnects: dict[str, int] = field(default_factory=dict)
    sink_dropped: dict[str, int] = field(default_factory=dict)
    decode_errors: dict[str, int] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)  # sources that failed under on_error=skip
    started: float = 0.0
    ended: float = 0.0
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    engine: dict[str, str] = field(default_factory=dict)  # what ran: backend, precision, device

    @property
    def wall_s(self) -> float:
        end = self.ended or time.monotonic()
        return max(end - self.started, 1e-9) if self.started else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_in": sum(self.frames_in.values()),
            "frames_in_per_source": dict(self.frames_in),
            "frames_out": self.frames_out,
            "dropped": dict(self.dropped),
            "sink_dropped": dict(self.sink_dropped),
            "reconnects": dict(self.reconnects),
            "decode_errors": dict(self.decode_errors),
            "source_errors": dict(self.source_errors),
            "wall_s": round(self.wall_s, 3),
            "fps": round(self.frames_out / self.wall_s, 3) if self.wall_s else 0.0,
            "latency_ms": self.latency.percentiles(),
            "stages": {k: dict(v) for k, v in self.stages.items()},
            "engine": dict(self.engine),
        }
