"""The streaming pipeline: sources -> batcher/engine -> sinks, one thread each, bounded queues between.

Threads and queues::

    source thread (one per source) --[bounded queue per source]--> engine thread
    engine thread (batcher + Segmenter) --[bounded queue per sink]--> sink thread (one per sink)

Rules every worker follows: each blocking call has a timeout and re-checks the
stop event; each producer puts ``_END`` on its queue exactly once (in ``finally``);
the thread that opens a resource (source, model, sink) is the one that closes it;
the first exception anywhere is recorded with its stage name, sets the stop event,
and is re-raised to the caller as :class:`StageError` after every thread has ended
(a source with ``on_error="skip"`` instead ends alone, its error kept in
``stats.source_errors``).

Shutdown order (normal end, ``stop()``, Ctrl-C or an error):
  1. the stop event is set (or every source reaches its end);
  2. source threads stop reading, close their source, put ``_END``;
  3. the engine thread drains what it has (unless stopping on an error), flushes
     in-flight batches, puts ``_END`` on every sink queue, releases the model;
  4. sink threads write what reached them, then close (videos are finalised and
     stay playable), then exit;
  5. the caller joins all threads (bounded waits) and gets the stats or the error.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from streamseg.engine import EngineConfig
from streamseg.errors import ConfigError, StageError, StreamsegError
from streamseg.types import Batch, Frame, Prediction

__all__ = ["Pipeline", "PipelineConfig", "SourceConfig", "SinkConfig", "PipelineStats", "stream"]

log = logging.getLogger(__name__)

_END = object()
_TICK = 0.05  # seconds: how often blocked workers re-check the stop event
LIVE_POLICY, FINITE_POLICY = "latest", "lossless"


@dataclass(frozen=True)
class SourceConfig:
    """One input. ``policy``: ``lossless`` (producer blocks) or ``latest`` (drop the oldest; live default)."""

    uri: str
    id: str | None = None
    policy: str | None = None  # None: latest for live sources, lossless otherwise
    max_age_ms: float | None = 1000.0  # latest: frames older than this are dropped when a newer one waits
    queue_size: int | None = None  # None: 1 for latest, 2 x batch for lossless
    on_error: str = "fail"  # fail: the first error stops the run; skip: end this source, the others go on
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.policy not in (None, "lossless", "latest"):
            raise ConfigError(f"sources[].policy must be 'lossless' or 'latest', got {self.policy!r}")
        if self.on_error not in ("fail", "skip"):
            raise ConfigError(f"sources[].on_error must be 'fail' or 'skip', got {self.on_error!r}")


@dataclass(frozen=True)
class SinkConfig:
    """One output, ``KIND:TARGET`` (``video:out.mp4``, ``masks:dir/``, ``rtsp://…``, ``display``)."""

    spec: str
    policy: str | None = None  # block (lossless) | drop (this sink only); None: drop for display/rtsp
    queue_size: int = 8
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.policy not in (None, "block", "drop"):
            raise ConfigError(f"sinks[].policy must be 'block' or 'drop', got {self.policy!r}")


@dataclass(frozen=True)
class PipelineConfig:
    sources: list[SourceConfig] = field(default_factory=list)
    sinks: list[SinkConfig] = field(default_factory=list)
    engine: EngineConfig = field(default_factory=EngineConfig)
    batch_size: int = 4
    max_wait_ms: float = 20.0
    stats_json: str | None = None
    progress: bool = True

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        ids = [s.id for s in self.sources if s.id is not None]
        if len(ids) != len(set(ids)):
            raise ConfigError(f"sources[].id must be unique, got {ids}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PipelineConfig":
        """From YAML data; ``sources``/``sinks`` items may be plain strings."""
        from streamseg.config import from_dict

        return from_dict(cls, cls.expand_shorthand(data))

    @staticmethod
    def expand_shorthand(data: dict[str, Any]) -> dict[str, Any]:
        """A copy where ``sources``/``sinks`` are lists of mappings (a plain string is the ``uri``/``spec``)."""
        data = dict(data)
        for key, field_name in (("sources", "uri"), ("sinks", "spec")):
            items = data.get(key)
            if items is None:
                continue
            if isinstance(items, (str, dict)):
                items = [items]
            if not isinstance(items, list):
                raise ConfigError(f"{key} must be a list, got {items!r}")
            data[key] = [{field_name: item} if isinstance(item, str) else item for item in items]
        return data


@dataclass
class _LatencyWindow:
    """Recent capture->sink latencies (bounded: the last 10,000)."""

    values: collections.deque = field(default_factory=lambda: collections.deque(maxlen=10_000))

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    def percentiles(self) -> dict[str, float | None]:
        if not self.values:
            return {"p50": None, "p95": None}
        arr = np.fromiter(self.values, float) * 1000
        return {"p50": round(float(np.percentile(arr, 50)), 2), "p95": round(float(np.percentile(arr, 95)), 2)}


@dataclass
class PipelineStats:
    """What ``--stats-json`` writes; read it live or after ``run()``."""

    frames_in: dict[str, int] = field(default_factory=dict)
    frames_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    reconnects: dict[str, int] = field(default_factory=dict)
    sink_dropped: dict[str, int] = field(default_factory=dict)
    decode_errors: dict[str, int] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)  # sources that failed under on_error=skip
    started: float = 0.0
    ended: float = 0.0
    latency: _LatencyWindow = field(default_factory=_LatencyWindow)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    engine: dict[str, str] = field(default_factory=dict)  # what ran: backend, precision, device

    @property
    def wall_s(self) -> float:
        end = self.ended or time.monotonic()
        return max(end - self.started, 1e-9) if self.started else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_in": sum(self.frames_in.values()),
            "frames_in_per_source": dict(self.frames_in),
            "frames_out": self.frames_out,
            "dropped": dict(self.dropped),
            "sink_dropped": dict(self.sink_dropped),
            "reconnects": dict(self.reconnects),
            "decode_errors": dict(self.decode_errors),
            "source_errors": dict(self.source_errors),
            "wall_s": round(self.wall_s, 3),
            "fps": round(self.frames_out / self.wall_s, 3) if self.wall_s else 0.0,
            "latency_ms": self.latency.percentiles(),
            "stages": {k: dict(v) for k, v in self.stages.items()},
            "engine": dict(self.engine),
        }


