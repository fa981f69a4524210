"""Live-stream faults through the whole pipeline, against a real RTSP server on 127.0.0.1:
a publisher that stalls (camera frozen, network stalled), the watchdog, and a resolution change."""

from __future__ import annotations

import time

import av
import numpy as np
import pytest

from streamseg.pipeline import Pipeline, PipelineConfig, SinkConfig, SourceConfig
from streamseg.sinks.callback import CallbackSink

from helpers import RtspPublisher, decode_index

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(90)]


class Seen:
    """What the callback sink got: (published index, frame, capture -> sink latency, arrival)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, object, float, float]] = []

    def __call__(self, pred) -> None:
        now = time.monotonic()
        self.items.append((decode_index(pred.frame.image), pred, now - pred.frame.capture_time, now))

    def wait(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.items) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.items) >= n, f"only {len(self.items)} of {n} frames arrived"


def _pipeline(url: str, seen: Seen, segmenter, *, sinks=(), **source_options) -> Pipeline:
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=url, id="cam", options={"open_timeout": 5, "backoff": [0.2, 1.0], **source_options})],
        sinks=list(sinks),
        batch_size=1,
        max_wait_ms=0,
        progress=False,
    )
    return Pipeline(cfg, sinks=[CallbackSink(seen)], segmenter=segmenter)


def _check_order_and_counts(seen: Seen, stats: dict) -> None:
    indices = [i for i, *_ in seen.items]
    assert all(b > a for a, b in zip(indices, indices[1:])), "frames reordered or duplicated"
    assert stats["frames_in"] == stats["frames_out"] + sum(stats["dropped"].values())
    assert stats["frames_out"] == len(seen.items)


def _publish(url: str) -> RtspPublisher:
    pub = RtspPublisher(url, size=(64, 48), persist=True)
    pub.start()
    assert pub.connected.wait(15), pub.errors
    return pub


def _stall_through_pipeline(url: str, segmenter, stall_s: float, *, burst: bool = False, **source_options):
    """Publish, segment 20 frames, stall the publisher, then wait for 40 more: (seen, stats, resumed)."""
    pub = _publish(url)
    seen = Seen()
    pipe = _pipeline(url, seen, segmenter, **source_options)
    try:
        pipe.start()
        seen.wait(20, 20)
        pub.stall(stall_s, burst=burst)
        time.sleep(stall_s)
        resumed = time.monotonic()
        seen.wait(len(seen.items) + 40, 25)
        assert not pipe.failed
    finally:
        pipe.stop()
        stats = pipe.join(timeout=20).as_dict()
        pub.stop()
    _check_order_and_counts(seen, stats)
    return seen, stats, resumed


@pytest.mark.parametrize("burst", [False, True], ids=["camera-frozen", "network-stalled"])
def test_a_stall_neither_ends_nor_delays_the_stream(rtsp_relay, tiny_segmenter, burst):
    # 2 s: below the relay's 3 s idle limit and the source's read_timeout, so the session stays up
    url = rtsp_relay.url("cam")
    seen, stats, resumed = _stall_through_pipeline(url, tiny_segmenter, 2.0, burst=burst, read_timeout=5)
    arrivals = [t for *_, t in seen.items]
    assert max(b - a for a, b in zip(arrivals, arrivals[1:])) >= 1.5  # the stall was real
    settled = [lat for _, _, lat, t in seen.items if t > resumed + 1.0]
    assert settled and float(np.percentile(settled, 95)) < 0.5  # no backlog carried past the stall
    assert stats["reconnects"]["cam"] == 0


def test_watchdog_reconnects_a_silent_session(rtsp_relay, tiny_segmenter):
    """The server keeps the connection open but sends nothing: read_timeout ends the session, we reconnect."""
    rtsp_relay.stop()
    rtsp_relay.idle_timeout = 30  # the server itself never gives up on its silent publisher
    rtsp_relay.start()
    seen, stats, _ = _stall_through_pipeline(rtsp_relay.url("cam"), tiny_segmenter, 4.0, read_timeout=1.0)
    assert stats["reconnects"]["cam"] >= 1
    arrivals = [t for *_, t in seen.items]
    gap = max(range(1, len(arrivals)), key=lambda i: arrivals[i] - arrivals[i - 1])
    assert arrivals[gap] - arrivals[gap - 1] >= 3.0
    assert seen.items[gap][1].frame.discontinuity  # the first frame of the new session is marked
    assert sum(pred.frame.discontinuity for _, pred, _, _ in seen.items) == stats["reconnects"]["cam"]
    stamps = [pred.frame.timestamp for _, pred, _, _ in seen.items]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


def test_resolution_change_mid_stream(rtsp_relay, tiny_segmenter, tmp_path):
    url = rtsp_relay.url("cam")
    pub = _publish(url)
    seen = Seen()
    video = tmp_path / "out.mp4"
    pipe = _pipeline(url, seen, tiny_segmenter, read_timeout=2, sinks=[SinkConfig(spec=f"video:{video}")])
    try:
        pipe.start()
        seen.wait(20, 20)
        pub.resize((96, 80))
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and sum(p.frame.image.shape[1] == 96 for _, p, _, _ in seen.items) < 20:
            time.sleep(0.05)
    finally:
        pipe.stop()
        stats = pipe.join(timeout=20).as_dict()
        pub.stop()
    _check_order_and_counts(seen, stats)
    sizes = [p.frame.image.shape[:2] for _, p, _, _ in seen.items]
    assert sizes[0] == (48, 64) and sizes[-1] == (80, 96)
    assert sizes == sorted(sizes), "sizes switch once, never back"
    for _, pred, _, _ in seen.items:
        assert pred.mask.shape == pred.frame.image.shape[:2]  # each mask at its own frame's size
    with av.open(str(video)) as c:  # one playable file at the first size, every frame in it
        frames = list(c.decode(video=0))
    assert len(frames) == stats["frames_out"] and (frames[-1].width, frames[-1].height) == (64, 48)
