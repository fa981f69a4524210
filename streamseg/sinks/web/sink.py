"""``web[:HOST:PORT]`` — every stream's live overlay, numbers and metrics in a browser.

The sink's thread turns predictions into preview JPEGs (scaled to ``max_size``, at most ``fps``
per source, fewer while nobody watches) and leaves the newest one per source on a :class:`Board`;
the server thread hands boards to browsers. It is a live sink: the pipeline never waits for it.

Secure by default: it binds 127.0.0.1. Bound to any other address it requires a token: the one
given with ``token=``, or one generated and logged once with the page's URL.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import secrets
import time
from typing import Any

import cv2

from streamseg import draw
from streamseg.errors import BackendUnavailableError, ConfigError
from streamseg.sinks.base import BaseSink, RunView, SinkContext
from streamseg.sinks.web.board import Board
from streamseg.types import Prediction

__all__ = ["WebSink", "parse_address"]

log = logging.getLogger("streamseg.sinks.web")

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
IDLE_PREVIEW_S = 1.0  # while nobody watches, one preview a second keeps each tile's picture fresh


def parse_address(target: str | None) -> tuple[str, int]:
    """``None`` -> 127.0.0.1:8080; ``"HOST:PORT"``, ``"HOST"``, ``":PORT"``, ``"PORT"``, ``"[::1]:PORT"``."""
    if target is None or not target.strip():
        return DEFAULT_HOST, DEFAULT_PORT
    target = target.strip()
    if target.startswith("["):  # [IPv6]:PORT
        host, _, rest = target[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif target.count(":") > 1:  # a bare IPv6 address
        host, port_text = target, ""
    elif target.isdigit():
        host, port_text = DEFAULT_HOST, target
    else:
        host, _, port_text = target.partition(":")
    host = host or DEFAULT_HOST
    if not port_text:
        return host, DEFAULT_PORT
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError(f"web sink: {port_text!r} is not a port; write web:HOST:PORT, e.g. web:127.0.0.1:8080")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so it counts as reachable from outside


class WebSink(BaseSink):
    """Serves a live page of every source's overlay; see the module docstring and :mod:`.server`."""

    kind = "web"
    live = True

    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        quality: int = 80,
        max_size: int = 640,
        fps: float = 10.0,
        max_clients: int = 10,
        client_timeout: float = 5.0,
        mode: str = "overlay",
        alpha: float = 0.5,
    ) -> None:
        missing = [m for m in ("aiohttp", "prometheus_client") if importlib.util.find_spec(m) is None]
        if missing:
            raise BackendUnavailableError(
                f"the web sink needs {' and '.join(missing)}: pip install 'streamseg[web]'"
            )
        self.host, self.port = parse_address(address)
        super().__init__(f"web:{self.host}:{self.port}")
        self.mode, self.alpha = draw.check_drawing(mode, alpha)
        self.quality = _bounded("quality", quality, 1, 100, int)
        self.max_size = _bounded("max_size", max_size, 16, 16384, int)
        self.fps = _bounded("fps", fps, 0.1, 240.0, float)
        self.max_clients = _bounded("max_clients", max_clients, 1, 10_000, int)
        self.client_timeout = _bounded("client_timeout", client_timeout, 0.1, 3600.0, float)
        if token is not None and len(str(token)) < 8:
            raise ConfigError("web sink: a token must have at least 8 characters; leave it out to get a generated one")
        self.token = None if token is None else str(token)
        self.board = Board()
        self.url: str | None = None  # the page's address (with the token), once open
        self._server: Any = None

    def _open(self, context: SinkContext) -> None:
        from streamseg.sinks.web.server import WebServer

        generated = self.token is None and not is_loopback(self.host)
        if generated:
            self.token = secrets.token_urlsafe(24)
        self._server = WebServer(
            self.board, host=self.host, port=self.port, token=self.token, run=context.run or RunView(),
            classes=context.classes, palette=context.palette.tolist(), max_clients=self.max_clients,
            client_timeout=self.client_timeout,
        )  # fmt: skip
        self._server.start()
        self.port = self._server.port
        shown = f"[{self.host}]" if ":" in self.host else self.host
        page = f"http://{shown}:{self.port}/"
        self.url = page + (f"?token={self.token}" if self.token else "")
        if generated:
            log.warning("web sink: %s:%d is reachable from other machines, so the page needs a token; "
                        "generated one (shown once): open %s", self.host, self.port, self.url)  # fmt: skip
        else:  # a token the user chose is never written to a log
            log.warning("web sink: live page at %s%s", page, "?token=<your token>" if self.token else "")

    def _write(self, prediction: Prediction) -> bool:
        now = time.monotonic()
        frame = prediction.frame
        tile = self.board.tile(frame.source_id)
        tile.frames += 1
        tile.rate.tick(now)
        tile.latency.add(now - frame.capture_time)
        interval = 1.0 / self.fps if self._server.clients else IDLE_PREVIEW_S
        if now - tile.last_encode >= interval:
            tile.last_encode = now
            jpeg, size = self._preview(prediction)
            self.board.publish(tile, jpeg, frame.index, size)
        return True

    def _preview(self, prediction: Prediction) -> tuple[bytes, tuple[int, int]]:
        """The drawn prediction at preview size as a JPEG: scaled first, so a 4K frame costs a small picture."""
        assert self.context is not None
        image, mask = prediction.frame.image, prediction.mask
        h, w = mask.shape
        scale = min(1.0, self.max_size / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        drawn = draw.render(image, mask, self.context.palette, mode=self.mode, alpha=self.alpha)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:  # pragma: no cover - OpenCV's JPEG encoder does not fail on a valid image
            raise RuntimeError("JPEG encoding failed")
        return jpeg.tobytes(), (drawn.shape[1], drawn.shape[0])

    def _close(self) -> None:
        if self._server is not None:
            self._server.stop()

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        if self._server is not None:
            out.update(self._server.viewers())
        out["previews"] = {sid: tile.encoded for sid, tile in self.board.tiles.items()}
        return out


def _bounded(name: str, value: Any, low: float, high: float, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"web sink: {name} must be a number, got {value!r}") from exc
    if not low <= number <= high:
        raise ConfigError(f"web sink: {name} must lie in {low:g}..{high:g}, got {value!r}")
    return number
