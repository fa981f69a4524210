"""A web sink opened on a free port, written to by hand (no pipeline): ``web_sink(address, run, **options)``."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import pytest

from streamseg.sinks.base import RunView, SinkContext
from streamseg.sinks.web import WebSink

CLASSES = ("background", "road", "person", "car")
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


@pytest.fixture
def web_sink() -> Iterator[Callable[..., WebSink]]:
    opened: list[WebSink] = []

    def make(address: str = "127.0.0.1:0", run: RunView | None = None, **options: Any) -> WebSink:
        sink = WebSink(address, **options)
        opened.append(sink)
        sink.open(SinkContext(classes=CLASSES, palette=PALETTE, run=run))
        return sink

    yield make
    for sink in opened:
        sink.close()
