"""The CUDA executor: several batches in flight on a copy stream and a compute stream.

Frames go up at their own size through reused pinned buffers on the copy stream; the compute
stream waits for that copy, resizes them to the test scale (bit-exact with OpenCV, so the host does
no resizing), runs the model and draws the sinks' views (:mod:`streamseg.render`); the copy stream
brings back the uint8 masks, the drawn pictures and the "all finite" flags (never float logits
unless asked for). Nothing on the launch path waits for the device: the one host synchronisation
is when a finished batch is handed out, and the flags are read only then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from streamseg.engine.executor import AsyncExecutor, checked_images, frames_of, size_groups
from streamseg.engine.results import EngineStats, GroupResult, assemble, check_finite
from streamseg.engine.preprocess import Geometry
from streamseg.engine.torch_model import TorchModel
from streamseg.draw import View
from streamseg.render import Renderer
from streamseg.types import Batch, Frame, Prediction

__all__ = ["CudaExecutor"]


@dataclass
class _Pending:
    """A batch in flight: its frames, host-side outputs (filled by the copy stream) and its completion event."""

    frames: tuple[Frame, ...]
    results: list[GroupResult]
    flags: list[Tensor]  # per group: "logits are finite", copied to the host with the masks
    done: Any  # torch.cuda.Event
    started: float


class CudaExecutor(AsyncExecutor[_Pending]):
    """Up to ``in_flight`` batches queued; ``submit`` blocks only when that many are outstanding."""

    def __init__(self, model: TorchModel, *, in_flight: int = 2) -> None:
        super().__init__(in_flight)
        self.model = model
        self.stats: EngineStats = model.stats
        device = model.device
        torch.backends.cuda.matmul.allow_tf32 = model.precision != "fp32"
        torch.backends.cudnn.allow_tf32 = model.precision != "fp32"
        self._copy_stream = torch.cuda.Stream(device)
        self._compute_stream = torch.cuda.Stream(device)
        self._staging: dict[tuple[int, ...], list[Tensor]] = {}
        self._in_copy: list[tuple[Any, tuple[int, ...], Tensor]] = []
        self.views: tuple[View, ...] = ()  # what the sinks want drawn (Segmenter.draw_views)
        self.renderer: Renderer | None = None

    def submit(self, batch: Batch, *, confidence: bool = False, logits: bool = False) -> None:
        frames = frames_of(batch)
        images = checked_images(frames)
        self._make_room()
        started = time.perf_counter()
        info, results, flags = self.model.info, [], []
        for (h, w), positions in size_groups(images).items():
            geo = Geometry.for_frame(h, w, info.test_scale, divisor=1 if info.slide else 32)
            group = self._to_device([images[p] for p in positions])
            with torch.cuda.stream(self._compute_stream):
                mask, conf, raw, finite = self.model.run(group, geo, [frames[p].source_id for p in positions], confidence, logits)
                drawn = self.renderer.render(group, mask, self.views) if self.renderer is not None else {}
            results.append(GroupResult(positions, mask, conf, raw, drawn))
            flags.append(finite.reshape(1))
        done = self._to_host_async(results, flags)
        self._in_flight.add(_Pending(frames, results, flags, done, started))

    def _to_device(self, images: list[Any]) -> Tensor:
        """``(B, H, W, 3)`` uint8 on the GPU; host frames go through reused pinned buffers on the copy stream."""
        device = self.model.device
        if isinstance(images[0], torch.Tensor):
            return torch.stack([t.to(device) for t in images])
        shape = (len(images),) + tuple(images[0].shape)
        pool = self._staging.setdefault(shape, [])
        host = pool.pop() if pool else torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        np.stack(images, out=host.numpy())
        with torch.cuda.stream(self._copy_stream):
            dev = host.to(device, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(self._copy_stream)
        self._compute_stream.wait_event(ready)
        dev.record_stream(self._compute_stream)
        self._in_copy.append((ready, shape, host))  # back to the pool once the copy is done
        self._recycle_staging()
        return dev

    def _recycle_staging(self) -> None:
        keep = []
        for ready, shape, host in self._in_copy:
            if ready.query():
                self._staging.setdefault(shape, []).append(host)
            else:
                keep.append((ready, shape, host))
        self._in_copy = keep

    def _to_host_async(self, results: list[GroupResult], flags: list[Tensor]) -> Any:
        """Queue device->host copies of each group's outputs and finite flags on the copy stream, after the
        compute stream's work; the results and ``flags`` then hold host tensors, valid once ``done``."""
        computed = torch.cuda.Event()
        computed.record(self._compute_stream)
        self._copy_stream.wait_event(computed)
        with torch.cuda.stream(self._copy_stream):
            flags[:] = [self._pinned_copy(flag) for flag in flags]
            for group in results:
                group.mask = self._pinned_copy(group.mask)
                group.rendered = {view: self._pinned_copy(pictures) for view, pictures in group.rendered.items()}
                if group.confidence is not None:
                    group.confidence = self._pinned_copy(group.confidence)
                if group.logits is not None:
                    group.logits = self._pinned_copy(group.logits)
        done = torch.cuda.Event()
        done.record(self._copy_stream)
        return done

    def _pinned_copy(self, tensor: Tensor) -> Tensor:
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        tensor.record_stream(self._copy_stream)
        return host

    def _finish(self, pending: _Pending) -> list[Prediction]:
        pending.done.synchronize()  # the one host synchronisation: a result is handed out
        self._recycle_staging()
        check_finite(pending.flags)
        return assemble(pending.frames, pending.results, pending.started, self.stats, self.model.wide)
