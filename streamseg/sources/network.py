"""Network streams through PyAV/FFmpeg (RTSP, HTTP(S), HLS, RTMP, UDP, SRT, ...), with reconnection.

Everything runs in the caller's thread (no helper thread): ``read(timeout)``
decodes, and when the stream is lost it retries with exponential backoff. A call
overruns ``timeout`` by at most one FFmpeg wait (``open_timeout`` while a connect
attempt is in flight, ``read_timeout`` while reading); a backoff pause never overruns.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from streamseg.backoff import Backoff
from streamseg.errors import ConfigError, SourceError
from streamseg.sources.base import BaseSource, StreamClock
from streamseg.sources.pyav import RgbConverter, StreamEnded, check_threads, configure_threads, decoded_frames, legacy_rotation
from streamseg.types import Frame

if TYPE_CHECKING:
    import av
    import av.container

__all__ = ["NetworkSource", "redact"]

log = logging.getLogger(__name__)

#: Schemes that are always live (no end; EOF means "lost, reconnect").
LIVE_SCHEMES = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "udp", "rtp", "srt", "tcp", "rist", "mmsh", "mmst"}
)
_TRANSPORTS = ("tcp", "udp", "udp_multicast", "http", "https")
_LIVE_PROBESIZE = "500000"  # bytes; FFmpeg's 5 MB default delays the first frame of a live stream
_LIVE_ANALYZEDURATION = "1000000"  # microseconds; FFmpeg's default is 5 s


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs and error messages."""
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)


class _ConnectFailed(Exception):
    """A connect attempt failed in a way worth retrying (refused, 404, timeout, invalid data)."""

    def __init__(self, cause: BaseException, elapsed: float) -> None:
        super().__init__(str(cause))
        self.cause, self.elapsed = cause, elapsed


