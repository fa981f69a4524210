"""What an executor hands back: per-group outputs, the NaN check, Predictions in batch order, and the counters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from streamseg.errors import NumericalError
from streamseg.types import Frame, Prediction

__all__ = ["EngineStats", "GroupResult", "assemble", "check_finite"]


@dataclass
class EngineStats:
    """Counters the pipeline reports (``stages.engine``)."""

    frames: int = 0
    batches: int = 0
    busy_s: float = 0.0
    compile_s: float = 0.0  # first-call cost of torch.compile or OpenVINO (warm-up), reported, not hidden
    shapes: set = field(default_factory=set)


@dataclass
class GroupResult:
    """One group of same-sized frames of a batch: where they sit in the batch and their outputs."""

    positions: list[int]
    mask: Tensor  # (n, H, W) uint8, or int16 holding uint16 ids
    confidence: Tensor | None = None
    logits: Tensor | None = None
    rendered: dict[Any, Tensor] = field(default_factory=dict)  # View -> (n, ...) pictures drawn on the device


def check_finite(flags: list[Tensor]) -> None:
    """Raise NumericalError if any group's logits held NaN/Inf (flags are read once, when results are handed out)."""
    if flags and not bool(torch.stack(flags).all()):
        raise NumericalError(
            "the model produced NaN/Inf logits: the weights are broken (e.g. a corrupt or wrongly "
            "converted checkpoint) or the input is; re-check the weights file"
        )


def assemble(
    frames: Sequence[Frame], results: list[GroupResult], started: float, stats: EngineStats, wide: bool
) -> list[Prediction]:
    """Predictions in the batch's order from host-side group results; counts the batch in ``stats``."""
    elapsed = time.perf_counter() - started
    stats.frames += len(frames)
    stats.batches += 1
    stats.busy_s += elapsed
    out: list[Prediction | None] = [None] * len(frames)
    for group in results:
        masks = group.mask.numpy()
        if wide:
            masks = masks.view(np.uint16)
        confs = group.confidence.numpy() if group.confidence is not None else None
        raws = group.logits.numpy() if group.logits is not None else None
        rendered = {view: pictures.numpy() for view, pictures in group.rendered.items()}
        for j, pos in enumerate(group.positions):
            out[pos] = Prediction(
                frame=frames[pos],
                mask=masks[j],
                confidence=confs[j] if confs is not None else None,
                logits=raws[j] if raws is not None else None,
                timings={"engine": elapsed, "batch_size": float(len(frames))},
                rendered={view: pictures[j] for view, pictures in rendered.items()},
            )
    return out  # type: ignore[return-value]
