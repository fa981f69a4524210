"""Clients for the web sink tests: plain HTTP, an MJPEG reader, and a real headless Chromium (DevTools protocol)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamseg.types import Prediction

__all__ = ["Chromium", "chromium_path", "get", "open_stream", "prediction", "read_mjpeg"]


def get(url: str, *, method: str = "GET", headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    """``(status, headers, body)`` of one request; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def open_stream(host: str, port: int, path: str, *, rcvbuf: int | None = None, timeout: float = 10) -> socket.socket:
    """A raw GET on a socket (left to the caller to read, or not to read at all)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((host, port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    return sock


def read_mjpeg(url: str, parts: int, *, timeout: float = 30) -> list[tuple[dict[str, str], bytes]]:
    """The first ``parts`` parts of a multipart/x-mixed-replace stream: ``(headers, body)`` each."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        content_type = response.headers["Content-Type"]
        assert content_type.startswith("multipart/x-mixed-replace"), content_type
        boundary = b"--" + content_type.split("boundary=")[1].strip().encode()
        line = response.readline().strip()
        assert line == boundary, line
        out = []
        while len(out) < parts:
            headers: dict[str, str] = {}
            while (line := response.readline().strip()) != b"":
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            body = response.read(int(headers["content-length"]))
            assert response.readline() == b"\r\n"
            assert response.readline().strip() == boundary
            out.append((headers, body))
        return out


def prediction(index: int, source_id: str = "0", size: tuple[int, int] = (160, 120), noise: bool = False) -> Prediction:
    """A prediction of a grey (or noisy) frame with four vertical class bands."""
    import numpy as np

    from streamseg.types import Frame, Prediction

    w, h = size
    rng = np.random.default_rng(index)
    image = rng.integers(0, 256, (h, w, 3), np.uint8) if noise else np.full((h, w, 3), 128, np.uint8)
    mask = (np.arange(w)[None, :] * 4 // w).repeat(h, 0).astype(np.uint8)
    frame = Frame(image=image, source_id=source_id, index=index, capture_time=time.monotonic())
    return Prediction(frame=frame, mask=mask)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Chromium:
    """A headless Chromium in its own profile, driven over the DevTools protocol; ``close()`` ends it."""

    def __init__(self, profile: Path, *, size: tuple[int, int] = (1280, 860)) -> None:
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("chromium is not installed (.ci/run installs Debian's chromium)")
        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--remote-debugging-port=0", f"--user-data-dir={profile}",
             f"--window-size={size[0]},{size[1]}", "--hide-scrollbars", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.exists() and active.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port within 30 s")
            time.sleep(0.1)
        self.port = int(active.read_text().split()[0])

    def page(self, url: str, ready_js: str, result_js: str, *, timeout: float = 60) -> tuple[bytes, Any]:
        """Load ``url``, wait until ``ready_js`` is true, then return a PNG screenshot and ``result_js``'s value."""
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10).read())
        target = next(p for p in pages if p["type"] == "page")
        return asyncio.run(_drive(target["webSocketDebuggerUrl"], url, ready_js, result_js, timeout))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


async def _drive(ws_url: str, url: str, ready_js: str, result_js: str, timeout: float) -> tuple[bytes, Any]:
    import aiohttp

    ids = itertools.count(1)
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:

        async def call(method: str, **params: Any) -> dict:
            call_id = next(ids)
            await ws.send_json({"id": call_id, "method": method, "params": params})
            while True:  # events arrive on the same socket: skip them
                message = await ws.receive_json(timeout=30)
                if message.get("id") == call_id:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message["result"]

        async def evaluate(expression: str) -> Any:
            result = await call("Runtime.evaluate", expression=expression, returnByValue=True)
            if "exceptionDetails" in result:
                raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
            return result["result"].get("value")

        await call("Page.enable")
        await call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not await evaluate(ready_js):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page at {url} not ready within {timeout:g} s ({ready_js})")
            await asyncio.sleep(0.2)
        value = await evaluate(result_js)
        shot = await call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"]), value
