"""``rtsp:URL`` — the drawn predictions published as H.264 to an RTSP server (ANNOUNCE/RECORD).

Works with MediaMTX and the test relay (``../shared/tools/rtsp_relay.py``):
readers PLAY the same URL. The encoder is tuned for latency (x264
``ultrafast``/``zerolatency``, no B-frames, a keyframe every half second, so a
reader joining waits at most that long).

Connection handling. PyAV connects at the first ``mux()``, so connection
errors surface while writing. When the server is unreachable or goes away
(refused, broken pipe, reset, FFmpeg errors) the sink drops the frame, tears
the connection down and retries with exponential backoff (``backoff=(first,
max)`` seconds); frames arriving while it waits are counted in ``dropped``
and return at once, and every successful re-connection counts in
``reconnects``. One write blocks at most about ``timeout`` seconds (FFmpeg's
socket timeout; PyAV's own ``timeout`` does not cover output). Each new
connection starts a fresh encoder, so readers get a keyframe first.
``reconnect=False`` turns the first failure into a SinkError instead.

Several sources publish under ``URL/<source_id>`` (see :mod:`streamseg.sinks`).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import av

from streamseg.backoff import Backoff
from streamseg import draw
from streamseg.errors import ConfigError, SinkError
from streamseg.sinks.base import BaseSink, SinkContext
from streamseg.sinks.encode import (
    Timeline, add_video_stream, chroma_alignment, encoder_frame, fit_frame, parse_fps, picture_size, rendered_frame,
    sink_view,
)  # fmt: skip
from streamseg.sinks.routing import Routes
from streamseg.types import Prediction

__all__ = ["RtspSink"]

log = logging.getLogger(__name__)

#: What a lost or refused connection looks like from PyAV (av errors are OSErrors too).
_CONNECTION_ERRORS = (OSError, EOFError, av.FFmpegError)
#: What every RTSP client decodes.
_PIX_FMT = "yuv420p"


class _Publisher:
    """One source's connection: container + encoder, or the time of the next attempt."""

    def __init__(self, url: str, backoff: Backoff) -> None:
        self.url = url
        self.backoff = backoff
        self.container: Any = None
        self.stream: Any = None
        self.timeline: Timeline | None = None
        self.size: tuple[int, int] | None = None  # (w, h) of the first frame, kept across reconnects
        self.live = False  # the current connection has carried a packet
        self.ever_connected = False


