"""download(): a real HTTP server on 127.0.0.1 that can honour or ignore Range, cut connections and fail."""

from __future__ import annotations

import hashlib
import logging
import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from streamseg.errors import ConfigError, DownloadError
from streamseg.weights.download import download, verify_file

from helpers import HttpServer

pytestmark = pytest.mark.timeout(60)

PAYLOAD = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FileServer:
    """Serves ``payload`` at every path; the attributes change how it (mis)behaves."""

    def __init__(self, payload: bytes = PAYLOAD) -> None:
        self.payload = payload
        self.honour_range = True
        self.statuses: list[int] = []  # consumed one per request before serving; empty = 200
        self.cut_after: list[int | None] = []  # per request: close after this many body bytes
        self.chunk_delay = 0.0  # seconds between 16 KiB chunks, to keep a transfer in flight
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.server = HttpServer(self._handler())

    def url(self, name: str = "weights.pth") -> str:
        return self.server.url(name)

    def stop(self) -> None:
        self.server.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(dict(self.headers))
                    status = server.statuses.pop(0) if server.statuses else 200
                    cut = server.cut_after.pop(0) if server.cut_after else None
                if status != 200:
                    self.send_error(status)
                    return
                data, total = server.payload, len(server.payload)
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if match and server.honour_range:
                    start = int(match.group(1))
                    if start >= total:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{total}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
                    data = data[start:]
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if cut is not None:
                    data = data[:cut]
                    self.close_connection = True
                for i in range(0, len(data), 16384):
                    self.wfile.write(data[i : i + 16384])
                    if server.chunk_delay:
                        time.sleep(server.chunk_delay)

        return Handler


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_downloads_and_verifies_full_hash(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "w.pth"
    assert download(server.url(), dest, sha256=SHA, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("w.pth.part").exists()
    assert "Range" not in server.requests[0]


def test_hash_prefix_is_case_insensitive(server: FileServer, tmp_path: Path) -> None:
    dest = download(server.url(), tmp_path / "w.pth", sha256=SHA[:8].upper(), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert verify_file(dest, SHA[:12].upper())
    assert not verify_file(dest, "0" * 8 if not SHA.startswith("0" * 8) else "f" * 8)


def test_hash_mismatch_raises_and_leaves_nothing(server: FileServer, tmp_path: Path) -> None:
    wrong = "deadbeef" if not SHA.startswith("deadbeef") else "cafebabe"
    dest = tmp_path / "w.pth"
    with pytest.raises(DownloadError) as info:
        download(server.url(), dest, sha256=wrong, progress=False)
    message = str(info.value)
    assert wrong in message and SHA in message and str(dest) in message
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == []


def test_resumes_a_partial_download(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "w.pth"
    dest.with_name("w.pth.part").write_bytes(PAYLOAD[:100_000])
    download(server.url(), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in server.requests] == ["bytes=100000-"]


def test_restarts_when_the_server_ignores_range(server: FileServer, tmp_path: Path) -> None:
    server.honour_range = False
    dest = tmp_path / "w.pth"
    dest.with_name("w.pth.part").write_bytes(b"garbage that must not end up in the file")
    download(server.url(), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 1 and server.requests[0]["Range"].startswith("bytes=")


def test_restarts_when_the_part_is_too_long(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "w.pth"
    dest.with_name("w.pth.part").write_bytes(PAYLOAD + b"extra")
    download(server.url(), dest, sha256=SHA, progress=False)  # 416, then a clean restart
    assert dest.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in server.requests] == [f"bytes={len(PAYLOAD) + 5}-", None]


def test_interrupted_transfer_is_retried_from_where_it_stopped(server: FileServer, tmp_path: Path) -> None:
    server.cut_after = [50_000]
    dest = download(server.url(), tmp_path / "w.pth", sha256=SHA, progress=False, retries=1)
    assert dest.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in server.requests] == [None, "bytes=50000-"]


def test_gives_up_after_the_retries_and_keeps_the_part(server: FileServer, tmp_path: Path) -> None:
    server.cut_after = [10_000, 10_000]
    dest = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match="gave up after 2 attempts") as info:
        download(server.url(), dest, sha256=SHA, progress=False, retries=1)
    assert str(dest) in str(info.value)
    assert not dest.exists()
    assert dest.with_name("w.pth.part").stat().st_size == 20_000  # ready to resume next time


def test_server_errors_are_retried(server: FileServer, tmp_path: Path) -> None:
    server.statuses = [503]
    dest = download(server.url(), tmp_path / "w.pth", sha256=SHA, progress=False, retries=1)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 2


def test_offline_names_the_url_and_the_cache_path(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/weights.pth"
    dest = tmp_path / "cache" / "weights" / "weights.pth"
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(url, dest, sha256=SHA, progress=False)
    message = str(info.value)
    assert url in message and f"place it at {dest}" in message and "offline" in message
    assert time.monotonic() - started < 5  # connection refused is not retried
    assert isinstance(info.value, ConnectionError)
    assert not dest.exists()


def test_http_404_is_a_download_error_without_retries(server: FileServer, tmp_path: Path) -> None:
    server.statuses = [404]
    dest = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match="404") as info:
        download(server.url(), dest, sha256=SHA, progress=False)
    assert server.url() in str(info.value)
    assert len(server.requests) == 1
    assert not dest.exists() and not dest.with_name("w.pth.part").exists()


def test_cached_file_is_reused_without_network(server: FileServer, tmp_path: Path) -> None:
    dest = download(server.url(), tmp_path / "w.pth", sha256=SHA[:8], progress=False)
    assert dest.with_name("w.pth.sha256").read_text().split()[0] == SHA  # the verification is remembered
    server.stop()
    assert download(server.url(), dest, sha256=SHA[:8], progress=False) == dest
    assert download(server.url(), dest, progress=False) == dest
    assert len(server.requests) == 1


def test_corrupted_cached_file_is_fetched_again(server: FileServer, tmp_path: Path) -> None:
    dest = download(server.url(), tmp_path / "w.pth", sha256=SHA, progress=False)
    dest.write_bytes(PAYLOAD[:-1] + b"\0")  # same length, different content and mtime
    assert download(server.url(), dest, sha256=SHA, progress=False).read_bytes() == PAYLOAD
    assert len(server.requests) == 2


def test_unverifiable_download_logs_a_warning(server: FileServer, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="streamseg.weights.download"):
        dest = download(server.url(), tmp_path / "w.pth", sha256=None, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert any("cannot be verified" in r.getMessage() for r in caplog.records)


def test_bad_sha256_argument_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hex"):
        download("http://127.0.0.1:9/x.pth", tmp_path / "x.pth", sha256="not-a-hash")


@pytest.mark.timeout(30)
def test_concurrent_downloads_do_not_collide(server: FileServer, tmp_path: Path) -> None:
    server.chunk_delay = 0.02  # ~0.4 s per transfer: the second caller arrives mid-download
    dest = tmp_path / "w.pth"
    results: list[object] = []

    def fetch() -> None:
        try:
            results.append(download(server.url(), dest, sha256=SHA, progress=False).read_bytes())
        except Exception as exc:  # collected and asserted on below
            results.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(20)
    assert results == [PAYLOAD, PAYLOAD]
    assert len(server.requests) == 1  # the second waited for the lock, then re-used the file
