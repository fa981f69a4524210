"""Fixtures for the sink tests: a SinkContext, predictions from real decoded videos, and a real Xvfb display.

Helpers are handed out as fixtures (``make_prediction``, ``probe_video``, ...):
with ``--import-mode=importlib`` the name ``conftest`` means ``tests/conftest.py``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from streamseg.datasets import make_palette
from streamseg.sinks.base import SinkContext
from streamseg.types import Frame, Prediction

CLASSES = ("background", "road", "person", "car")
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


@pytest.fixture
def context() -> SinkContext:
    return SinkContext(classes=CLASSES, palette=PALETTE)


def _big_context(n: int = 300) -> SinkContext:
    """More than 255 classes: masks are uint16."""
    return SinkContext(classes=tuple(f"c{i}" for i in range(n)), palette=make_palette(n))


def _prediction(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    index: int = 0,
    source_id: str = "0",
    pts: int | None = None,
    time_base: Fraction | None = None,
    discontinuity: bool = False,
) -> Prediction:
    if mask is None:
        mask = np.zeros(image.shape[:2], np.uint8)
    frame = Frame(
        image=np.ascontiguousarray(image),
        source_id=source_id,
        index=index,
        pts=pts,
        time_base=time_base,
        discontinuity=discontinuity,
    )
    return Prediction(frame=frame, mask=mask)


def _stripes_mask(h: int, w: int, classes: int = 4) -> np.ndarray:
    """Vertical bands of class ids 0..classes-1 (each band is easy to find again in a decoded video)."""
    return (np.arange(w)[None, :] * classes // w).repeat(h, 0).astype(np.uint8)


def _predictions_from_video(path: Path, *, source_id: str = "0") -> list[Prediction]:
    """Decode a real video with PyAV into Predictions carrying the file's own pts and time base."""
    import av

    out = []
    with av.open(str(path)) as container:
        for i, vf in enumerate(container.decode(video=0)):
            img = vf.to_ndarray(format="rgb24")
            out.append(
                _prediction(
                    img,
                    _stripes_mask(*img.shape[:2]),
                    index=i,
                    source_id=source_id,
                    pts=vf.pts,
                    time_base=vf.time_base,
                )
            )
    return out


def _probe(path: Path) -> dict:
    """Decoded frame count, pts (in seconds) and the container's duration (seconds) of a video."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        duration = container.duration / 1e6 if container.duration else None
        return {
            "frames": len(frames),
            "times": [float(f.pts * f.time_base) for f in frames],
            "duration": duration,
            "size": (frames[0].width, frames[0].height) if frames else None,
            "images": [f.to_ndarray(format="rgb24") for f in frames],
        }


@pytest.fixture
def palette() -> np.ndarray:
    return PALETTE


@pytest.fixture
def big_context():
    """``big_context(n)``: a SinkContext with n (> 255) classes."""
    return _big_context


@pytest.fixture
def make_prediction():
    """``make_prediction(image, mask=None, *, index, source_id, pts, time_base, discontinuity)``."""
    return _prediction


@pytest.fixture
def stripes():
    """``stripes(h, w, classes=4)``: vertical bands of class ids."""
    return _stripes_mask


@pytest.fixture
def video_predictions():
    """``video_predictions(path, source_id="0")``: Predictions decoded from a real video file."""
    return _predictions_from_video


@pytest.fixture
def probe_video():
    """``probe_video(path)``: frames, times (s), duration (s), size and images of a video file."""
    return _probe

