"""The sink protocol: ``open(context) / write(prediction) / close()``.

Each sink runs in its own thread with its own bounded queue; that thread calls
all three methods, so a sink may keep thread-affine handles without locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from streamseg.types import Prediction


@dataclass(frozen=True, eq=False)
class SinkContext:
    """What every sink may need to know about the model's classes."""

    classes: tuple[str, ...]
    palette: np.ndarray  # (num_classes, 3) uint8 RGB

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@runtime_checkable
class Sink(Protocol):
    """Consumes Predictions (from one or several sources, tagged by ``frame.source_id``).

    ``close()`` must leave outputs valid (a playable video, complete PNGs) even
    after an error or an interrupt, and must be safe to call after a failed ``open``.
    """

    name: str

    def open(self, context: SinkContext) -> None: ...

    def write(self, prediction: Prediction) -> None: ...

    def close(self) -> None: ...
