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


def test_start_up_is_reported_apart_from_the_frame_rate(capsys):
    """A first int8 run calibrates for a minute before the sources start: fps counts from then on."""
    from streamseg.commands.run import _print_summary

    stats = PipelineStats(frames_in={"a": 50}, frames_out=50, dropped={"a": 0}, started=100.0, ready=130.0, ended=140.0)
    d = stats.as_dict()
    assert d["wall_s"] == 40.0 and d["startup_s"] == 30.0 and d["fps"] == 5.0
    _print_summary(d)
    assert "in 40.0 s (start-up 30.0 s), 5.0 fps" in capsys.readouterr().err
    assert PipelineStats().as_dict()["startup_s"] is None
