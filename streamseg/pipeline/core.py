"""The streaming pipeline: sources -> batcher/engine -> sinks, one thread each, bounded queues between.

Threads and queues::

    source thread (one per source) --[bounded queue per source]--> engine thread
    engine thread (batcher + Segmenter launches) --[bounded queue of finished batches]--> fan-out thread
    fan-out thread --[bounded queue per sink]--> sink thread (one per sink)

Rules every worker follows (:mod:`.workers`): each blocking call has a timeout and re-checks the
stop event; each producer puts ``END`` on its queue exactly once (in ``finally``); the thread that
opens a resource (source, model, sink) is the one that closes it; the first exception anywhere is
recorded with its stage name, sets the stop event, and is re-raised to the caller as
:class:`StageError` after every thread has ended (a source with ``on_error="skip"`` instead ends
alone, its error kept in ``stats.source_errors``).

Shutdown order (normal end, ``stop()``, Ctrl-C or an error):
  1. the stop event is set (or every source reaches its end);
  2. source threads stop reading, close their source, put ``END``;
  3. the engine thread drains what it has (unless stopping on an error), flushes
     in-flight batches and ends the fan-out's queue; the fan-out hands on what it
     holds and puts ``END`` on every sink queue; the engine thread joins it and
     releases the model;
  4. sink threads write what reached them, then close (videos are finalised and
     stay playable), then exit;
  5. the caller joins all threads (bounded waits) and gets the stats or the error.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Sequence

from streamseg.errors import ConfigError, StageError, StreamsegError
from streamseg.pipeline.config import PipelineConfig, SinkConfig, SourceConfig
from streamseg.pipeline.stats import PipelineStats
from streamseg.pipeline.batcher import TICK
from streamseg.pipeline.workers import EngineWorker, RunState, SinkWorker, SourceWorker
from streamseg.sinks.base import RunView
from streamseg.types import Prediction

__all__ = ["Pipeline"]

log = logging.getLogger("streamseg.pipeline")


class Pipeline:
    """Sources -> engine -> sinks. ``run()`` blocks until the sources end; ``start()``/``stop()``/``join()``.

    ``sources`` and ``sinks`` may be given as objects (anything following the protocols in
    :mod:`streamseg.sources.base` / :mod:`streamseg.sinks.base`) in addition to the config's URIs
    and specs. Every URI is resolved here, once: :attr:`sources` and :attr:`sinks` are the built
    objects. ``on_progress(stats)`` is called from :meth:`join`'s thread while it waits.
    """

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        sources: Sequence[Any] = (),
        sinks: Sequence[Any] = (),
        segmenter: Any = None,
        on_progress: Callable[[PipelineStats], None] | None = None,
    ) -> None:
        from streamseg.sinks import Sink, open_sink
        from streamseg.sources import open_source

        self.config = cfg = config or PipelineConfig()
        many = len(cfg.sources) + len(sources) > 1
        built = [(open_source(sc.uri, source_id=sc.id or (str(i) if many else "0"), **sc.options), sc)
                 for i, sc in enumerate(cfg.sources)]  # fmt: skip
        for i, src in enumerate(sources, start=len(built)):
            if not hasattr(src, "read"):
                src = open_source(src, source_id=str(i) if many else "0")
            built.append((src, SourceConfig(uri=repr(src), id=src.source_id)))
        if not built:
            raise ConfigError("no sources: give at least one (--source FILE|DIR|CAMERA|URL)")
        ids = [s.source_id for s, _ in built]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"source ids must be unique, got {ids}")
        built_sinks = [(open_sink(sk.spec, **sk.options), sk) for sk in cfg.sinks]
        built_sinks += [(s, SinkConfig(spec=str(getattr(s, "name", s)))) for s in sinks]
        for sink, _ in built_sinks:
            if not isinstance(sink, Sink):
                raise ConfigError(f"{sink!r} is not a sink: subclass streamseg.sinks.BaseSink (or follow its protocol)")
        self.stats = PipelineStats()
        self._run = RunState()
        self._sources = [SourceWorker(self._run, s, sc, cfg.batch_size) for s, sc in built]
        self._sinks = [SinkWorker(self._run, s, sk, self.stats, times_latency=i == 0) for i, (s, sk) in enumerate(built_sinks)]
        self._engine = EngineWorker(self._run, cfg, self._sources, self._sinks, self.stats, segmenter,
                                    view=RunView(snapshot=self.snapshot, healthy=lambda: not self.failed))
        self._on_progress = on_progress
        self._started = False
        self._stats_lock = threading.Lock()

    # ------------------------------------------------------------------ what it is made of
    @property
    def sources(self) -> list[Any]:
        """The source objects, built from the config's URIs (and those passed in), in order."""
        return [w.source for w in self._sources]

    @property
    def sinks(self) -> list[Any]:
        """The sink objects, built from the config's specs (and those passed in), in order."""
        return [w.sink for w in self._sinks]

    @property
    def info(self) -> Any:
        """The model's :class:`~streamseg.engine.ModelInfo` once the engine has loaded it, else None."""
        return self._engine.info

    @property
    def failed(self) -> bool:
        return self._run.failed.is_set()

    def source(self, source_id: str) -> Any:
        for src in self.sources:
            if src.source_id == source_id:
                return src
        raise KeyError(source_id)

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
        run = self._run
        self._engine.thread.start()
        self._wait(self._engine.ready)
        if not run.failed.is_set():
            for sink in self._sinks:
                sink.thread.start()
            for sink in self._sinks:
                self._wait(sink.ready)
        if run.failed.is_set():
            self.stop()
            self.join()  # raises the failure (model, weights or sink could not be opened)
            return self
        self.stats.ready = time.monotonic()
        for src in self._sources:
            src.thread.start()
        return self

    def _wait(self, event: threading.Event) -> None:
        while not event.wait(TICK) and not self._run.failed.is_set():
            pass

    def _count_expected(self) -> None:
        """Once every source is open: how many frames the finite ones hold (for progress bars)."""
        if self.stats.expected_frames is not None or not all(w.opened.is_set() for w in self._sources):
            return
        counts = [None if w.source.live else getattr(w.source, "frame_count", None) for w in self._sources]
        if all(counts):
            self.stats.expected_frames = sum(counts)  # type: ignore[arg-type]

    def stop(self, *, drain: bool = True) -> None:
        """Ask every thread to finish (safe from any thread and from signal handlers).

        ``drain=True`` segments the frames already read before ending; ``drain=False``
        (Ctrl-C) ends after the batch in progress and counts the rest as dropped.
        """
        if drain:
            self._run.stop.set()
        else:
            self._run.abort()

    def join(self, timeout: float | None = None, *, raise_errors: bool = True) -> PipelineStats:
        """Wait for all threads; re-raise the first failure as StageError naming its stage."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads():
            if not thread.ident:
                continue
            while thread.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"pipeline thread {thread.name} did not stop in time")
                thread.join(TICK if left is None else min(TICK, left))
                if self._on_progress is not None:
                    self._count_expected()
                    self._on_progress(self.stats)
        with self._stats_lock:
            self._collect_stats(final=True)
        if self.stats.ended == 0.0:
            self.stats.ended = time.monotonic()
        failure = self._run.failure
        if raise_errors and failure is not None:
            stage, exc, tb = failure
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

    def running(self) -> bool:
        """True while any pipeline thread is alive."""
        return any(t.is_alive() for t in self.threads())

    def threads(self) -> list[threading.Thread]:
        engine = [self._engine.thread, self._engine.fanout]
        return [s.thread for s in self._sources] + engine + [s.thread for s in self._sinks]

    def latest_result(self, source_id: str | None = None) -> tuple[Prediction, float] | None:
        """The newest prediction of a source and its age in seconds (capture -> now), for control loops."""
        with self._engine.lock:
            latest = self._engine.latest
            if source_id is None:
                pred = max(latest.values(), key=lambda p: p.frame.capture_time) if latest else None
            else:
                pred = latest.get(source_id)
        if pred is None:
            return None
        return pred, time.monotonic() - pred.frame.capture_time

    # ------------------------------------------------------------------ stats
    def snapshot(self) -> dict[str, Any]:
        """The statistics as they stand now (what ``--stats-json`` writes at the end); safe from any thread."""
        with self._stats_lock:
            self._collect_stats(final=False)
            return self.stats.as_dict()

    def _collect_stats(self, *, final: bool) -> None:
        s = self.stats
        decode_frames = decode_busy = 0.0
        for src in self._sources:
            if final and not src.thread.is_alive():
                src.lane.discard()  # read but never segmented (stopped early): counted, not lost
            s.source_state[src.id] = src.state
            st = src.source.stats
            s.frames_in[src.id] = st.frames
            s.dropped[src.id] = src.lane.dropped + st.dropped
            s.decode_errors[src.id] = st.decode_errors
            s.reconnects[src.id] = st.reconnects
            if src.error is not None:
                s.source_errors[src.id] = src.error
            decode_frames += st.frames
            decode_busy += st.busy_s
        s.stages["decode"] = {"frames": int(decode_frames), "busy_s": round(decode_busy, 4)}
        for sink in self._sinks:
            s.sink_dropped[sink.name] = sink.dropped + sink.sink.dropped
            if sink.sink.reconnects:
                s.reconnects[f"sink {sink.name}"] = int(sink.sink.reconnects)
            s.stages[f"sink {sink.name}"] = {"frames": sink.frames, "busy_s": round(sink.busy_s, 4)}
