"""Run statistics: the latency window is bounded and allocated once."""

from __future__ import annotations

import numpy as np

from streamseg.pipeline.stats import LatencyWindow, PipelineStats


def test_latency_window_keeps_the_last_values_in_a_fixed_ring():
    window = LatencyWindow(size=100)
    assert window.percentiles() == {"p50": None, "p95": None}
    for i in range(1000):
        window.add(i / 1000)
    assert len(window) == 100
    p = window.percentiles()  # only the last 100 (0.900 .. 0.999 s) count
    assert p["p50"] == round(float(np.percentile(np.arange(900, 1000), 50)), 2)
    assert 990 <= p["p95"] <= 999


def test_stats_as_dict_adds_up():
    stats = PipelineStats(frames_in={"a": 3, "b": 4}, frames_out=6, dropped={"a": 1})
    d = stats.as_dict()
    assert d["frames_in"] == 7 and d["frames_in_per_source"] == {"a": 3, "b": 4} and d["dropped"] == {"a": 1}
    assert d["wall_s"] == 0 and d["fps"] == 0.0