class _SourceWorker:
    """Owns one source in its own thread; applies the source's queue policy."""

    def __init__(self, pipeline: "Pipeline", source: Any, cfg: SourceConfig, batch_size: int) -> None:
        self.pipeline = pipeline
        self.source = source
        self.id = source.source_id
        live = bool(getattr(source, "live", False))
        self.policy = cfg.policy or (LIVE_POLICY if live else FINITE_POLICY)
        size = cfg.queue_size or (1 if self.policy == "latest" else max(2, 2 * batch_size))
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.max_age = cfg.max_age_ms / 1000.0 if cfg.max_age_ms else None
        self.skip_errors = cfg.on_error == "skip"
        self.error: str | None = None  # what ended this source under on_error=skip
        self.dropped = 0
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"streamseg-source-{self.id}", daemon=True)

    def _run(self) -> None:
        stop = self.pipeline._stop
        try:
            self.source.open()
            while not stop.is_set():
                try:
                    frame = self.source.read(timeout=0.25)
                except TimeoutError:
                    continue
                if frame is None:
                    break
                self._put(frame)
        except BaseException as exc:  # noqa: BLE001 - travels to the caller, or is reported under skip
            if self.skip_errors and isinstance(exc, Exception):  # KeyboardInterrupt and the like still stop the run
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("source %s failed and is skipped (on_error=skip): %s", self.id, self.error)
            else:
                self.pipeline._fail(f"source {self.id}", exc)
        finally:
            try:
                self.source.close()
            except Exception as exc:  # noqa: BLE001
                self.pipeline._fail(f"source {self.id} (close)", exc)
            self._put_end()

    def _put(self, frame: Frame) -> None:
        p = self.pipeline
        if self.policy == "lossless":
            while True:  # a stop() that drains still wants this frame; an abort counts it as dropped
                try:
                    self.queue.put(frame, timeout=_TICK)
                    return
                except queue.Full:
                    if p._abandon.is_set() or p._failed.is_set():
                        self._count_drop()
                        return
        while True:  # latest: make room by dropping the oldest waiting frame
            try:
                self.queue.put_nowait(frame)
                return
            except queue.Full:
                try:
                    old = self.queue.get_nowait()
                except queue.Empty:
                    continue
                if old is _END:  # never drop the end marker
                    self.queue.put_nowait(old)
                    return
                self._count_drop()

    def _put_end(self) -> None:
        while True:
            try:
                self.queue.put(_END, timeout=_TICK)
                return
            except queue.Full:
                if self.pipeline._abandon.is_set() or self.pipeline._failed.is_set():
                    try:  # the engine takes no more frames: make room for the end marker
                        if self.queue.get_nowait() is not _END:
                            self._count_drop()
                    except queue.Empty:
                        pass

    def discard_queued(self) -> None:
        """Stopping without draining: frames read but never segmented are counted as dropped."""
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if item is not _END:
                self._count_drop()

    def _count_drop(self, n: int = 1) -> None:
        with self._lock:
            self.dropped += n

    def take(self) -> Frame | object | None:
        """Non-blocking: the next frame, ``_END``, or None. ``latest`` skips stale frames when a newer one waits."""
        try:
            item = self.queue.get_nowait()
        except queue.Empty:
            return None
        if self.policy == "latest" and self.max_age and item is not _END:
            now = time.monotonic()
            while now - item.capture_time > self.max_age and not self.queue.empty():
                try:
                    newer = self.queue.get_nowait()
                except queue.Empty:
                    break
                if newer is _END:
                    self.queue.put_nowait(newer)
                    break
                self._count_drop()
                item = newer
        return item