class NetworkSource(BaseSource):
    """A stream FFmpeg can open from a URL, reconnecting with backoff when it is lost.

    ``live``: RTSP/RTMP/UDP/SRT/... are live. HTTP(S) (HLS included) is decided at
    ``open()``: a known duration (a file, a VOD playlist) is finite, EOF ends it and
    there is no reconnection; no duration (live HLS, an MJPEG camera) is live. Before
    ``open()``, ``.m3u8`` URLs count as live and other HTTP URLs as finite. Pass
    ``live=`` to force either.

    ``low_latency`` (live only): small ``probesize``/``analyzeduration``, FFmpeg's
    ``fflags=nobuffer`` (not for HLS, where it loses the probed packets), the
    decoder's ``low_delay`` flag and slice (not frame) threading. Frames read while
    probing are dropped rather than delivered late.

    Timestamps: the first session's ``pts``/``time_base`` are the stream's own;
    later sessions are rescaled into that time base and shifted to continue after
    the last frame (plus the wall-clock gap), so ``pts`` is strictly increasing for
    the whole life of the source; the first frame after a reconnect has
    ``discontinuity=True``. ``index`` keeps counting across sessions. Frames
    without a pts get one from the wall clock.

    ``max_reconnects`` bounds the consecutive failed attempts after a loss (``None``:
    forever; ``0`` is like ``reconnect=False``); a frame delivered resets the count. ``backoff``
    is ``(first, max)`` seconds, doubling per failed attempt (10 % jitter); the first
    retry after a loss is immediate. ``stats.reconnects`` counts successful re-opens.
    With ``reconnect=False`` a clean end of a live stream ends the source (``None``)
    and an error is a SourceError. After a SourceError every ``read()`` re-raises it.
    ``options`` are extra FFmpeg options and win over the defaults.
    """

    kind = "url"

    def __init__(
        self,
        url: str,
        *,
        source_id: str = "0",
        transport: str = "tcp",
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        reconnect: bool = True,
        max_reconnects: int | None = None,
        backoff: tuple[float, float] = (0.5, 8.0),
        low_latency: bool = True,
        options: Mapping[str, str] | None = None,
        live: bool | None = None,
        threads: int | str = "auto",
    ) -> None:
        self.url = str(url)
        self.scheme = urlsplit(self.url).scheme.lower()
        if not self.scheme:
            raise ConfigError(f"{self.url!r} is not a URL (no scheme://); use e.g. rtsp://host:8554/path")
        if transport not in _TRANSPORTS:
            raise ConfigError(f"transport must be one of {', '.join(_TRANSPORTS)}, not {transport!r}")
        if open_timeout <= 0 or read_timeout <= 0:
            raise ConfigError(f"open_timeout and read_timeout must be > 0 (got {open_timeout}, {read_timeout})")
        if max_reconnects is not None and max_reconnects < 0:
            raise ConfigError(f"max_reconnects must be >= 0 or None (forever), not {max_reconnects}")
        try:
            first, most = backoff
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"backoff must be (first, max) seconds, not {backoff!r}") from exc
        super().__init__(source_id)
        self._backoff = Backoff(first, most, jitter=0.1)
        self.transport = transport
        self.open_timeout = float(open_timeout)
        self.read_timeout = float(read_timeout)
        self.reconnect = bool(reconnect)
        self.max_reconnects = max_reconnects
        self.backoff = (self._backoff.first, self._backoff.longest)
        self.low_latency = bool(low_latency)
        self.options = {str(k): str(v) for k, v in (options or {}).items()}
        self.threads = check_threads(threads)
        self._live_override = live
        self.live: bool = live if live is not None else self._guess_live()
        self.fps: float | None = None
        self.clock = StreamClock()
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[Any] | None = None
        self._to_rgb: RgbConverter | None = None
        self._had_session = False
        self._discontinuity = False
        self._session_frames = 0  # frames delivered by the current session
        self._failed: SourceError | None = None
        self._ended = False

    @property
    def time_base(self) -> Fraction | None:
        """The common time base of every frame's pts (the first session's)."""
        return self.clock.time_base

    def _describe(self) -> str:
        return redact(self.url)

    # -- lifecycle -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a session is up (``False`` while waiting to reconnect), for live status views."""
        return self._frames is not None

    def open(self) -> None:
        """Connect once (bounded by ``open_timeout``).

        A permanent problem (unknown protocol, bad credentials, no video) is a
        SourceError; so is any failure when ``reconnect`` is off. With ``reconnect``
        on, a transient failure (server down, nothing published yet) is logged and
        retried by ``read()``.
        """
        self._opened, self._ended, self._failed = True, False, None
        try:
            self._connect()
        except SourceError:
            self._opened = False
            raise
        except _ConnectFailed as failed:
            if not self.reconnect:
                self._opened = False
                raise SourceError(self._explain(failed)) from failed.cause
            log.warning("source %s: %s; will keep retrying", self.source_id, self._explain(failed))
            self._attempt_failed(failed)

    def read(self, timeout: float) -> Frame | None:
        """The next frame; ``None`` at the end of a finite stream; TimeoutError if none came in ``timeout`` s."""
        if self._failed is not None:
            raise self._failed
        self._check_open()
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            while not self._ended:
                if self._frames is None:
                    self._reconnect_step(deadline)
                    continue
                try:
                    return self._make_frame(next(self._frames))
                except StopIteration:
                    self._session_lost(None)
                except StreamEnded as ended:
                    self._session_lost(ended.cause)
                if time.monotonic() >= deadline and not self._ended:
                    raise TimeoutError(f"{redact(self.url)}: stream lost, reconnecting")
            return None
        except SourceError as exc:
            self._failed = exc
            self._drop_session()
            raise

    def close(self) -> None:
        """Disconnect; safe to call twice or after a failed open()."""
        self._opened = False
        self._drop_session()

    # -- connecting ------------------------------------------------------------------

    def _guess_live(self) -> bool:
        if self.scheme in ("http", "https", "file"):
            return urlsplit(self.url).path.lower().endswith(".m3u8")  # decided again at open from the duration
        return True

    def ffmpeg_options(self) -> dict[str, str]:
        """The FFmpeg options ``av.open`` gets: defaults for the scheme, then the user's ``options``."""
        us = str(int(self.read_timeout * 1_000_000))
        opts: dict[str, str] = {}
        if self.scheme in ("rtsp", "rtsps"):
            opts["rtsp_transport"] = self.transport
            opts["timeout"] = us  # RTSP socket I/O timeout
        else:
            opts["rw_timeout"] = us
        if self.low_latency and self.live:
            opts.update(probesize=_LIVE_PROBESIZE, analyzeduration=_LIVE_ANALYZEDURATION)
            if self.scheme in LIVE_SCHEMES:  # not HLS: nobuffer drops the packets read while probing
                opts["fflags"] = "nobuffer"
        opts.update(self.options)
        return opts

    def _connect(self) -> None:
        """One connect attempt: SourceError for permanent problems, _ConnectFailed for transient ones."""
        import av
        from av.codec.context import Flags

        url = redact(self.url)
        started = time.monotonic()
        try:
            container = av.open(
                self.url, mode="r", options=self.ffmpeg_options(), timeout=(self.open_timeout, self.read_timeout)
            )
        except (av.error.ProtocolNotFoundError, av.error.DemuxerNotFoundError) as exc:
            raise SourceError(
                f"{url}: FFmpeg cannot open this kind of URL ({exc}); check the scheme (rtsp://, http://, ...)"
            ) from exc
        except (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError, av.error.PermissionError) as exc:
            raise SourceError(f"{url}: access denied ({exc}); check the user:password in the URL") from exc
        except (av.error.OptionNotFoundError, av.error.ArgumentError) as exc:
            raise SourceError(
                f"{url}: FFmpeg rejected an option of {self.ffmpeg_options()} ({exc}); fix `options`"
            ) from exc
        except (av.FFmpegError, OSError, EOFError) as exc:  # refused, 404, timeout, invalid data: retry
            raise _ConnectFailed(exc, time.monotonic() - started) from exc
        try:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise SourceError(f"{url} has no video stream (streams: {', '.join(kinds)}); check the URL")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise SourceError(f"{url}: this FFmpeg build has no decoder for the stream's video codec")
        except BaseException:
            container.close()
            raise
        if self._live_override is None and self.scheme in ("http", "https", "file"):
            # A finite duration means a file or a VOD playlist: play it once. Live HLS has none.
            self.live = not (container.duration and container.duration > 0)
        configure_threads(stream, self.threads, low_delay=self.low_latency and self.live)
        if self.low_latency and self.live:
            stream.codec_context.flags |= int(Flags.low_delay)
        self._container = container
        self._frames = decoded_frames(container, stream, self.stats, self.source_id, resync=False)
        self._session_frames = 0
        self.clock.new_session(stream.time_base)
        self._to_rgb = RgbConverter(rotate_deg=legacy_rotation(stream))
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else self.fps
        if self._had_session:
            self.stats.reconnects += 1
            self._discontinuity = True
            log.info("source %s: reconnected to %s (reconnect #%d)", self.source_id, url, self.stats.reconnects)
        else:
            log.info(
                "source %s: connected to %s (%s, live=%s)", self.source_id, url, stream.codec_context.name, self.live
            )
        self._had_session = True

    def _reconnect_step(self, deadline: float) -> None:
        """Wait for the next attempt (never past ``deadline``) and make it; TimeoutError when out of time."""
        now = time.monotonic()
        wait = self._backoff.wait()
        if wait > 0:
            if now + wait > deadline:
                time.sleep(max(0.0, deadline - now))
                raise TimeoutError(
                    f"{redact(self.url)}: reconnecting, next attempt in {wait - max(0.0, deadline - now):.1f} s"
                )
            time.sleep(wait)
        try:
            self._connect()
        except _ConnectFailed as failed:
            log.info(
                "source %s: reconnect attempt %d failed: %s", self.source_id, self._backoff.failures + 1, self._explain(failed)
            )
            self._attempt_failed(failed)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{redact(self.url)}: reconnecting") from None

    def _attempt_failed(self, failed: _ConnectFailed) -> None:
        """Count a failed attempt and schedule the next; SourceError when ``max_reconnects`` is used up."""
        if self.max_reconnects is not None and self._backoff.failures + 1 >= self.max_reconnects:
            raise SourceError(
                f"{redact(self.url)}: gave up after {self._backoff.failures + 1} failed connection attempt(s); last error: "
                f"{self._explain(failed)}. Check the server/camera, or raise max_reconnects (None retries forever)"
            ) from failed.cause
        self._backoff.failed()

    def _session_lost(self, cause: BaseException | None) -> None:
        """End the session: a finite stream ends (or fails); a live one is reconnected.

        The first retry after a session that delivered frames is immediate (a
        restarted publisher is often back already); a session that ended before
        its first frame counts as a failed attempt, so a server that accepts and
        hangs up at once gets backoff and ``max_reconnects`` like any other failure.
        """
        self._drop_session()
        url = redact(self.url)
        retrying = self.reconnect and self.max_reconnects != 0
        if cause is None and (not self.live or not retrying):
            self._ended = True
            return
        if not self.live:
            raise SourceError(f"{url}: stream broke off ({cause}); check the server and the network")
        if not retrying:
            raise SourceError(f"{url}: live stream broke off ({cause}) and reconnect is off; enable it to retry")
        log.warning("source %s: %s lost (%s); reconnecting", self.source_id, url, cause or "end of stream")
        if self._session_frames:
            self._backoff.reset()
        else:
            self._attempt_failed(_ConnectFailed(cause or EOFError("stream ended before its first frame"), 0.0))

    def _drop_session(self) -> None:
        self._frames = None
        if self._container is not None:
            try:
                self._container.close()
            except Exception as exc:  # a dead connection may fail to close cleanly; nothing to do about it
                log.debug("source %s: error while closing: %s", self.source_id, exc)
            self._container = None

    def _explain(self, failed: _ConnectFailed) -> str:
        """A human message for a failed connect: what happened and what to check."""
        import av

        url, exc = redact(self.url), failed.cause
        if isinstance(exc, ConnectionRefusedError):
            return f"cannot connect to {url}: connection refused; is the server running and the port right?"
        if isinstance(exc, av.error.HTTPNotFoundError):
            return f"{url}: not found (404); check the path (for RTSP: is anything publishing to it?)"
        if isinstance(exc, (TimeoutError, av.error.ExitError)) or failed.elapsed >= self.open_timeout * 0.9:
            return (
                f"no answer from {url} within {self.open_timeout:g} s; check the host is reachable "
                "(network, firewall) or raise open_timeout"
            )
        if isinstance(exc, EOFError):
            return f"{url}: the server closed the connection; is the stream running?"
        return f"cannot open {url}: {exc}"

    # -- reading ---------------------------------------------------------------------

    def _make_frame(self, vframe: Any) -> Frame:
        now = time.monotonic()
        pts = self.clock.pts(vframe.pts, now)
        image = self._to_rgb(vframe)  # type: ignore[misc]
        self.stats.busy_s += time.monotonic() - now
        if self._discontinuity:
            log.debug("source %s: first frame after reconnect, index %d pts %d", self.source_id, self._index, pts)
        frame = self._emit(image, pts=pts, time_base=self.clock.time_base, capture_time=now, discontinuity=self._discontinuity)
        self._discontinuity = False
        self._backoff.reset()
        self._session_frames += 1
        return frame
