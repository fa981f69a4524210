"""The CPU executor: torch, synchronously (a batch is segmented inside ``submit``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from streamseg.engine.executor import checked_images, frames_of, size_groups
from streamseg.engine.results import EngineStats, GroupResult, assemble, check_finite
from streamseg.engine.preprocess import Geometry, resize_on_host
from streamseg.engine.torch_model import TorchModel
from streamseg.types import Batch, Prediction

__all__ = ["CpuExecutor", "stack_on"]


def stack_on(images: list[Any], device: torch.device) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 on ``device`` from host arrays (no copy on the CPU but the stack) or tensors."""
    if isinstance(images[0], torch.Tensor):
        return torch.stack([t.to(device) for t in images])
    return torch.from_numpy(np.stack(images)).to(device)


class CpuExecutor:
    """Runs each batch at once; ``poll`` hands back what ``submit`` finished."""

    def __init__(self, model: TorchModel) -> None:
        self.model = model
        self.stats: EngineStats = model.stats
        self._ready: list[list[Prediction]] = []

    def submit(self, batch: Batch, *, confidence: bool = False, logits: bool = False) -> None:
        frames = frames_of(batch)
        images = checked_images(frames)
        started = time.perf_counter()
        info, results, flags = self.model.info, [], []
        for (h, w), positions in size_groups(images).items():
            geo = Geometry.for_frame(h, w, info.test_scale, divisor=1 if info.slide else 32)
            group = stack_on(resize_on_host([images[p] for p in positions], geo), self.model.device)
            mask, conf, raw, finite = self.model.run(group, geo, [frames[p].source_id for p in positions], confidence, logits)
            results.append(GroupResult(positions, mask, conf, raw))
            flags.append(finite)
        check_finite(flags)
        self._ready.append(assemble(frames, results, started, self.stats, self.model.wide))

    def poll(self, *, wait: bool = False) -> list[list[Prediction]]:
        out, self._ready = self._ready, []
        return out

    def flush(self) -> list[list[Prediction]]:
        return self.poll()
