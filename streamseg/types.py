"""The three values that flow through streamseg, one way: Frame -> Batch -> Prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Mapping

import numpy as np

if TYPE_CHECKING:
    from streamseg.draw import View

__all__ = ["Frame", "Batch", "Prediction"]


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded picture: RGB uint8 ``H x W x 3``, with where and when it came from.

    ``pts`` is the presentation timestamp in ``time_base`` units as the container or
    stream gave it (``None`` when the source has no clock, e.g. an image folder);
    ``capture_time`` is ``time.monotonic()`` when the frame entered streamseg, used
    for latency and the ``latest`` drop policy. ``discontinuity`` marks the first
    frame after a reconnect, where timestamps may jump.
    """

    image: np.ndarray
    source_id: str = "0"
    index: int = 0
    pts: int | None = None
    time_base: Fraction | None = None
    capture_time: float = 0.0
    discontinuity: bool = False

    @property
    def timestamp(self) -> float | None:
        """Stream time of the frame in seconds, or ``None`` without a stream clock."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, eq=False)
class Batch:
    """Frames the engine segments in one forward; a result never mixes them."""

    frames: tuple[Frame, ...]

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True, eq=False)
class Prediction:
    """A frame with its class-id mask at the frame's own resolution.

    ``mask`` is uint8 when the model has at most 255 classes, else uint16.
    ``confidence`` (float32 max softmax probability) and ``logits`` are only
    filled when asked for. ``timings`` holds per-stage seconds (``engine``, ...). ``rendered``
    holds what an engine that draws on its device made of the frame for the sinks, per
    :class:`~streamseg.draw.View` (encoder-ready planes; empty when the sinks draw themselves).
    """

    frame: Frame
    mask: np.ndarray
    confidence: np.ndarray | None = None
    logits: np.ndarray | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    rendered: Mapping["View", np.ndarray] = field(default_factory=dict)
