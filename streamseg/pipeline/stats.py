"""What a run counts: frames in and out, drops, reconnects, latency, per-stage busy time (``--stats-json``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from streamseg.meters import LatencyWindow

__all__ = ["LatencyWindow", "PipelineStats"]


@dataclass
class PipelineStats:
    """What ``--stats-json`` writes; read it live (``Pipeline.stats``) or after ``run()``."""

    frames_in: dict[str, int] = field(default_factory=dict)
    frames_out: int = 0
    frames_out_per_source: dict[str, int] = field(default_factory=dict)
    expected_frames: int | None = None  # frames the finite sources hold, once all are open (None: live or unknown)
    dropped: dict[str, int] = field(default_factory=dict)
    reconnects: dict[str, int] = field(default_factory=dict)
    sink_dropped: dict[str, int] = field(default_factory=dict)
    decode_errors: dict[str, int] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)  # sources that failed under on_error=skip
    started: float = 0.0
    ready: float = 0.0  # model loaded (int8: quantized) and sinks open: the sources start
    ended: float = 0.0
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    engine: dict[str, str] = field(default_factory=dict)  # what ran: backend, precision, device
    source_state: dict[str, str] = field(default_factory=dict)  # opening, running, reconnecting, ended, failed

    @property
    def wall_s(self) -> float:
        end = self.ended or time.monotonic()
        return max(end - self.started, 1e-9) if self.started else 0.0

    @property
    def fps(self) -> float:
        """Frames out per second since the sources started: start-up (a first int8 run calibrates for
        minutes) is reported apart, as ``startup_s``."""
        if not self.ready:
            return 0.0
        return self.frames_out / max((self.ended or time.monotonic()) - self.ready, 1e-9)

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_in": sum(self.frames_in.values()),
            "frames_in_per_source": dict(self.frames_in),
            "frames_out": self.frames_out,
            "frames_out_per_source": dict(self.frames_out_per_source),
            "dropped": dict(self.dropped),
            "sink_dropped": dict(self.sink_dropped),
            "reconnects": dict(self.reconnects),
            "decode_errors": dict(self.decode_errors),
            "source_errors": dict(self.source_errors),
            "wall_s": round(self.wall_s, 3),
            "startup_s": round(self.ready - self.started, 3) if self.ready else None,
            "fps": round(self.fps, 3),
            "latency_ms": self.latency.percentiles(),
            "stages": {k: dict(v) for k, v in list(self.stages.items())},  # list(): the engine adds keys live
            "engine": dict(self.engine),
            "source_state": dict(self.source_state),
        }
