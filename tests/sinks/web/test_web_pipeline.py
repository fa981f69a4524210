"""The web sink inside a pipeline: viewers never slow it, a port in use fails before any frame is read,
and the run's live statistics reach the page, /stats.json and /metrics."""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time

import pytest

from streamseg.errors import StageError
from streamseg.pipeline import Pipeline, PipelineConfig, SinkConfig, SourceConfig
from streamseg.sinks.base import RunView

from helpers import make_video, tiny_segmenter
from webtools import get, open_stream, prediction

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FRAMES = 160


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Viewers:
    """Streaming viewers on raw sockets: ``reading`` of them read (and discard) everything, ``stalled`` never read."""

    def __init__(self, port: int, reading: int, stalled: int) -> None:
        self.port, self.sockets, self.stalled = port, [], []
        self.received = 0
        self._stop = threading.Event()
        self._want = (reading, stalled)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "_Viewers":
        deadline = time.monotonic() + 10
        while True:  # the server opens while the pipeline starts
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        self.sockets = [open_stream("127.0.0.1", self.port, "/stream/0") for _ in range(self._want[0])]
        self.stalled = [open_stream("127.0.0.1", self.port, "/stream/0", rcvbuf=4096) for _ in range(self._want[1])]
        self._thread.start()
        return self

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for s in self.sockets:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while not self._stop.is_set() and self.sockets:
            for key, _ in sel.select(0.1):
                try:
                    self.received += len(key.fileobj.recv(1 << 16))
                except OSError:
                    pass
        sel.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident:
            self._thread.join(5)
        for s in self.sockets + self.stalled:
            s.close()


def _run(video, segmenter, reading: int = 0, stalled: int = 0) -> tuple[dict, dict, int]:
    port = _free_port()
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(video))], batch_size=4, progress=False,
                         sinks=[SinkConfig(spec=f"web:127.0.0.1:{port}", options={"max_clients": 10, "fps": 15})])  # fmt: skip
    pipe = Pipeline(cfg, segmenter=segmenter)
    pipe.start()
    viewers = _Viewers(port, reading, stalled).start() if reading or stalled else None
    refused = 0
    try:
        if reading + stalled >= 10:
            refused = get(f"http://127.0.0.1:{port}/stream/0")[0]
        stats = pipe.join(timeout=120).as_dict()
        web = pipe.sinks[0].stats()
    finally:
        if viewers is not None:
            viewers.close()
    return stats, web, refused


def test_viewers_leave_frames_and_fps_as_without_them(tmp_path):
    video = make_video(tmp_path / "in.mp4", FRAMES, size=(128, 96))
    seg = tiny_segmenter()
    _run(video, seg)  # warm-up: first-call costs are nobody's
    runs = {"none": [], "stalled": [], "ten": []}
    for _ in range(2):  # interleaved, so drift on a shared machine hits every case alike
        runs["none"].append(_run(video, seg))
        runs["stalled"].append(_run(video, seg, stalled=1))
        runs["ten"].append(_run(video, seg, reading=10))
    for name, results in runs.items():
        for stats, web, _ in results:
            assert stats["frames_in"] == stats["frames_out"] == FRAMES, name
            assert web["frames"] + stats["sink_dropped"][web["name"]] == FRAMES, name  # counted, never silent
    best = {name: max(r[0]["fps"] for r in results) for name, results in runs.items()}
    assert best["stalled"] >= 0.8 * best["none"], best
    assert best["ten"] >= 0.8 * best["none"], best
    assert all(r[2] == 503 for r in runs["ten"])  # the eleventh viewer is refused
    assert all(r[1]["clients"] == 0 for results in runs.values() for r in results)  # all gone after the run


def test_port_in_use_fails_before_any_frame_is_read(tmp_path):
    video = make_video(tmp_path / "in.mp4", 10, size=(64, 48))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cfg = PipelineConfig(sources=[SourceConfig(uri=str(video))], sinks=[SinkConfig(spec=f"web:127.0.0.1:{port}")],
                             progress=False)  # fmt: skip
        pipe = Pipeline(cfg, segmenter=tiny_segmenter())
        with pytest.raises(StageError, match=f"port {port} on 127.0.0.1 is in use"):
            pipe.start()
    assert pipe.sources[0].stats.frames == 0
    assert not pipe.running()


def test_live_statistics_reach_every_route(tmp_path):
    video = make_video(tmp_path / "in.mp4", 40, size=(64, 48))
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=str(video), id="cam", options={"realtime": True})],
        sinks=[SinkConfig(spec="web:127.0.0.1:0")], progress=False,
    )  # fmt: skip
    pipe = Pipeline(cfg, segmenter=tiny_segmenter())
    pipe.start()
    base = pipe.sinks[0].url.rstrip("/")
    deadline = time.monotonic() + 30
    while json.loads(get(base + "/stats.json")[2])["frames_out"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = json.loads(get(base + "/stats.json")[2])
    live = json.loads(get(base + "/live.json")[2])
    metrics = get(base + "/metrics")[2].decode()
    final = pipe.join(timeout=60).as_dict()
    assert stats["source_state"] == {"cam": "running"} and stats["stages"]["engine"]["frames"] >= 5
    assert 5 <= stats["frames_out_per_source"]["cam"] < 40  # read while it ran
    cam = live["sources"]["cam"]
    assert cam["state"] == "running" and cam["frames_in"] >= cam["frames_out"] >= 5 and cam["fps"] > 0
    assert 'streamseg_frames_out_total{source="cam"}' in metrics and 'streamseg_stage_busy_seconds_total{stage="engine"}' in metrics
    assert 'streamseg_latency_seconds_bucket{le="+Inf",source="cam"}' in metrics and "streamseg_up 1.0" in metrics
    assert final["frames_out"] == 40 and final["source_state"] == {"cam": "ended"}


def test_healthz_is_503_once_the_run_has_failed(web_sink):
    failed = threading.Event()
    sink = web_sink(run=RunView(snapshot=lambda: {}, healthy=lambda: not failed.is_set()))
    sink.write(prediction(0))
    base = f"http://127.0.0.1:{sink.port}"
    assert get(base + "/healthz")[0] == 200
    failed.set()
    assert get(base + "/healthz")[0] == 503
    assert "streamseg_up 0.0" in get(base + "/metrics")[2].decode()
