"""The pipeline's worker threads: one per source, the engine and its fan-out, one per sink.

Each worker owns what it opens: a source worker its source, the engine worker the model, a sink
worker its sink. The rules are the ones at the top of :mod:`streamseg.pipeline.core`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from streamseg.pipeline.batcher import END, TICK, Batcher, SourceLane, put_until
from streamseg.pipeline.config import PipelineConfig, SinkConfig, SourceConfig
from streamseg.pipeline.stats import PipelineStats
from streamseg.types import Batch, Prediction

__all__ = ["EngineWorker", "RunState", "SinkWorker", "SourceWorker", "engine_config_for"]

log = logging.getLogger("streamseg.pipeline")


def engine_config_for(config: PipelineConfig) -> Any:
    """The engine a pipeline builds for ``config`` (also what a Ray worker loads, to run exactly the same)."""
    engine = config.engine
    if engine.precision == "int8" and engine.calibration is None and config.sources:
        engine = replace(engine, calibration=config.sources[0].uri)  # calibrate on what is segmented
    if engine.openvino_hint is None and engine.in_flight > 1:
        # a pipeline keeps batches in flight: OpenVINO streams on separate cores give more frames/s
        engine = replace(engine, openvino_hint="THROUGHPUT")
    return engine


class RunState:
    """What the workers of one run share: stop, abandon and failure events, and the first failure."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.abandon = threading.Event()  # stop(drain=False): do not segment what is still queued
        self.failed = threading.Event()
        self.halt = threading.Event()  # abandon or failed: frames still queued will not be segmented
        self.failure: tuple[str, BaseException, str] | None = None
        self._lock = threading.Lock()

    def fail(self, stage: str, exc: BaseException) -> None:
        """Record the first failure with its stage and traceback, and stop everything."""
        with self._lock:
            if self.failure is None:
                self.failure = (stage, exc, traceback.format_exc())
                if not isinstance(exc, KeyboardInterrupt):
                    log.error("%s failed: %s: %s", stage, type(exc).__name__, exc)
        self.failed.set()
        self.halt.set()
        self.stop.set()

    def close(self, stage: str, resource: Any) -> None:
        """Close what a worker opened; a failure to close is a failure of that stage."""
        try:
            resource.close()
        except Exception as exc:  # noqa: BLE001
            self.fail(f"{stage} (close)", exc)

    def abort(self) -> None:
        """Stop without segmenting what is still queued (``stop(drain=False)``)."""
        self.abandon.set()
        self.halt.set()
        self.stop.set()


class SourceWorker:
    """Owns one source in its own thread; its frames go into the source's lane to the batcher."""

    def __init__(self, run: RunState, source: Any, cfg: SourceConfig, batch_size: int) -> None:
        self.run, self.source, self.id = run, source, source.source_id
        policy = cfg.policy or ("latest" if source.live else "lossless")
        size = cfg.queue_size or (1 if policy == "latest" else max(2, 2 * batch_size))
        max_age = cfg.max_age_ms / 1000.0 if cfg.max_age_ms else None
        self.lane = SourceLane(policy, size, max_age, run.halt)
        self.skip_errors = cfg.on_error == "skip"
        self.error: str | None = None  # what ended this source under on_error=skip
        self.opened = threading.Event()  # set once the source is open (or failed to open)
        self.thread = threading.Thread(target=self._run, name=f"streamseg-source-{self.id}", daemon=True)

    @property
    def state(self) -> str:
        """``opening``, ``running``, ``reconnecting`` (a network source between sessions), ``ended`` or ``failed``."""
        if self.error is not None or (self.run.failure is not None and self.run.failure[0] == f"source {self.id}"):
            return "failed"
        if self.thread.ident is not None and not self.thread.is_alive():
            return "ended"
        if not self.opened.is_set():
            return "opening"
        return "running" if getattr(self.source, "connected", True) else "reconnecting"

    def _run(self) -> None:
        try:
            self.source.open()
            self.opened.set()
            while not self.run.stop.is_set():
                try:
                    frame = self.source.read(timeout=0.25)
                except TimeoutError:
                    continue
                if frame is None:
                    break
                self.lane.put(frame)
        except BaseException as exc:  # noqa: BLE001 - travels to the caller, or is reported under skip
            if self.skip_errors and isinstance(exc, Exception):  # KeyboardInterrupt and the like still stop the run
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("source %s failed and is skipped (on_error=skip): %s", self.id, self.error)
            else:
                self.run.fail(f"source {self.id}", exc)
        finally:
            self.opened.set()
            self.run.close(f"source {self.id}", self.source)
            self.lane.end()


