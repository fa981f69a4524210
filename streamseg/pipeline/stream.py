"""``for pred in streamseg.stream("in.mp4"): ...`` — a pipeline as a generator."""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterator, Sequence

from streamseg.engine.config import EngineConfig
from streamseg.pipeline.config import PipelineConfig, SinkConfig, SourceConfig
from streamseg.pipeline.core import Pipeline
from streamseg.pipeline.batcher import TICK, put_until
from streamseg.sinks.base import BaseSink
from streamseg.types import Prediction

__all__ = ["stream"]


class _QueueSink(BaseSink):
    """Hands predictions to :func:`stream`'s generator (a bounded queue read by the caller)."""

    def __init__(self, maxsize: int = 8) -> None:
        super().__init__("stream")
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.cancelled = threading.Event()  # set when the consumer left the loop

    def _write(self, prediction: Prediction) -> bool:
        # blocking here is backpressure from the consumer
        return put_until(self.queue, prediction, self.cancelled.is_set)


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
    engine = EngineConfig().replace(**engine_options)
    if weights is not None:
        engine = engine.replace(weights=weights)
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=s) for s in srcs if isinstance(s, str)],
        sinks=[SinkConfig(spec=s) for s in sinks if isinstance(s, str)],
        engine=engine,
        batch_size=batch_size,
        progress=False,
    )
    out = _QueueSink()
    objects = [s for s in sinks if not isinstance(s, str)]
    pipe = Pipeline(cfg, sources=[s for s in srcs if not isinstance(s, str)], sinks=[out, *objects])
    pipe.start()
    finished = False
    try:
        while True:
            try:
                item = out.queue.get(timeout=TICK)
            except queue.Empty:
                if not pipe.running() and out.queue.empty():
                    break
                continue
            yield item
        finished = True
    finally:
        pipe.stop()
        out.cancelled.set()
        pipe.join(raise_errors=finished or pipe.failed)
