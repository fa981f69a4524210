"""``/metrics``: the run's counters in the Prometheus text format, read fresh at every scrape.

Nothing is counted twice: the pipeline's own statistics (the snapshot ``--stats-json`` writes) are
turned into metric families when Prometheus asks, next to what only the web sink knows (per-source
latency histograms as frames reach it, its viewers).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from streamseg.sinks.web.board import Board

__all__ = ["metrics_registry"]

_PER_SOURCE = (  # snapshot key -> (metric name, help)
    ("frames_in_per_source", "streamseg_frames_in", "Frames read from each source"),
    ("frames_out_per_source", "streamseg_frames_out", "Frames segmented, per source"),
    ("dropped", "streamseg_dropped", "Frames dropped by a source's queue policy (counted, never silent)"),
    ("decode_errors", "streamseg_decode_errors", "Corrupt packets or frames skipped, per source"),
)


class _RunCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict[str, Any]], healthy: Callable[[], bool], board: Board,
                 viewers: Callable[[], dict[str, int]]) -> None:  # fmt: skip
        self.snapshot, self.healthy, self.board, self.viewers = snapshot, healthy, board, viewers

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot()
        yield GaugeMetricFamily("streamseg_up", "1 while the pipeline runs, 0 after a stage failed", value=int(self.healthy()))
        for key, name, text in _PER_SOURCE:
            family = CounterMetricFamily(name, text, labels=["source"])
            for source, value in (s.get(key) or {}).items():
                family.add_metric([source], value)
            yield family
        reconnects = CounterMetricFamily("streamseg_reconnects", "Successful re-connections of a live source", labels=["source"])
        sink_reconnects = CounterMetricFamily("streamseg_sink_reconnects", "Re-connections of a network output", labels=["sink"])
        for name, value in (s.get("reconnects") or {}).items():
            if name.startswith("sink "):
                sink_reconnects.add_metric([name[5:]], value)
            else:
                reconnects.add_metric([name], value)
        yield reconnects
        yield sink_reconnects
        yield from self._stages(s)
        latency = HistogramMetricFamily(
            "streamseg_latency_seconds", "Capture -> web sink latency, per source", labels=["source"]
        )
        previews = CounterMetricFamily("streamseg_web_previews", "Preview JPEGs encoded, per source", labels=["source"])
        for source, tile in list(self.board.tiles.items()):
            buckets, total = tile.latency.histogram()
            latency.add_metric([source], buckets, total)
            previews.add_metric([source], tile.encoded)
        yield latency
        yield previews
        v = self.viewers()
        yield GaugeMetricFamily("streamseg_web_clients", "Viewers streaming now", value=v["clients"])
        yield CounterMetricFamily("streamseg_web_clients_refused", "Viewers refused over max_clients", value=v["refused"])
        yield CounterMetricFamily(
            "streamseg_web_clients_disconnected", "Viewers cut off for not reading", value=v["disconnected"]
        )
        yield CounterMetricFamily(
            "streamseg_web_previews_skipped", "Previews a slow viewer never got (it got a newer one)", value=v["skipped"]
        )

    @staticmethod
    def _stages(s: dict[str, Any]) -> Iterator[Metric]:
        busy = CounterMetricFamily("streamseg_stage_busy_seconds", "Time each stage spent working", labels=["stage"])
        frames = CounterMetricFamily("streamseg_stage_frames", "Frames each stage handled", labels=["stage"])
        sink_busy = CounterMetricFamily("streamseg_sink_busy_seconds", "Time each sink spent writing", labels=["sink"])
        sink_frames = CounterMetricFamily("streamseg_sink_frames", "Frames each sink wrote", labels=["sink"])
        for stage, values in (s.get("stages") or {}).items():
            if stage.startswith("sink "):
                sink_busy.add_metric([stage[5:]], values.get("busy_s", 0.0))
                sink_frames.add_metric([stage[5:]], values.get("frames", 0))
            else:
                busy.add_metric([stage], values.get("busy_s", 0.0))
                frames.add_metric([stage], values.get("frames", 0))
        dropped = CounterMetricFamily("streamseg_sink_dropped", "Frames a sink's queue policy dropped", labels=["sink"])
        for sink, value in (s.get("sink_dropped") or {}).items():
            dropped.add_metric([sink], value)
        yield from (busy, frames, sink_busy, sink_frames, dropped)


def metrics_registry(snapshot: Callable[[], dict[str, Any]], healthy: Callable[[], bool], board: Board,
                     viewers: Callable[[], dict[str, int]]) -> CollectorRegistry:  # fmt: skip
    """A registry of its own (never the process-global one): two web sinks in one process do not collide."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunCollector(snapshot, healthy, board, viewers))
    return registry
