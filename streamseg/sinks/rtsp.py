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
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import av
import numpy as np

from streamseg.errors import ConfigError, SinkError
from streamseg.sinks._common import (
    PLACEHOLDER,
    SINKS,
    BaseSink,
    Timeline,
    check_options,
    encoder_frame,
    fill_placeholder,
    safe_source_id,
)
from streamseg.sinks.base import SinkContext
from streamseg.sinks.video import chroma_alignment, fit_frame
from streamseg.types import Prediction

__all__ = ["RtspSink"]

log = logging.getLogger(__name__)

#: What a lost or refused connection looks like from PyAV (av errors are OSErrors too).
_CONNECTION_ERRORS = (OSError, EOFError, av.FFmpegError)
#: What every RTSP client decodes.
_PIX_FMT = "yuv420p"


class _Publisher:
    """One source's connection: container + encoder, or the time of the next attempt."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.container: Any = None
        self.stream: Any = None
        self.timeline: Timeline | None = None
        self.size: tuple[int, int] | None = None  # (w, h) of the first frame, kept across reconnects
        self.live = False  # the current connection has carried a packet
        self.failures = 0  # consecutive failed attempts
        self.ever_connected = False
        self.next_attempt = 0.0


@SINKS.register("rtsp")
class RtspSink(BaseSink):
    """Publishes overlays to ``url`` and keeps doing so across server restarts."""

    kind = "rtsp"

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
            first, longest = (float(b) for b in backoff)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"rtsp sink: backoff must be (first_s, max_s), got {backoff!r}") from exc
        if not 0 < first <= longest:
            raise ConfigError(f"rtsp sink: backoff must satisfy 0 < first <= max, got {backoff!r}")
        self.url = url
        self.mode, self.alpha, self.fps = check_options(mode, alpha, fps)
        self.legend = bool(legend)
        self.transport = transport
        self.reconnect = bool(reconnect)
        self.backoff = (first, longest)
        try:
            self.gop = int(gop) if gop else max(1, round(float(self.fps) / 2))
            self.crf = int(crf)
            self.timeout = float(timeout)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"rtsp sink: gop and crf must be integers, timeout seconds ({exc})") from exc
        if self.timeout <= 0:
            raise ConfigError(f"rtsp sink: timeout must be > 0 seconds, got {timeout}")
        self.dropped = 0
        self.reconnects = 0
        self._publishers: dict[str, _Publisher] = {}
        self._align = chroma_alignment(_PIX_FMT)

    @property
    def outputs(self) -> dict[str, str]:
        """The URL each source publishes to."""
        return {sid: pub.url for sid, pub in self._publishers.items()}

    def _open(self, context: SinkContext) -> None:
        try:
            av.codec.Codec("libx264", "w")
        except (ValueError, av.FFmpegError) as exc:  # pragma: no cover - PyAV wheels ship libx264
            raise SinkError(f"{self.name}: this FFmpeg has no libx264 encoder; install the PyAV wheel") from exc

    # -- routing ---------------------------------------------------------------

    def _url_for(self, source_id: str, per_source: bool) -> str:
        if PLACEHOLDER in self.url:
            return fill_placeholder(self.url, source_id)
        if not per_source:
            return self.url
        parts = urlsplit(self.url)
        path = parts.path.rstrip("/") + "/" + safe_source_id(source_id)
        return urlunsplit(parts._replace(path=path))

    def _publisher(self, source_id: str) -> _Publisher:
        pub = self._publishers.get(source_id)
        if pub is not None:
            return pub
        if len(self._publishers) == 1 and PLACEHOLDER not in self.url:
            (first_id, first), = self._publishers.items()
            self._disconnect(first)
            first.url = self._url_for(first_id, per_source=True)
            first.next_attempt, first.failures, first.ever_connected = 0.0, 0, False
            log.info("%s: several sources, source %r now publishes to %s", self.name, first_id, first.url)
        pub = _Publisher(self._url_for(source_id, per_source=bool(self._publishers)))
        self._publishers[source_id] = pub
        return pub

    # -- connection ------------------------------------------------------------

    def _connect(self, pub: _Publisher, prediction: Prediction) -> None:
        """A container and a fresh encoder; the network connection itself opens at the first mux."""
        options = {"rtsp_transport": self.transport, "timeout": str(int(self.timeout * 1e6))}
        container = av.open(pub.url, "w", format="rtsp", options=options)
        try:
            assert pub.size is not None
            w, h = pub.size
            stream = container.add_stream("libx264", rate=self.fps)
            stream.width = w + (-w) % self._align[0]
            stream.height = h + (-h) % self._align[1]
            stream.pix_fmt = _PIX_FMT
            timeline = Timeline(self.fps)
            stream.codec_context.time_base = timeline.start(prediction.frame)
            stream.codec_context.gop_size = self.gop
            stream.codec_context.max_b_frames = 0
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": str(self.crf)}
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
        pub.failures += 1
        delay = min(self.backoff[1], self.backoff[0] * 2 ** (pub.failures - 1))
        pub.next_attempt = time.monotonic() + delay
        if not self.reconnect:
            raise SinkError(
                f"{self.name}: publishing to {pub.url} failed: {exc}; check that the RTSP server runs and "
                "accepts publishers (or pass reconnect=True to keep retrying)"
            ) from exc
        level = logging.WARNING if pub.failures == 1 else logging.DEBUG
        log.log(level, "%s: publishing to %s failed (%s); retrying in %.1f s", self.name, pub.url, exc, delay)

    # -- write -----------------------------------------------------------------

    def _write(self, prediction: Prediction) -> bool:
        assert self.context is not None
        frame = prediction.frame
        pub = self._publisher(frame.source_id)
        if pub.container is None and time.monotonic() < pub.next_attempt:
            self.dropped += 1
            return False
        image = self._render(prediction)
        if pub.size is None:
            pub.size = (image.shape[1], image.shape[0])
        try:
            if pub.container is None:
                self._connect(pub, prediction)
            sent = self._send(pub, fit_frame(image, pub.size, self._align), prediction)
        except _CONNECTION_ERRORS as exc:
            self.dropped += 1
            self._failed(pub, exc)
            return False
        if sent and not pub.live:
            pub.live = True
            if pub.ever_connected:
                self.reconnects += 1
                log.info("%s: publishing to %s again after %d failed attempts", self.name, pub.url, pub.failures)
            pub.ever_connected = True
            pub.failures = 0
        return True

    def _send(self, pub: _Publisher, image: np.ndarray, prediction: Prediction) -> int:
        """Encode and mux one frame; returns how many packets went out (the first one connects)."""
        assert pub.timeline is not None
        sent = 0
        vf = encoder_frame(image, _PIX_FMT)
        vf.pts = pub.timeline.pts(prediction.frame)
        vf.time_base = pub.timeline.time_base
        for packet in pub.stream.encode(vf):
            packet.duration = pub.timeline.frame_duration
            pub.container.mux(packet)
            sent += 1
        return sent

    # -- close -----------------------------------------------------------------

    def _close(self) -> None:
        for pub in self._publishers.values():
            if pub.container is not None and pub.live:
                try:
                    for packet in pub.stream.encode(None):
                        pub.container.mux(packet)
                except _CONNECTION_ERRORS as exc:
                    log.debug("%s: flushing %s: %s", self.name, pub.url, exc)
            self._disconnect(pub)
