"""NetworkSource against a real RTSP relay, a real HTTP server and real dead/silent ports on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest

from helpers import decode_index, make_video
from streamseg.errors import ConfigError, SourceError
from streamseg.sources import NetworkSource, Source
from streamseg.sources.network import redact
from streamseg.types import Frame


def read_until(
    source: NetworkSource, done, *, deadline_s: float, timeout: float = 0.5
) -> tuple[list[Frame], list[float]]:
    """Read until ``done(frames)``; also returns how long each read() call took."""
    frames: list[Frame] = []
    durations: list[float] = []
    end = time.monotonic() + deadline_s
    while not done(frames):
        assert time.monotonic() < end, f"gave up waiting; got {[decode_index(f.image) for f in frames]}"
        t0 = time.monotonic()
        try:
            frame = source.read(timeout)
        except TimeoutError:
            frame = None
        durations.append(time.monotonic() - t0)
        if frame is not None:
            frames.append(frame)
    return frames, durations


def assert_monotonic(frames: list[Frame]) -> None:
    assert [f.index for f in frames] == list(range(len(frames)))
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False)), pts
    assert len({f.time_base for f in frames}) == 1


def runs(values: list[int]) -> list[list[int]]:
    """Split into runs of consecutive integers."""
    out: list[list[int]] = []
    for v in values:
        if out and v == out[-1][-1] + 1:
            out[-1].append(v)
        else:
            out.append([v])
    return out


# -- RTSP through the relay -----------------------------------------------------------------------


@pytest.mark.rtsp
@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_frames_arrive_in_order(rtsp_relay, publisher, transport: str) -> None:
    url = rtsp_relay.url("cam")
    pub = publisher(url)
    assert pub.connected.wait(10)
    source = NetworkSource(url, source_id="cam", transport=transport, open_timeout=5, read_timeout=3)
    assert isinstance(source, Source) and source.live
    source.open()
    try:
        frames, _ = read_until(source, lambda f: len(f) >= 40, deadline_s=15)
    finally:
        source.close()
    indices = [decode_index(f.image) for f in frames]
    assert indices == list(range(indices[0], indices[0] + 40)), indices  # every frame, no gap, in order
    assert_monotonic(frames)
    assert frames[0].time_base == Fraction(1, 90000)
    assert not any(f.discontinuity for f in frames)
    assert frames[0].image.shape == (48, 64, 3) and frames[0].source_id == "cam"
    assert source.stats.frames == 40 and source.stats.reconnects == 0


@pytest.mark.rtsp
@pytest.mark.timeout(40)
def test_rtsp_publisher_restart(rtsp_relay, publisher) -> None:
    url = rtsp_relay.url("cam")
    first = publisher(url, first=0)
    assert first.connected.wait(10)
    source = NetworkSource(url, open_timeout=5, read_timeout=3, backoff=(0.2, 1.0))
    source.open()
    try:
        before, _ = read_until(source, lambda f: len(f) >= 15, deadline_s=15)
        first.stop()  # clean TEARDOWN; the relay drops its readers (EOF), then answers 404
        threading.Timer(1.0, lambda: publisher(url, first=1000)).start()
        after, durations = read_until(
            source, lambda f: sum(decode_index(x.image) >= 1000 for x in f) >= 15, deadline_s=20, timeout=0.3
        )
    finally:
        source.close()
    frames = before + after
    assert_monotonic(frames)
    indices = [decode_index(f.image) for f in frames]
    old, new = runs(indices)  # two gap-free runs: the end of publisher A, then B from its first keyframe
    assert old[-1] < 1000 <= new[0]
    switch = indices.index(new[0])
    assert frames[switch].discontinuity
    assert sum(f.discontinuity for f in frames) == source.stats.reconnects == 1
    assert max(durations) < 0.3 + 5 + 1  # read(0.3) never blocked past one FFmpeg open wait


@pytest.mark.rtsp
@pytest.mark.timeout(40)
def test_rtsp_server_restart(rtsp_relay, publisher) -> None:
    url = rtsp_relay.url("cam")
    pub = publisher(url, persist=True)  # keeps publishing, re-connecting after the restart
    assert pub.connected.wait(10)
    source = NetworkSource(url, open_timeout=5, read_timeout=2, backoff=(0.2, 1.0))
    source.open()
    try:
        before, _ = read_until(source, lambda f: len(f) >= 15, deadline_s=15)
        rtsp_relay.stop()
        time.sleep(1.0)
        rtsp_relay.start()  # same port
        after, durations = read_until(
            source, lambda f: sum(x.discontinuity for x in f) == 1 and len(f) - _first_disc(f) >= 15, deadline_s=25
        )
    finally:
        source.close()
    frames = before + after
    assert_monotonic(frames)
    assert source.stats.reconnects == 1 == sum(f.discontinuity for f in frames)
    d = _first_disc(frames)
    indices = [decode_index(f.image) for f in frames]
    assert indices[d] > indices[d - 1]  # the publisher continued counting
    assert indices[d:] == list(range(indices[d], indices[d] + len(frames) - d))  # gap-free after reconnect
    gap_s = float((frames[d].pts - frames[d - 1].pts) * frames[d].time_base)
    assert gap_s >= 1.0  # the jump in pts covers the outage (wall clock), it never goes back
    assert max(durations) < 0.5 + 5 + 1


def _first_disc(frames: list[Frame]) -> int:
    return next((i for i, f in enumerate(frames) if f.discontinuity), len(frames))


@pytest.mark.rtsp
@pytest.mark.timeout(30)
def test_rtsp_reader_before_publisher_honours_timeout(rtsp_relay, publisher) -> None:
    url = rtsp_relay.url("later")
    source = NetworkSource(url, open_timeout=5, read_timeout=2, backoff=(0.2, 0.4))
    source.open()  # 404: logged, retried by read()
    try:
        for _ in range(3):
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                source.read(0.2)
            assert time.monotonic() - t0 < 0.2 + 1.0  # a 404 answers at once: no long FFmpeg wait either
        publisher(url, first=7)
        frames, _ = read_until(source, lambda f: len(f) >= 10, deadline_s=15)
    finally:
        source.close()
    indices = [decode_index(f.image) for f in frames]
    assert indices == list(range(indices[0], indices[0] + 10)) and indices[0] >= 7
    assert source.stats.reconnects == 0 and not any(f.discontinuity for f in frames)


# -- HTTP ---------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_http_file_is_read_once_completely(http_server, tmp_path: Path) -> None:
    base, root = http_server
    make_video(root / "clip.mkv", 30)
    source = NetworkSource(f"{base}/clip.mkv", source_id="web")
    source.open()
    try:
        assert source.live is False  # a known duration: a file, not a live stream
        frames, _ = read_until(source, lambda f: len(f) >= 30, deadline_s=10)
        assert source.read(1.0) is None
        assert source.read(1.0) is None
    finally:
        source.close()
    assert [decode_index(f.image) for f in frames] == list(range(30))
    assert [f.pts * f.time_base for f in frames] == [Fraction(i, 25) for i in range(30)]
    assert_monotonic(frames)
    assert source.stats.reconnects == 0


def write_hls(folder: Path, count: int, *, vod: bool) -> Path:
    """An HLS playlist of 0.4 s segments; without ``vod`` it looks live (no ENDLIST: more may come)."""
    import av

    from helpers import index_frame

    playlist = folder / "stream.m3u8"
    with av.open(str(playlist), "w", format="hls", options={"hls_time": "0.4", "hls_playlist_type": "vod"}) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        stream.codec_context.gop_size = 10
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(index_frame(i, 64, 48), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    if not vod:
        lines = playlist.read_text().splitlines()
        kept = [line for line in lines if "ENDLIST" not in line and "PLAYLIST-TYPE" not in line]
        playlist.write_text("\n".join(kept) + "\n")
    return playlist


@pytest.mark.timeout(30)
def test_hls_vod_playlist_is_finite(http_server) -> None:
    base, root = http_server
    write_hls(root, 30, vod=True)
    source = NetworkSource(f"{base}/stream.m3u8")
    assert source.live is True  # a guess until the playlist is read
    source.open()
    try:
        assert source.live is False  # VOD: it has a duration
        frames, _ = read_until(source, lambda f: len(f) >= 30, deadline_s=10)
        assert source.read(1.0) is None
    finally:
        source.close()
    assert [decode_index(f.image) for f in frames] == list(range(30))


@pytest.mark.timeout(30)
def test_hls_live_playlist_is_live(http_server) -> None:
    base, root = http_server
    write_hls(root, 20, vod=False)
    source = NetworkSource(f"{base}/stream.m3u8", read_timeout=2)
    source.open()
    try:
        assert source.live is True
        frames, _ = read_until(source, lambda f: len(f) >= 20, deadline_s=10)
    finally:
        source.close()
    assert [decode_index(f.image) for f in frames] == list(range(20))


@pytest.mark.timeout(30)
def test_http_404_is_clear(http_server) -> None:
    base, _ = http_server
    with pytest.raises(SourceError, match=r"not found \(404\); check the path"):
        NetworkSource(f"{base}/missing.mp4", reconnect=False).open()


# -- failure modes without any server -------------------------------------------------------------


@pytest.mark.timeout(30)
def test_unreachable_server_with_reconnect_off(free_port: int) -> None:
    source = NetworkSource(f"rtsp://user:secret@127.0.0.1:{free_port}/x", reconnect=False)
    with pytest.raises(SourceError, match=r"connection refused; is the server running") as info:
        source.open()
    assert "secret" not in str(info.value) and "user:***@" in str(info.value)


@pytest.mark.timeout(30)
def test_gives_up_after_max_reconnects(free_port: int) -> None:
    source = NetworkSource(f"rtsp://127.0.0.1:{free_port}/x", max_reconnects=3, backoff=(0.01, 0.02))
    source.open()  # first attempt fails: retried by read()
    with pytest.raises(
        SourceError, match=r"gave up after 3 failed connection attempt\(s\).*raise max_reconnects"
    ) as info:
        for _ in range(100):
            try:
                source.read(0.5)
            except TimeoutError:
                pass
    with pytest.raises(SourceError) as again:
        source.read(0.5)
    assert again.value is info.value  # the failure sticks
    source.close()


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never says a word (a hung camera)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in conns:
        conn.close()
    server.close()


@pytest.mark.timeout(30)
def test_silent_server_open_timeout(silent_server: int) -> None:
    source = NetworkSource(f"rtsp://127.0.0.1:{silent_server}/x", open_timeout=1, read_timeout=1, reconnect=False)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"no answer from .* within 1 s.*open_timeout"):
        source.open()
    assert time.monotonic() - t0 < 4


@pytest.mark.timeout(30)
def test_read_timeout_bounded_while_connects_hang(silent_server: int) -> None:
    source = NetworkSource(f"rtsp://127.0.0.1:{silent_server}/x", open_timeout=1, read_timeout=1, backoff=(0.3, 0.3))
    source.open()
    worst = 0.0
    for _ in range(6):
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            source.read(0.1)
        worst = max(worst, time.monotonic() - t0)
    assert worst < 0.1 + 1 + 1.0  # timeout + one open_timeout (+ slack for a loaded machine)
    assert source.stats.frames == 0
    source.close()


def test_unknown_protocol_is_permanent() -> None:
    source = NetworkSource("nosuchproto://host/x")  # reconnect on, but retrying cannot help
    with pytest.raises(SourceError, match="cannot open this kind of URL"):
        source.open()


def test_ffmpeg_options() -> None:
    rtsp = NetworkSource("rtsp://h/x", transport="udp", read_timeout=2.5, options={"probesize": "32"})
    assert rtsp.ffmpeg_options() == {
        "rtsp_transport": "udp",
        "timeout": "2500000",
        "fflags": "nobuffer",
        "probesize": "32",  # the user's options win
        "analyzeduration": "1000000",
    }
    hls = NetworkSource("https://h/live.m3u8", read_timeout=1)
    assert hls.live is True and "fflags" not in hls.ffmpeg_options()  # nobuffer loses HLS's probed packets
    http = NetworkSource("http://h/v.mp4", low_latency=True)
    assert http.live is False and http.ffmpeg_options() == {"rw_timeout": "5000000"}
    assert NetworkSource("https://h/live.m3u8").live is True
    assert NetworkSource("srt://h:9000", live=False).live is False


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="transport"):
        NetworkSource("rtsp://h/x", transport="quic")
    with pytest.raises(ConfigError, match="backoff"):
        NetworkSource("rtsp://h/x", backoff=(5, 1))
    with pytest.raises(ConfigError, match="not a URL"):
        NetworkSource("just/a/path")


def test_redact() -> None:
    assert redact("rtsp://admin:hunter2@10.0.0.1:554/s") == "rtsp://admin:***@10.0.0.1:554/s"
    assert redact("rtsp://10.0.0.1/s") == "rtsp://10.0.0.1/s"
