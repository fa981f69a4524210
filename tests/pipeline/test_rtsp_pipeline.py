"""RTSP in -> pipeline -> RTSP out against a real RTSP server on 127.0.0.1, with a server restart mid-stream."""

from __future__ import annotations

import threading
import time

import av
import pytest

from streamseg.pipeline import Pipeline, PipelineConfig, SinkConfig, SourceConfig
from streamseg.sinks.callback import CallbackSink

from helpers import RtspPublisher

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(120)]


class Reader(threading.Thread):
    """Plays an RTSP URL, reopening on errors, counting frames per session."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.frames, self.sessions = url, 0, 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                with av.open(self.url, options={"rtsp_transport": "tcp", "timeout": "3000000"}, timeout=(5, 5)) as c:
                    self.sessions += 1
                    for _ in c.decode(video=0):
                        self.frames += 1
                        if self.halt.is_set():
                            return
            except Exception:  # 404 before the sink publishes, EOF/refused around the restart
                self.halt.wait(0.3)


def test_rtsp_in_to_rtsp_out_survives_a_server_restart(rtsp_relay, tiny_segmenter):
    pub = RtspPublisher(rtsp_relay.url("cam"), persist=True, size=(64, 48))
    pub.start()
    assert pub.connected.wait(15), pub.errors
    seen = []
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=rtsp_relay.url("cam"), id="cam",
                              options={"open_timeout": 5, "read_timeout": 2, "backoff": [0.2, 1.0]})],
        sinks=[SinkConfig(spec=f"rtsp:{rtsp_relay.url('seg')}", options={"backoff": [0.2, 1.0]})],
        batch_size=1,
        max_wait_ms=0,
        progress=False,
    )
    pipe = Pipeline(cfg, sinks=[CallbackSink(seen.append)], segmenter=tiny_segmenter)
    reader = Reader(rtsp_relay.url("seg"))
    try:
        pipe.start()
        reader.start()
        deadline = time.monotonic() + 30
        while (len(seen) < 30 or reader.frames < 10) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(seen) >= 30 and reader.frames >= 10, (len(seen), reader.frames)
        before, frames_before = len(seen), reader.frames
        rtsp_relay.stop()  # the server goes away mid-stream ...
        time.sleep(1.0)
        rtsp_relay.start()  # ... and comes back on the same port
        deadline = time.monotonic() + 40
        while (len(seen) < before + 30 or reader.frames < frames_before + 10) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(seen) >= before + 30, "the source did not reconnect"
        assert reader.frames >= frames_before + 10, "the sink did not republish"
    finally:
        pipe.stop()
        stats = pipe.join(timeout=30).as_dict()
        reader.halt.set()
        pub.stop()
    indices = [p.frame.index for p in seen]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    stamps = [p.frame.timestamp for p in seen]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "timestamps must stay monotonic across the reconnect"
    assert any(p.frame.discontinuity for p in seen[before:])
    assert stats["reconnects"]["cam"] >= 1
    assert stats["reconnects"].get(f"sink rtsp:{rtsp_relay.url('seg')}", 0) >= 1 or reader.sessions >= 2
    assert stats["frames_in"] == stats["frames_out"] + sum(stats["dropped"].values())