class _SinkWorker:
    """Owns one sink in its own thread with its own bounded queue."""

    def __init__(self, pipeline: "Pipeline", sink: Any, cfg: SinkConfig) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.name = str(getattr(sink, "name", type(sink).__name__))
        live = self.name.startswith(("display", "rtsp"))
        self.policy = cfg.policy or ("drop" if live else "block")
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, cfg.queue_size))
        self.dropped = 0
        self.frames = 0
        self.busy_s = 0.0
        self.thread = threading.Thread(target=self._run, name=f"streamseg-sink-{self.name}", daemon=True)

    def _run(self) -> None:
        p = self.pipeline
        opened = False
        try:
            self.sink.open(p.context)
            opened = True
            p._sink_ready()
            while True:
                try:
                    item = self.queue.get(timeout=_TICK)
                except queue.Empty:
                    continue  # the engine always ends with _END, even after a failure elsewhere
                if item is _END:
                    break
                t0 = time.perf_counter()
                self.sink.write(item)
                self.busy_s += time.perf_counter() - t0
                self.frames += 1
                p._delivered(self, item)
                stop_requested = getattr(self.sink, "stop_requested", None)
                if stop_requested is not None and stop_requested.is_set():
                    log.info("%s asked to stop", self.name)
                    p.stop()
        except BaseException as exc:  # noqa: BLE001
            p._fail(f"sink {self.name}", exc)
        finally:
            if not opened:
                p._sink_ready()
            try:
                self.sink.close()
            except Exception as exc:  # noqa: BLE001
                p._fail(f"sink {self.name} (close)", exc)

    def put(self, pred: Prediction) -> None:
        if self.policy == "drop":
            try:
                self.queue.put_nowait(pred)
            except queue.Full:
                self.dropped += 1
            return
        while self.thread.is_alive():  # a healthy sink gets every segmented frame, even when another failed
            try:
                self.queue.put(pred, timeout=_TICK)
                return
            except queue.Full:
                pass

    def put_end(self) -> None:
        while self.thread.is_alive():
            try:
                self.queue.put(_END, timeout=_TICK)
                return
            except queue.Full:
                pass


class _QueueSink:
    """Hands predictions to :func:`stream`'s generator (a bounded queue read by the caller)."""

    name = "stream"

    def __init__(self, maxsize: int = 8) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.cancelled = threading.Event()  # set when the consumer left the loop
        self.frames = 0

    def open(self, context: Any) -> None:
        pass

    def write(self, prediction: Prediction) -> None:
        while not self.cancelled.is_set():  # blocking here is backpressure from the consumer
            try:
                self.queue.put(prediction, timeout=_TICK)
                self.frames += 1
                return
            except queue.Full:
                continue

    def close(self) -> None:
        pass


