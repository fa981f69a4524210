"""The fixed-size meters behind live numbers: a frame rate that survives bursts, latency percentiles and buckets."""

from __future__ import annotations

import pytest

from streamseg.meters import LATENCY_BUCKETS_S, LatencyWindow, RateMeter


def test_rate_of_batched_arrivals_is_the_frame_rate():
    meter = RateMeter()
    for k in range(100):  # 30 fps delivered in batches of four
        for _ in range(4):
            meter.tick(k * 4 / 30)
    assert meter.rate(99 * 4 / 30) == pytest.approx(30, rel=0.05)
    assert meter.rate(99 * 4 / 30 + 5) == 0.0  # stopped: no stale rate


def test_a_first_burst_is_not_a_rate():
    meter = RateMeter()
    for _ in range(8):
        meter.tick(10.0)
    assert meter.rate(10.01) <= 8.0


def test_a_small_ring_still_measures_a_fast_rate():
    meter = RateMeter(size=16)
    for k in range(200):
        meter.tick(k / 120)
    assert meter.rate(199 / 120) == pytest.approx(120, rel=0.02)


def test_latency_window_keeps_percentiles_of_the_last_values_and_buckets_of_all():
    window = LatencyWindow(size=4)
    for seconds in (10.0, 10.0, 0.02, 0.02, 0.02, 0.02):
        window.add(seconds)
    assert len(window) == 4 and window.count == 6
    assert window.percentiles() == {"p50": 20.0, "p95": 20.0}  # the 10 s ones left the window
    buckets, total = window.histogram()
    assert [le for le, _ in buckets] == [f"{b:g}" for b in LATENCY_BUCKETS_S] + ["+Inf"]
    assert dict(buckets)["0.025"] == 4 and dict(buckets)["10"] == 6 and dict(buckets)["+Inf"] == 6
    assert total == pytest.approx(20.08)
    assert LatencyWindow().percentiles() == {"p50": None, "p95": None}
