"""The web sink's HTTP server: aiohttp in a thread of its own with its own event loop.

Routes (GET and HEAD only; anything else is 405, any other path 404)::

    /                 the page: a tile per source, its live overlay, numbers and the class legend
    /stream/{source}  MJPEG (multipart/x-mixed-replace) of a source's newest previews
    /live.json        what the page shows: per-source numbers and states, classes and colours
    /stats.json       the run's statistics now (what --stats-json writes at the end)
    /metrics          Prometheus text format
    /healthz          200 while the pipeline runs, 503 after a failure (no token needed)

Why aiohttp and not Starlette + uvicorn (both tried here): a port in use is an ``OSError`` from
``TCPSite.start()`` we can turn into a clear error, where uvicorn's ``serve()`` logs and raises
``SystemExit``; and a streaming write awaits the socket's drain, which is how a viewer that stops
reading is noticed (and cut off after ``client_timeout``) without ever blocking the pipeline.

A viewer only ever gets the newest preview: the server holds no per-viewer queue, so a slow or
stalled viewer costs one socket and nothing else.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import hmac
import json
import logging
import threading
import time
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamseg.errors import SinkError
from streamseg.sinks.base import RunView
from streamseg.sinks.web.board import Board
from streamseg.sinks.web.metrics import metrics_registry

__all__ = ["WebServer"]

log = logging.getLogger("streamseg.sinks.web")

BOUNDARY = b"streamsegframe"
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token may travel in the page's URL
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'",
}


class WebServer:
    """Serves a :class:`Board`; :meth:`start` and :meth:`stop` are called by the sink's thread."""

    def __init__(
        self, board: Board, *, host: str, port: int, token: str | None, run: RunView, classes: tuple[str, ...],
        palette: list[list[int]], max_clients: int, client_timeout: float, resend_s: float = 1.0,
    ) -> None:  # fmt: skip
        self.board, self.host, self.port, self.run = board, host, port, run
        self.classes, self.palette = classes, palette
        self.max_clients, self.client_timeout, self.resend_s = max_clients, client_timeout, resend_s
        self._token_digest = None if token is None else hashlib.sha256(token.encode()).digest()
        self.clients = self.refused = self.disconnected = self.skipped = 0
        self._registry: Any = metrics_registry(run.snapshot, run.healthy, board, self.viewers)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._closing = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"streamseg-web-{port}", daemon=True)

    # ------------------------------------------------------------------ lifecycle (the sink's thread)
    def start(self, timeout: float = 10.0) -> None:
        """Bind and serve; a port in use or an address that cannot be bound is a SinkError, raised here."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise SinkError(f"web sink: the server on {self.host}:{self.port} did not start within {timeout:g} s")
        if self._error is not None:
            self._thread.join(timeout)
            exc = self._error
            what = "is in use" if getattr(exc, "errno", None) == errno.EADDRINUSE else f"cannot be bound ({exc})"
            raise SinkError(
                f"web sink: port {self.port} on {self.host} {what}; pick another with --sink web:{self.host}:PORT "
                "(or stop what holds it)"
            ) from exc

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and end the thread; viewers get an end of stream, not a hang."""
        loop, stopping = self._loop, self._stopping
        self.board.on_change = None
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop ended on its own meanwhile
                pass
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("web sink: server thread did not end within %g s", timeout)

    def viewers(self) -> dict[str, int]:
        return {"clients": self.clients, "refused": self.refused, "disconnected": self.disconnected, "skipped": self.skipped}

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start(), or logged if it comes later
            if self._ready.is_set():
                log.error("web sink: server failed: %s", exc)
            self._error = exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stopping, self._changed = asyncio.Event(), asyncio.Event()
        runner = web.AppRunner(self._app(), handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            if self.port == 0:
                self.port = int(runner.addresses[0][1])
            loop = asyncio.get_running_loop()
            self.board.on_change = lambda: loop.call_soon_threadsafe(self._wake)
            self._ready.set()
            await self._stopping.wait()
        finally:
            self.board.on_change = None
            self._closing = True
            self._wake()
            await runner.cleanup()

    def _wake(self) -> None:
        """Wake every viewer waiting for a new preview (runs in the loop)."""
        changed, self._changed = self._changed, asyncio.Event()
        if changed is not None:
            changed.set()

    # ------------------------------------------------------------------ the app (the server's loop)
    def _app(self) -> web.Application:
        # No middleware: aiohttp caches middleware-wrapped handlers process-wide (up to 1024), which would
        # keep every finished run alive. Unknown paths and methods get aiohttp's 404/405 before any token check.
        app = web.Application()
        app.router.add_get("/", self._guarded(self._index))
        app.router.add_get("/stream/{source}", self._guarded(self._stream))
        app.router.add_get("/live.json", self._guarded(self._live))
        app.router.add_get("/stats.json", self._guarded(self._stats))
        app.router.add_get("/metrics", self._guarded(self._metrics))
        app.router.add_get("/healthz", self._health)  # for load balancers and orchestrators: no token
        app.on_response_prepare.append(self._headers)
        return app

    def _guarded(self, handler: Any) -> Any:
        """``handler`` behind the token (when there is one): a 401 that says how to get in, otherwise."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            if self._token_digest is not None and not self._authorized(request):
                return web.Response(status=401, text="401: this page needs its token: open the URL streamseg printed "
                                    "(…/?token=…) or send 'Authorization: Bearer TOKEN'\n",
                                    headers={"WWW-Authenticate": 'Bearer realm="streamseg"'})  # fmt: skip
            return await handler(request)

        return guarded

    def _authorized(self, request: web.Request) -> bool:
        """Compare digests, not tokens: the time taken depends on neither the length nor the content given."""
        given = request.query.get("token", "")
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            given = header[7:].strip()
        digest = hashlib.sha256(given.encode("utf-8", "replace")).digest()
        assert self._token_digest is not None
        return hmac.compare_digest(digest, self._token_digest)

    @staticmethod
    async def _headers(_request: web.Request, response: web.StreamResponse) -> None:
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)

    async def _index(self, _request: web.Request) -> web.Response:
        return web.Response(body=_page(), content_type="text/html", charset="utf-8")

    async def _health(self, _request: web.Request) -> web.Response:
        ok = self.run.healthy()
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "failed\n")

    async def _stats(self, _request: web.Request) -> web.Response:
        return _json(self.run.snapshot())

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _live(self, _request: web.Request) -> web.Response:
        stats = self.run.snapshot()
        sources: dict[str, dict[str, Any]] = {sid: {"state": state} for sid, state in stats.get("source_state", {}).items()}
        for sid, view in self.board.views().items():
            sources.setdefault(sid, {"state": "running"}).update(view)
        for sid, entry in sources.items():
            for key in ("frames_in_per_source", "frames_out_per_source", "dropped", "reconnects", "decode_errors"):
                entry[key.replace("_per_source", "")] = stats.get(key, {}).get(sid, 0)
            if sid in stats.get("source_errors", {}):
                entry["error"] = stats["source_errors"][sid]
        return _json({
            "sources": sources, "classes": list(self.classes), "palette": self.palette, "healthy": self.run.healthy(),
            "engine": stats.get("engine", {}), "fps": stats.get("fps"), "wall_s": stats.get("wall_s"),
            "viewers": self.viewers(),
        })  # fmt: skip

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """The newest preview of one source, part after part; re-sent every ``resend_s`` while nothing new comes."""
        source = request.match_info["source"]
        if source not in self.board.tiles and source not in self.run.snapshot().get("source_state", {}):
            raise web.HTTPNotFound(text=f"no source {source!r} in this run\n")
        content_type = f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}"
        if request.method == "HEAD":
            return web.Response(headers={"Content-Type": content_type})
        if self.clients >= self.max_clients:
            self.refused += 1
            return web.Response(status=503, headers={"Retry-After": "5"},
                                text=f"too many viewers: this page serves max_clients={self.max_clients} streams at "
                                "once; close another view or raise the web sink's max_clients\n")  # fmt: skip
        self.clients += 1
        response = web.StreamResponse(headers={"Content-Type": content_type})
        try:
            await response.prepare(request)
            await response.write(b"--" + BOUNDARY + b"\r\n")
            sent_version, sent_at = 0, 0.0
            while not self._closing:
                version, index, jpeg = self.board.latest(source)
                if jpeg is not None and (version != sent_version or time.monotonic() - sent_at >= self.resend_s):
                    if sent_version and version > sent_version + 1:
                        self.skipped += version - sent_version - 1
                    # the boundary goes right after the picture: browsers paint a part once the next one starts
                    part = b"Content-Type: image/jpeg\r\nContent-Length: %d\r\nX-Frame-Index: %d\r\n\r\n%s\r\n--%s\r\n" % (
                        len(jpeg), index, jpeg, BOUNDARY)  # fmt: skip
                    await asyncio.wait_for(response.write(part), self.client_timeout)
                    sent_version, sent_at = version, time.monotonic()
                    continue
                assert self._changed is not None
                try:
                    await asyncio.wait_for(self._changed.wait(), self.resend_s)
                except asyncio.TimeoutError:
                    pass
        except asyncio.TimeoutError:
            self.disconnected += 1
            log.info("web sink: a viewer of %s read nothing for %g s; disconnected", source, self.client_timeout)
            if request.transport is not None:
                request.transport.abort()
        except (ConnectionError, RuntimeError):  # the viewer left (RuntimeError: the connection was closed)
            pass
        finally:
            self.clients -= 1
        return response


@functools.cache
def _page() -> bytes:
    return resources.files(__package__).joinpath("page.html").read_bytes()


def _json(data: Any) -> web.Response:
    return web.Response(text=json.dumps(data), content_type="application/json")