class SinkWorker:
    """Owns one sink in its own thread with its own bounded queue and drop policy."""

    def __init__(self, run: RunState, sink: Any, cfg: SinkConfig, stats: PipelineStats, *, times_latency: bool) -> None:
        self.run, self.sink, self.stats, self.times_latency = run, sink, stats, times_latency
        self.name = str(sink.name)
        self.policy = cfg.policy or ("drop" if sink.live else "block")
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, cfg.queue_size))
        self.ready = threading.Event()  # set once the sink is open (or failed to open)
        self.done = threading.Event()  # set when the thread ends: nobody takes from the queue any more
        self.context: Any = None  # set by the engine before the thread starts
        self.dropped = self.frames = 0
        self.busy_s = 0.0
        self.thread = threading.Thread(target=self._run, name=f"streamseg-sink-{self.name}", daemon=True)

    def _run(self) -> None:
        try:
            self.sink.open(self.context)
            self.ready.set()
            while (item := self._next()) is not END:
                t0 = time.perf_counter()
                self.sink.write(item)
                self.busy_s += time.perf_counter() - t0
                self.frames += 1
                if self.times_latency:
                    self.stats.latency.add(time.monotonic() - item.frame.capture_time)
                if self.sink.stop_requested is not None and self.sink.stop_requested.is_set():
                    log.info("%s asked to stop", self.name)
                    self.run.stop.set()
        except BaseException as exc:  # noqa: BLE001
            self.run.fail(f"sink {self.name}", exc)
        finally:
            self.ready.set()
            self.run.close(f"sink {self.name}", self.sink)
            self.done.set()

    def _next(self) -> Prediction | object:
        while True:  # the engine always ends with END, even after a failure elsewhere
            try:
                return self.queue.get(timeout=TICK)
            except queue.Empty:
                continue

    def put(self, pred: Prediction | object) -> None:
        """Hand on a prediction (``drop``: never wait, count what does not fit) or END."""
        if self.policy == "drop" and pred is not END:
            try:
                self.queue.put_nowait(pred)
            except queue.Full:
                self.dropped += 1
            return
        # a healthy sink gets every segmented frame, even when another one failed
        put_until(self.queue, pred, self.done.is_set)