class Pipeline:
    """Sources -> engine -> sinks. ``run()`` blocks until the sources end; ``start()``/``stop()``/``join()``.

    ``sources`` and ``sinks`` may be given as objects (anything following the
    protocols in :mod:`streamseg.sources.base` / :mod:`streamseg.sinks.base`) in
    addition to the config's URIs and specs.
    """

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        sources: Sequence[Any] = (),
        sinks: Sequence[Any] = (),
        segmenter: Any = None,
        on_progress: Callable[["PipelineStats"], None] | None = None,
    ) -> None:
        from streamseg.sinks import open_sink
        from streamseg.sources import open_source

        self.config = config or PipelineConfig()
        cfg = self.config
        built_sources = []
        for i, sc in enumerate(cfg.sources):
            sid = sc.id or (str(i) if len(cfg.sources) + len(sources) > 1 else "0")
            built_sources.append((open_source(sc.uri, source_id=sid, **sc.options), sc))
        for i, src in enumerate(sources, start=len(built_sources)):
            if not hasattr(src, "read"):
                src = open_source(src, source_id=str(i) if len(cfg.sources) + len(sources) > 1 else "0")
            built_sources.append((src, SourceConfig(uri=repr(src), id=src.source_id)))
        if not built_sources:
            raise ConfigError("no sources: give at least one (--source FILE|DIR|CAMERA|URL)")
        ids = [s.source_id for s, _ in built_sources]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"source ids must be unique, got {ids}")
        built_sinks = [(open_sink(sk.spec, **sk.options), sk) for sk in cfg.sinks]
        built_sinks += [(s, SinkConfig(spec=str(getattr(s, "name", s)))) for s in sinks]
        self._stop = threading.Event()
        self._failed = threading.Event()
        self._abandon = threading.Event()  # stop(drain=False): do not segment what is still queued
        self._failure: tuple[str, BaseException, str] | None = None
        self._lock = threading.Lock()
        self._sources = [_SourceWorker(self, s, sc, cfg.batch_size) for s, sc in built_sources]
        self._sinks = [_SinkWorker(self, s, sk) for s, sk in built_sinks]
        self._segmenter = segmenter
        self._engine_thread = threading.Thread(target=self._engine_run, name="streamseg-engine", daemon=True)
        self._engine_ready = threading.Event()
        self._sinks_pending = len(self._sinks)
        self._sinks_ready = threading.Event()
        if not self._sinks:
            self._sinks_ready.set()
        self._latest: dict[str, Prediction] = {}
        self.stats = PipelineStats()
        self.context: Any = None
        self.info: Any = None
        self._on_progress = on_progress
        self._started = False
        self._done = threading.Event()

    # ------------------------------------------------------------------ control
    def __enter__(self) -> "Pipeline":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join(raise_errors=exc[0] is None)

    def start(self) -> "Pipeline":
        """Load the model, open the sinks, then start the sources; errors surface here."""
        if self._started:
            raise StreamsegError("a Pipeline can be started once; build a new one")
        self._started = True
        self.stats.started = time.monotonic()
        self._engine_thread.start()
        while not self._engine_ready.wait(_TICK):
            if self._failed.is_set():
                break
        if not self._failed.is_set():
            for sink in self._sinks:
                sink.thread.start()
            while not self._sinks_ready.wait(_TICK):
                if self._failed.is_set():
                    break
        if self._failed.is_set():
            self.stop()
            self.join()  # raises the failure (model, weights or sink could not be opened)
            return self
        for src in self._sources:
            src.thread.start()
        return self

    def stop(self, *, drain: bool = True) -> None:
        """Ask every thread to finish (safe from any thread and from signal handlers).

        ``drain=True`` segments the frames already read before ending; ``drain=False``
        (Ctrl-C) ends after the batch in progress and counts the rest as dropped.
        """
        if not drain:
            self._abandon.set()
        self._stop.set()

    def join(self, timeout: float | None = None, *, raise_errors: bool = True) -> PipelineStats:
        """Wait for all threads; re-raise the first failure as StageError naming its stage."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads():
            if not thread.ident:
                continue
            while thread.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"pipeline thread {thread.name} did not stop in time")
                thread.join(_TICK if left is None else min(_TICK, left))
                if self._on_progress is not None:
                    self._on_progress(self.stats)
        self._collect_stats()
        if self.stats.ended == 0.0:
            self.stats.ended = time.monotonic()
        self._done.set()
        if raise_errors and self._failure is not None:
            stage, exc, tb = self._failure
            if isinstance(exc, KeyboardInterrupt):
                raise exc
            err = StageError(stage, f"{type(exc).__name__}: {exc}")
            err.details = tb  # type: ignore[attr-defined]
            raise err from exc
        return self.stats

    def run(self) -> PipelineStats:
        """Start, wait for the sources to end (or stop()), and return the stats."""
        self.start()
        return self.join()

    def latest_result(self, source_id: str | None = None) -> tuple[Prediction, float] | None:
        """The newest prediction of a source and its age in seconds (capture -> now), for control loops."""
        with self._lock:
            if source_id is None:
                if not self._latest:
                    return None
                pred = max(self._latest.values(), key=lambda p: p.frame.capture_time)
            else:
                pred = self._latest.get(source_id)
        if pred is None:
            return None
        return pred, time.monotonic() - pred.frame.capture_time

    @property
    def failed(self) -> bool:
        return self._failed.is_set()

    def source(self, source_id: str) -> Any:
        for src in self._sources:
            if src.id == source_id:
                return src.source
        raise KeyError(source_id)

    # ------------------------------------------------------------------ workers
    def _threads(self) -> list[threading.Thread]:
        return [s.thread for s in self._sources] + [self._engine_thread] + [s.thread for s in self._sinks]

    def _fail(self, stage: str, exc: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = (stage, exc, traceback.format_exc())
                if not isinstance(exc, KeyboardInterrupt):
                    log.error("%s failed: %s: %s", stage, type(exc).__name__, exc)
        self._failed.set()
        self._stop.set()

    def _sink_ready(self) -> None:
        with self._lock:
            self._sinks_pending -= 1
            if self._sinks_pending <= 0:
                self._sinks_ready.set()

    def _delivered(self, sink: _SinkWorker, pred: Prediction) -> None:
        if sink is self._sinks[0]:
            self.stats.latency.add(time.monotonic() - pred.frame.capture_time)

    def _engine_run(self) -> None:
        from streamseg.engine import Segmenter
        from streamseg.sinks.base import SinkContext

        seg = None
        before = (0, 0.0)
        try:
            engine = self.config.engine
            if engine.openvino_hint is None and engine.in_flight > 1:
                # a pipeline keeps batches in flight: OpenVINO streams on separate cores give more frames/s
                engine = replace(engine, openvino_hint="THROUGHPUT")
            seg = self._segmenter or Segmenter(config=engine)
            self.stats.engine = {"backend": seg.config.backend, "precision": seg.precision, "device": str(seg.device)}
            before = (seg.stats.frames, seg.stats.busy_s)  # a segmenter passed in may have run before
            self.info = seg.info
            self.context = SinkContext(classes=tuple(seg.classes), palette=np.asarray(seg.palette, np.uint8))
            self._engine_ready.set()
            while not self._sinks_ready.wait(_TICK):
                if self._stop.is_set():
                    return
            self._batch_loop(seg)
        except BaseException as exc:  # noqa: BLE001
            self._fail("engine", exc)
        finally:
            self._engine_ready.set()
            if seg is not None:
                frames, busy = seg.stats.frames - before[0], seg.stats.busy_s - before[1]
                self.stats.stages["engine"] = {"frames": frames, "busy_s": round(busy, 4)}
                if seg.stats.compile_s:
                    self.stats.stages["engine"]["compile_s"] = round(seg.stats.compile_s, 3)
            for sink in self._sinks:
                sink.put_end()
            self.stats.ended = time.monotonic()

    def _batch_loop(self, seg: Any) -> None:
        cfg = self.config
        active = list(self._sources)
        cursor = 0
        while active:
            if self._stop.is_set() and (self._failed.is_set() or self._abandon.is_set()):
                for worker in active:
                    worker.discard_queued()
                break
            frames: list[Frame] = []
            deadline = None
            while len(frames) < cfg.batch_size and active:
                took = False
                for _ in range(len(active)):  # round robin: a stalled source never stalls the others
                    worker = active[cursor % len(active)]
                    cursor += 1
                    item = worker.take()
                    if item is None:
                        continue
                    if item is _END:
                        active.remove(worker)
                        took = True
                        break
                    if item.discontinuity:
                        seg.reset_stream(item.source_id)  # warm NMF bases do not carry over a gap
                    frames.append(item)
                    took = True
                    break
                if frames and deadline is None:
                    deadline = time.monotonic() + cfg.max_wait_ms / 1000.0
                if not took:
                    if frames and time.monotonic() >= deadline:
                        break
                    time.sleep(0.002 if frames else 0.005)
            if frames:
                seg.submit(Batch(tuple(frames)))
            for done in seg.poll(wait=False):
                self._emit(done)
        for done in seg.flush():
            self._emit(done)

    def _emit(self, preds: list[Prediction]) -> None:
        for pred in preds:
            with self._lock:
                self._latest[pred.frame.source_id] = pred
                self.stats.frames_out += 1
            for sink in self._sinks:
                sink.put(pred)
            if not self._sinks:
                self.stats.latency.add(time.monotonic() - pred.frame.capture_time)

    def _collect_stats(self) -> None:
        s = self.stats
        decode_frames = decode_busy = 0.0
        for src in self._sources:
            if not src.thread.is_alive():
                src.discard_queued()  # read but never segmented (stopped early): counted, not lost
            st = src.source.stats
            s.frames_in[src.id] = st.frames
            s.dropped[src.id] = src.dropped + int(getattr(st, "dropped", 0) or 0)
            s.decode_errors[src.id] = int(getattr(st, "decode_errors", 0) or 0)
            s.reconnects[src.id] = st.reconnects
            if src.error is not None:
                s.source_errors[src.id] = src.error
            decode_frames += st.frames
            decode_busy += st.busy_s
        s.stages["decode"] = {"frames": int(decode_frames), "busy_s": round(decode_busy, 4)}
        for sink in self._sinks:
            s.sink_dropped[sink.name] = sink.dropped + int(getattr(sink.sink, "dropped", 0) or 0)
            if getattr(sink.sink, "reconnects", 0):
                s.reconnects[f"sink {sink.name}"] = int(sink.sink.reconnects)
            s.stages[f"sink {sink.name}"] = {"frames": sink.frames, "busy_s": round(sink.busy_s, 4)}


def stream(
    source: Any,
    *,
    sinks: Sequence[Any] = (),
    batch_size: int = 1,
    weights: str | None = None,
    **engine_options: Any,
) -> Iterator[Prediction]:
    """``for pred in streamseg.stream("in.mp4"): ...`` — predictions in order, per source.

    ``source`` is anything ``open_source`` takes (path, URL, camera index, iterable)
    or a list of them; ``sinks`` are specs (``"video:out.mp4"``) or sink objects.
    Leaving the loop early stops the pipeline cleanly.
    """
    srcs = source if isinstance(source, (list, tuple)) and source and isinstance(source[0], str) else [source]
    engine = EngineConfig(**engine_options)
    if weights is not None:
        engine = replace(engine, weights=weights)
    spec_sinks = [SinkConfig(spec=s) for s in sinks if isinstance(s, str)]
    obj_sinks = [s for s in sinks if not isinstance(s, str)]
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=s) for s in srcs if isinstance(s, str)],
        sinks=spec_sinks,
        engine=engine,
        batch_size=batch_size,
        progress=False,
    )
    out = _QueueSink()
    pipe = Pipeline(cfg, sources=[s for s in srcs if not isinstance(s, str)], sinks=[out, *obj_sinks])
    pipe.start()
    finished = False
    try:
        while True:
            try:
                item = out.queue.get(timeout=_TICK)
            except queue.Empty:
                if not any(t.is_alive() for t in pipe._threads()) and out.queue.empty():
                    break
                continue
            yield item
        finished = True
    finally:
        pipe.stop()
        out.cancelled.set()
        pipe.join(raise_errors=finished or pipe.failed)


