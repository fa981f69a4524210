"""The web sink's server on a real socket: routes, tokens, viewers that misbehave, and shutdown."""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import threading
import time

import pytest

from streamseg.errors import SinkError
from streamseg.sinks.base import RunView
from streamseg.sinks.web.server import WebServer

from webtools import get, open_stream, prediction, read_mjpeg

pytestmark = pytest.mark.timeout(120)


def _base(sink) -> str:
    return f"http://127.0.0.1:{sink.port}"


def _feed(sink, stop: threading.Event, sources=("0",), fps: float = 30.0, **kw) -> threading.Thread:
    def run() -> None:
        i = 0
        while not stop.is_set():
            for sid in sources:
                sink.write(prediction(i, sid, **kw))
            i += 1
            time.sleep(1 / fps)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_routes_answer_and_everything_else_is_404_or_405(web_sink):
    sink = web_sink()
    sink.write(prediction(0, "cam a"))
    base = _base(sink)
    status, headers, body = get(base + "/")
    assert status == 200 and b"streamseg live" in body and headers["Content-Type"].startswith("text/html")
    assert headers["X-Content-Type-Options"] == "nosniff" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    live = __import__("json").loads(get(base + "/live.json")[2])
    assert live["classes"] == ["background", "road", "person", "car"] and live["palette"][1] == [255, 0, 0]
    assert live["sources"]["cam a"]["frames"] == 1 and live["sources"]["cam a"]["previews"] == 1
    assert get(base + "/healthz")[0] == 200
    assert get(base + "/stats.json")[0] == 200
    assert get(base + "/metrics")[0] == 200
    assert get(base + "/stream/cam%20a", method="HEAD")[0] == 200
    for path in ("/nope", "/stream", "/stream/unknown", "/../etc/passwd", "/static/page.html", "/live.json/x", "/%2e%2e/"):
        assert get(base + path)[0] == 404, path
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        assert get(base + "/", method=method)[0] == 405, method


def test_mjpeg_parts_are_jpegs_of_increasing_index(web_sink):
    import cv2
    import numpy as np

    sink = web_sink(fps=50, max_size=80)
    sink.write(prediction(0))
    stop = threading.Event()
    feeder = _feed(sink, stop, fps=60)
    try:
        parts = read_mjpeg(_base(sink) + "/stream/0", 12)
    finally:
        stop.set()
        feeder.join()
    indices = [int(h["x-frame-index"]) for h, _ in parts]
    assert indices == sorted(indices) and indices[-1] > indices[0], indices
    for headers, body in parts:
        assert headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (60, 80, 3)  # scaled to max_size, aspect kept (160x120 -> 80x60)


def test_a_viewer_sees_the_newest_picture_again_when_nothing_new_comes(web_sink):
    sink = web_sink()
    sink.write(prediction(7))
    t0 = time.monotonic()
    parts = read_mjpeg(_base(sink) + "/stream/0", 3)
    assert [int(h["x-frame-index"]) for h, _ in parts] == [7, 7, 7]  # re-sent on the timer
    assert time.monotonic() - t0 > 1.5


def test_previews_follow_the_preview_fps_not_the_frame_rate(web_sink):
    sink = web_sink(fps=5)
    sink.write(prediction(0))
    viewer = open_stream("127.0.0.1", sink.port, "/stream/0")  # someone watches: the full preview rate
    try:
        deadline = time.monotonic() + 5
        while sink._server.clients == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        i = 1
        while time.monotonic() - start < 2.0:
            sink.write(prediction(i))
            i += 1
            time.sleep(0.005)
    finally:
        viewer.close()
    tile = sink.board.tiles["0"]
    assert tile.frames == i  # every prediction counted
    assert 8 <= tile.encoded <= 13, tile.encoded  # ~5 previews a second, not ~200


def test_port_in_use_is_a_clear_error_naming_the_port(web_sink):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(SinkError, match=f"port {port} on 127.0.0.1 is in use"):
            web_sink(f"127.0.0.1:{port}")
    assert not [t for t in threading.enumerate() if t.name == f"streamseg-web-{port}"]