class EngineWorker:
    """The engine thread builds the model, batches the sources' frames and launches them; its fan-out thread
    hands finished batches to the sinks, so a sink that lags holds back no launch until ``completed`` fills."""

    def __init__(
        self, run: RunState, config: PipelineConfig, lanes: Sequence[SourceWorker], sinks: Sequence[SinkWorker],
        stats: PipelineStats, segmenter: Any = None, view: Any = None,
    ) -> None:  # fmt: skip
        self.run, self.config, self.sinks, self.stats, self.view = run, config, list(sinks), stats, view
        self.lanes = [worker.lane for worker in lanes]
        self.segmenter = segmenter
        self.info: Any = None
        self._before = (0, 0.0)
        self.ready = threading.Event()  # set once the model is loaded (or failed to load)
        self.latest: dict[str, Prediction] = {}
        self.lock = threading.Lock()
        # finished batches waiting for the sinks: room for every batch in flight, twice over
        self.completed: queue.Queue = queue.Queue(maxsize=2 * max(1, config.engine.in_flight))
        self.thread = threading.Thread(target=self._run, name="streamseg-engine", daemon=True)
        self.fanout = threading.Thread(target=self._fan_out, name="streamseg-fanout", daemon=True)

    def _run(self) -> None:
        from streamseg.engine import Segmenter
        from streamseg.sinks.base import SinkContext

        seg = None
        try:
            seg = self.segmenter or Segmenter(config=engine_config_for(self.config))
            self.stats.engine = {"backend": seg.config.backend, "precision": seg.precision, "device": str(seg.device)}
            self._before = (seg.stats.frames, seg.stats.busy_s)  # a segmenter passed in may have run before
            self.info = seg.info
            seg.draw_views([v for sink in self.sinks if (v := getattr(sink.sink, "view", None)) is not None])
            context = SinkContext(classes=tuple(seg.classes), palette=np.asarray(seg.palette, np.uint8), run=self.view)
            for sink in self.sinks:
                sink.context = context
            self.ready.set()
            for sink in self.sinks:
                while not sink.ready.wait(TICK):
                    if self.run.stop.is_set():
                        return
            self.fanout.start()
            self._loop(seg)
        except BaseException as exc:  # noqa: BLE001
            self.run.fail("engine", exc)
        finally:
            self.ready.set()
            if seg is not None:
                self._record(seg)
            if self.fanout.ident is not None:
                put_until(self.completed, END, lambda: not self.fanout.is_alive())
                self.fanout.join()
            else:
                for sink in self.sinks:
                    sink.put(END)
            self.stats.ended = time.monotonic()

    def _fan_out(self) -> None:
        """The completion stage: each finished batch to every sink, then END to each, exactly once."""
        try:
            while (preds := self._next_completed()) is not END:
                self._emit(preds)
        except BaseException as exc:  # noqa: BLE001
            self.run.fail("engine (fan-out)", exc)
        finally:
            for sink in self.sinks:
                sink.put(END)

    def _next_completed(self) -> Any:
        while True:  # the engine thread always ends the queue with END
            try:
                return self.completed.get(timeout=TICK)
            except queue.Empty:
                continue

    def _hand_on(self, preds: list[Prediction]) -> None:
        # never drops: waits for the fan-out, unless it has died (its failure stops the run)
        put_until(self.completed, preds, lambda: not self.fanout.is_alive())

    def _loop(self, seg: Any) -> None:
        cfg = self.config
        batcher = Batcher(self.lanes, batch_size=cfg.batch_size, max_wait=cfg.max_wait_ms / 1000.0)
        while not batcher.done:
            if self.run.halt.is_set():
                for lane in batcher.active:
                    lane.discard()
                break
            frames = batcher.next_batch()
            for frame in frames:
                if frame.discontinuity:
                    seg.reset_stream(frame.source_id)  # warm NMF bases do not carry over a gap
            if frames:
                seg.submit(Batch(tuple(frames)))
            for done in seg.poll(wait=False):
                self._hand_on(done)
                self._record(seg)
        for done in seg.flush():
            self._hand_on(done)

    def _record(self, seg: Any) -> None:
        """The engine stage's counters in the run's stats, after every batch (live views read them)."""
        st = seg.stats
        engine = {"frames": st.frames - self._before[0], "busy_s": round(st.busy_s - self._before[1], 4)}
        if st.compile_s:
            engine["compile_s"] = round(st.compile_s, 3)
        self.stats.stages["engine"] = engine

    def _emit(self, preds: list[Prediction]) -> None:
        for pred in preds:
            sid = pred.frame.source_id
            with self.lock:
                self.latest[sid] = pred
                self.stats.frames_out += 1
                self.stats.frames_out_per_source[sid] = self.stats.frames_out_per_source.get(sid, 0) + 1
            for sink in self.sinks:
                sink.put(pred)
            if not self.sinks:
                self.stats.latency.add(time.monotonic() - pred.frame.capture_time)