class RtspSink(BaseSink):
    """Publishes overlays to ``url`` and keeps doing so across server restarts."""

    kind = "rtsp"
    live = True

    def __init__(
        self,
        url: str,
        *,
        mode: str = "overlay",
        alpha: float = 0.5,
        legend: bool = False,
        transport: str = "tcp",
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.5, 8.0),
        fps: float = 30,
        gop: int | None = None,
        crf: int = 23,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(f"rtsp:{url}")
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname:
            raise ConfigError(f"rtsp sink needs an rtsp://HOST[:PORT]/PATH URL, got {url!r}")
        if transport not in ("tcp", "udp"):
            raise ConfigError(f"rtsp sink: transport must be 'tcp' or 'udp', got {transport!r}")
        try:
            first, longest = backoff
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"rtsp sink: backoff must be (first_s, max_s), got {backoff!r}") from exc
        checked = Backoff(first, longest, what="rtsp sink: backoff")
        if checked.first <= 0:
            raise ConfigError(f"rtsp sink: backoff must satisfy 0 < first <= max, got {backoff!r}")
        self.url = url
        self.mode, self.alpha = draw.check_drawing(mode, alpha)
        self.fps = parse_fps(fps)
        self.legend = bool(legend)
        self.transport = transport
        self.reconnect = bool(reconnect)
        self.backoff = (checked.first, checked.longest)
        try:
            self.gop = int(gop) if gop else max(1, round(float(self.fps) / 2))
            self.crf = int(crf)
            self.timeout = float(timeout)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"rtsp sink: gop and crf must be integers, timeout seconds ({exc})") from exc
        if self.timeout <= 0:
            raise ConfigError(f"rtsp sink: timeout must be > 0 seconds, got {timeout}")
        self._routes: Routes[_Publisher] = Routes(url, "url")
        self._align = chroma_alignment(_PIX_FMT)
        self.view = sink_view(self.mode, self.alpha, self.legend, _PIX_FMT)

    @property
    def outputs(self) -> dict[str, str]:
        """The URL each source publishes to."""
        return {sid: pub.url for sid, pub in self._routes.outputs.items()}

    def _open(self, context: SinkContext) -> None:
        try:
            av.codec.Codec("libx264", "w")
        except (ValueError, av.FFmpegError) as exc:  # pragma: no cover - PyAV wheels ship libx264
            raise SinkError(f"{self.name}: this FFmpeg has no libx264 encoder; install the PyAV wheel") from exc

    # -- routing ---------------------------------------------------------------

    def _new_publisher(self, source_id: str) -> _Publisher:
        url, move = self._routes.claim(source_id)
        if move is not None:
            first_id, first, new_url = move
            self._disconnect(first)
            first.url = new_url
            first.ever_connected = False
            first.backoff.reset()
            log.info("%s: several sources, source %r now publishes to %s", self.name, first_id, first.url)
        return self._routes.add(source_id, _Publisher(url, Backoff(*self.backoff, jitter=0.0)))

    # -- connection ------------------------------------------------------------

    def _connect(self, pub: _Publisher, prediction: Prediction) -> None:
        """A container and a fresh encoder; the network connection itself opens at the first mux."""
        options = {"rtsp_transport": self.transport, "timeout": str(int(self.timeout * 1e6))}
        container = av.open(pub.url, "w", format="rtsp", options=options)
        try:
            assert pub.size is not None
            timeline = Timeline(self.fps)
            stream = add_video_stream(
                container, "libx264", pub.size, pix_fmt=_PIX_FMT, fps=self.fps, time_base=timeline.start(prediction.frame),
                gop=self.gop, options={"preset": "ultrafast", "tune": "zerolatency", "crf": str(self.crf)},
            )  # fmt: skip
        except BaseException:
            container.close()
            raise
        pub.container, pub.stream, pub.timeline, pub.live = container, stream, timeline, False

    def _disconnect(self, pub: _Publisher) -> None:
        container, pub.container, pub.stream = pub.container, None, None
        if container is None:
            return
        try:
            container.close()  # TEARDOWN when the connection is still up
        except _CONNECTION_ERRORS as exc:
            log.debug("%s: closing %s: %s", self.name, pub.url, exc)
        pub.live = False

    def _failed(self, pub: _Publisher, exc: BaseException) -> None:
        self._disconnect(pub)
        delay = pub.backoff.failed()
        if not self.reconnect:
            raise SinkError(
                f"{self.name}: publishing to {pub.url} failed: {exc}; check that the RTSP server runs and "
                "accepts publishers (or pass reconnect=True to keep retrying)"
            ) from exc
        level = logging.WARNING if pub.backoff.failures == 1 else logging.DEBUG
        log.log(level, "%s: publishing to %s failed (%s); retrying in %.1f s", self.name, pub.url, exc, delay)

    # -- write -----------------------------------------------------------------

    def _write(self, prediction: Prediction) -> bool:
        assert self.context is not None
        frame = prediction.frame
        pub = self._routes.outputs.get(frame.source_id) or self._new_publisher(frame.source_id)
        if pub.container is None and pub.backoff.wait() > 0:
            self.dropped += 1
            return False
        if pub.size is None:
            pub.size = picture_size(frame, self.mode)
        try:
            if pub.container is None:
                self._connect(pub, prediction)
            sent = self._send(pub, prediction)
        except _CONNECTION_ERRORS as exc:
            self.dropped += 1
            self._failed(pub, exc)
            return False
        if sent and not pub.live:
            pub.live = True
            if pub.ever_connected:
                self.reconnects += 1
                log.info("%s: publishing to %s again after %d failed attempts", self.name, pub.url, pub.backoff.failures)
            pub.ever_connected = True
            pub.backoff.reset()
        return True

    def _send(self, pub: _Publisher, prediction: Prediction) -> int:
        """Encode and mux one frame; returns how many packets went out (the first one connects)."""
        assert pub.timeline is not None and pub.size is not None and self.context is not None
        sent = 0
        vf = rendered_frame(prediction, self.view, pub.size, _PIX_FMT, self._align)
        if vf is None:
            image = draw.render(prediction.frame.image, prediction.mask, self.context.palette, mode=self.mode,
                                alpha=self.alpha, classes=self.context.classes, legend=self.legend)  # fmt: skip
            vf = encoder_frame(fit_frame(image, pub.size, self._align), _PIX_FMT)
        vf.pts = pub.timeline.pts(prediction.frame)
        vf.time_base = pub.timeline.time_base
        for packet in pub.stream.encode(vf):
            packet.duration = pub.timeline.frame_duration
            pub.container.mux(packet)
            sent += 1
        return sent

    # -- close -----------------------------------------------------------------

    def _close(self) -> None:
        for pub in self._routes.outputs.values():
            if pub.container is not None and pub.live:
                try:
                    for packet in pub.stream.encode(None):
                        pub.container.mux(packet)
                except _CONNECTION_ERRORS as exc:
                    log.debug("%s: flushing %s: %s", self.name, pub.url, exc)
            self._disconnect(pub)