def test_non_loopback_bind_generates_a_token_printed_once(web_sink, caplog):
    with caplog.at_level(logging.WARNING, logger="streamseg.sinks.web"):
        sink = web_sink("0.0.0.0:0")
    token = sink.token
    assert token and len(token) >= 24
    shown = [r for r in caplog.records if token in r.getMessage()]
    assert len(shown) == 1 and "shown once" in shown[0].getMessage()
    sink.write(prediction(0))
    base = _base(sink)
    for path in ("/", "/live.json", "/stats.json", "/metrics", "/stream/0"):
        status, headers, _ = get(base + path, method="HEAD" if path == "/stream/0" else "GET")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
        assert get(base + path + "?token=" + "x" * len(token), method="HEAD")[0] == 401, path
    assert get(base + "/?token=" + token)[0] == 200
    assert get(base + "/live.json", headers={"Authorization": f"Bearer {token}"})[0] == 200
    assert get(base + "/stream/0?token=" + token, method="HEAD")[0] == 200
    assert get(base + "/healthz")[0] == 200  # for load balancers and orchestrators: no token
    assert get(base + "/nope")[0] == 404  # unknown paths are 404 with or without a token


def test_a_given_token_is_required_on_loopback_too_and_never_logged(web_sink, caplog):
    with caplog.at_level(logging.DEBUG, logger="streamseg"):
        sink = web_sink(token="correct horse battery")
    assert "correct horse" not in caplog.text and "?token=<your token>" in caplog.text
    assert get(_base(sink) + "/")[0] == 401
    assert get(_base(sink) + "/?token=correct%20horse%20battery")[0] == 200


def test_token_comparison_takes_the_same_time_whatever_the_length(monkeypatch):
    server = WebServer(None, host="127.0.0.1", port=0, token="s3cret-token-of-32-characters-xx", run=RunView(),  # type: ignore[arg-type]
                       classes=(), palette=[], max_clients=1, client_timeout=1.0)  # fmt: skip

    class Request:
        def __init__(self, token: str) -> None:
            self.query, self.headers = {"token": token}, {}

    # what is compared has the same length whatever was sent: digests
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((len(a), len(b))) or real(a, b))
    for given in ("", "x", "s3cret-token-of-32-characters-xy", "y" * 500):
        assert not server._authorized(Request(given))
    assert compared == [(32, 32)] * 4
    monkeypatch.setattr(hmac, "compare_digest", real)

    same_length, other_length = Request("s3cret-token-of-32-characters-xy"), Request("s3")
    timings: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(40):
        for k, request in enumerate((same_length, other_length)):
            t0 = time.perf_counter()
            for _ in range(500):
                server._authorized(request)
            timings[k].append(time.perf_counter() - t0)
    ratio = min(timings[0]) / min(timings[1])  # the least disturbed batch of each: robust on a busy machine
    assert 0.8 < ratio < 1.25, ratio
    assert hashlib.sha256(b"s3").digest() != server._token_digest


def test_a_viewer_that_never_reads_is_cut_off_and_costs_the_writer_nothing(web_sink):
    sink = web_sink(fps=60, quality=100, max_size=640, client_timeout=1.0)
    sink.write(prediction(0))
    stalled = open_stream("127.0.0.1", sink.port, "/stream/0", rcvbuf=4096)
    try:
        slowest = 0.0
        start = time.monotonic()
        i = 1
        while sink._server.disconnected == 0 and time.monotonic() - start < 60:
            t0 = time.perf_counter()
            sink.write(prediction(i, size=(640, 480), noise=True))  # ~500 kB previews fill the socket fast
            slowest = max(slowest, time.perf_counter() - t0)
            i += 1
            time.sleep(1 / 60)
        assert sink._server.disconnected == 1
        assert sink._server.clients == 0
        assert slowest < 0.5, slowest  # encoding only; the writer never waited for the viewer
    finally:
        stalled.close()


def test_the_eleventh_viewer_is_refused_cleanly(web_sink):
    sink = web_sink(max_clients=10)
    sink.write(prediction(0))
    viewers = [open_stream("127.0.0.1", sink.port, "/stream/0") for _ in range(10)]
    try:
        deadline = time.monotonic() + 10
        while sink._server.clients < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink._server.clients == 10
        status, headers, body = get(_base(sink) + "/stream/0")
        assert status == 503 and headers["Retry-After"] == "5" and b"max_clients=10" in body
        assert sink._server.refused == 1
        assert get(_base(sink) + "/live.json")[0] == 200  # the page itself still answers
    finally:
        for v in viewers:
            v.close()


def test_close_ends_streams_and_the_thread_quickly(web_sink):
    sink = web_sink()
    sink.write(prediction(0))
    viewers = [open_stream("127.0.0.1", sink.port, "/stream/0") for _ in range(3)]
    deadline = time.monotonic() + 10
    while sink._server.clients < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    sink.close()
    assert time.monotonic() - t0 < 2.0
    assert not [t for t in threading.enumerate() if t.name.startswith("streamseg-web")]
    for v in viewers:
        v.settimeout(5)
        data = b""
        while chunk := v.recv(65536):  # the server closed the connection: recv returns b"" at the end
            data += chunk
        v.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", sink.port), timeout=1).close()
