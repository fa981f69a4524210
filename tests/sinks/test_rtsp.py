"""RtspSink against the real relay (../shared/tools/rtsp_relay.py) read back by a PyAV reader thread.

Frames carry their index as two grey levels (``helpers.index_frame``): the
sink draws them in ``mask`` mode from a grey palette, so the reader decodes
the index of every frame it gets and can check order and gaps.
"""

from __future__ import annotations

import socket
import threading
import time

import av
import numpy as np
import pytest
from helpers import decode_index

from streamseg.errors import ConfigError, SinkError
from streamseg.sinks import open_sink
from streamseg.sinks.base import SinkContext
from streamseg.sinks.rtsp import RtspSink
from streamseg.types import Frame, Prediction

W, H, FPS = 96, 64, 15
GREY = SinkContext(
    classes=tuple(f"level{k}" for k in range(64)),
    palette=np.array([[16 + 3 * k] * 3 for k in range(64)], np.uint8),
)


def index_prediction(i: int, source_id: str = "0") -> Prediction:
    """Colourised by GREY, this mask is exactly ``helpers.index_frame(i, W, H)``."""
    mask = np.empty((H, W), np.uint8)
    mask[: H // 2] = i % 64
    mask[H // 2 :] = (i // 64) % 64
    frame = Frame(image=np.zeros((H, W, 3), np.uint8), source_id=source_id, index=i, pts=i, time_base=None)
    return Prediction(frame=frame, mask=mask)


class Reader(threading.Thread):
    """Plays ``url`` over TCP, reopening after EOF/404/refused, and records the decoded indices per session."""

    def __init__(self, url: str, deadline_s: float = 18.0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.deadline = time.monotonic() + deadline_s
        self.sessions: list[list[int]] = []
        self.stop = threading.Event()

    def frames(self) -> list[int]:
        return [i for s in self.sessions for i in s]

    def run(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                with av.open(
                    self.url, options={"rtsp_transport": "tcp", "timeout": "3000000"}, timeout=(5, 5)
                ) as container:
                    got: list[int] = []
                    self.sessions.append(got)
                    for vf in container.decode(video=0):
                        got.append(decode_index(vf.to_ndarray(format="rgb24")))
                        if self.stop.is_set():
                            return
            except (OSError, EOFError, av.FFmpegError):
                pass  # 404 before the publisher, refused while the server restarts, EOF when it leaves
            time.sleep(0.1)


def publish(sink: RtspSink, start: int, until, max_frames: int) -> tuple[int, float]:
    """Write frames start, start+1, ... in real time until ``until()`` or ``max_frames``; (next index, max write s)."""
    i, slowest = start, 0.0
    t0 = time.monotonic()
    while i < start + max_frames and not until():
        t = time.monotonic()
        sink.write(index_prediction(i))
        slowest = max(slowest, time.monotonic() - t)
        i += 1
        time.sleep(max(0.0, t0 + (i - start) / FPS - time.monotonic()))
    return i, slowest


def consecutive(indices: list[int]) -> bool:
    return all(b == a + 1 for a, b in zip(indices, indices[1:]))


@pytest.mark.rtsp
@pytest.mark.timeout(40)
def test_publishes_frames_in_order(rtsp_relay) -> None:
    url = rtsp_relay.url("seg")
    reader = Reader(url)
    reader.start()
    sink = open_sink(url, mode="mask", fps=FPS)
    assert isinstance(sink, RtspSink) and sink.name == f"rtsp:{url}"
    sink.open(GREY)
    try:
        # Publish until the reader has seen 15 frames (it joins at a keyframe, after up to ~1.5 s of probing).
        last, _ = publish(sink, 0, lambda: len(reader.frames()) >= 15, max_frames=FPS * 8)
        publish(sink, last, lambda: False, max_frames=5)
    finally:
        sink.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (reader.frames() and reader.frames()[-1] >= last + 4):
        time.sleep(0.05)
    reader.stop.set()
    reader.join(6)
    got = reader.frames()
    assert len(got) >= 15, f"reader got {got}"
    assert consecutive(got), f"frames out of order or missing: {got}"
    assert got[-1] == last + 4  # the relay drains the last frames to its readers
    assert sink.frames == last + 5 and sink.dropped == 0 and sink.reconnects == 0


@pytest.mark.rtsp
@pytest.mark.timeout(60)
def test_reconnects_after_server_restart(rtsp_relay) -> None:
    url = rtsp_relay.url("seg")
    reader = Reader(url, deadline_s=25)
    reader.start()
    sink = RtspSink(url, mode="mask", fps=FPS, backoff=(0.2, 1.0), timeout=2.0)
    sink.open(GREY)
    try:
        i, slow1 = publish(sink, 0, lambda: len(reader.frames()) >= 5, max_frames=FPS * 8)
        assert len(reader.frames()) >= 5, "the reader never got the first session"
        rtsp_relay.stop()
        i, slow2 = publish(sink, i, lambda: False, max_frames=FPS)  # 1 s with the server gone
        assert sink.dropped > 0
        rtsp_relay.start()  # same port
        restart = i
        i, slow3 = publish(
            sink, i, lambda: len([f for f in reader.frames() if f >= restart]) >= 5, max_frames=FPS * 10
        )
    finally:
        sink.close()
        reader.stop.set()
    reader.join(6)
    after = [f for f in reader.frames() if f >= restart]
    assert len(after) >= 5, f"no frames after the restart; sessions {reader.sessions}"
    assert sink.reconnects >= 1
    assert sink.frames + sink.dropped == i
    assert max(slow1, slow2, slow3) < 2.5, "a write blocked longer than the socket timeout"
    for session in reader.sessions:
        assert consecutive(session), f"a session has gaps: {session}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(30)
def test_no_server_drops_frames_without_blocking() -> None:
    sink = RtspSink(f"rtsp://127.0.0.1:{_closed_port()}/x", mode="mask", backoff=(5.0, 5.0))
    sink.open(GREY)
    start = time.monotonic()
    for i in range(20):
        sink.write(index_prediction(i))
    elapsed = time.monotonic() - start
    sink.close()
    sink.close()
    assert sink.dropped == 20 and sink.frames == 0 and sink.reconnects == 0
    assert elapsed < 3.0  # one refused attempt, then the backoff drops frames at once
    assert sink.stats() == {"name": sink.name, "frames": 0, "busy_s": pytest.approx(sink.busy_s, abs=1e-5),
                            "dropped": 20, "reconnects": 0}


@pytest.mark.timeout(30)
def test_no_reconnect_raises_sink_error() -> None:
    url = f"rtsp://127.0.0.1:{_closed_port()}/x"
    sink = RtspSink(url, reconnect=False)
    sink.open(GREY)
    with pytest.raises(SinkError, match="RTSP server"):
        sink.write(index_prediction(0))
    sink.close()


@pytest.mark.timeout(30)
def test_silent_server_blocks_at_most_the_timeout() -> None:
    """A server that accepts TCP and never answers must not hang the pipeline."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        sink = RtspSink(f"rtsp://127.0.0.1:{server.getsockname()[1]}/x", timeout=1.0, backoff=(5.0, 5.0))
        sink.open(GREY)
        start = time.monotonic()
        sink.write(index_prediction(0))
        sink.write(index_prediction(1))
        elapsed = time.monotonic() - start
        sink.close()
    finally:
        server.close()
    assert sink.dropped == 2
    assert elapsed < 3.0


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="rtsp://"):
        RtspSink("http://example.com/x")
    with pytest.raises(ConfigError, match="transport"):
        RtspSink("rtsp://127.0.0.1/x", transport="quic")
    with pytest.raises(ConfigError, match="backoff"):
        RtspSink("rtsp://127.0.0.1/x", backoff=(2.0, 1.0))
