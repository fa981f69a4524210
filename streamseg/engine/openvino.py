"""The OpenVINO executor: batches run as asynchronous infer requests on the CPU.

Pre- and post-processing stay in torch (the same code as the torch executors, so masks agree);
only the network runs in OpenVINO (:mod:`.openvino_backend`). ``warm`` NMF starts need the previous
batch's converged bases, so that policy keeps one batch in flight. Slide inference runs
synchronously, window after window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from streamseg.engine.cpu import stack_on
from streamseg.engine.executor import AsyncExecutor, checked_images, frames_of, size_groups
from streamseg.engine.results import EngineStats, GroupResult, assemble, check_finite
from streamseg.engine.loading import ModelInfo
from streamseg.engine.nmf_init import BasesPolicy
from streamseg.engine.openvino_backend import OpenVINOForward, OpenVINOHandle
from streamseg.engine.preprocess import Geometry, masks_from_logits, preprocess, resize_on_host, slide_logits
from streamseg.types import Batch, Frame, Prediction

__all__ = ["OpenVINOExecutor"]

_CPU = torch.device("cpu")


@dataclass
class _Group:
    """One group's forward in flight."""

    positions: list[int]
    stream_ids: list[str]
    geo: Geometry
    handle: OpenVINOHandle


@dataclass
class _Pending:
    """A batch in flight: its groups' handles and what the caller asked for."""

    frames: tuple[Frame, ...]
    groups: list[_Group]
    done: OpenVINOHandle  # all the groups' handles: done.query() once every one is
    started: float
    confidence: bool
    logits: bool


class OpenVINOExecutor(AsyncExecutor[_Pending]):
    """Up to ``in_flight`` batches of infer requests outstanding (one under the ``warm`` NMF policy)."""

    def __init__(self, forward: OpenVINOForward, info: ModelInfo, bases: BasesPolicy, stats: EngineStats, *, in_flight: int = 2) -> None:
        super().__init__(1 if bases.policy == "warm" else in_flight)
        self.forward, self.info, self.bases, self.stats = forward, info, bases, stats
        self.mean = torch.tensor(info.mean, dtype=torch.float32)
        self.std = torch.tensor(info.std, dtype=torch.float32)
        self.wide = info.num_classes > 255

    @torch.inference_mode()
    def submit(self, batch: Batch, *, confidence: bool = False, logits: bool = False) -> None:
        frames = frames_of(batch)
        images = checked_images(frames)
        self._make_room()
        started = time.perf_counter()
        groups, done, flags = [], [], []  # done: groups finished synchronously (slide inference)
        for (h, w), positions in size_groups(images).items():
            geo = Geometry.for_frame(h, w, self.info.test_scale, divisor=1 if self.info.slide else 32)
            x = preprocess(stack_on(resize_on_host([images[p] for p in positions], geo), _CPU), geo, self.mean, self.std)
            stream_ids = [frames[p].source_id for p in positions]
            if self.info.slide:
                mask, conf, raw, finite = self._slide(x, geo, stream_ids, confidence, logits)
                done.append(GroupResult(positions, mask, conf, raw))
                flags.append(finite)
                continue
            bases, steps = self.bases.initial(stream_ids, _CPU)
            groups.append(_Group(positions, stream_ids, geo, self.forward.start(x, bases, steps)))
            self.stats.shapes.add((tuple(x.shape), steps))
            self.stats.compile_s = self.forward.compile_s
        if done:
            check_finite(flags)
            self._ready.append(assemble(frames, done, started, self.stats, self.wide))
        else:
            done = OpenVINOHandle.all_of([g.handle for g in groups])
            self._in_flight.add(_Pending(frames, groups, done, started, confidence, logits))

    @torch.inference_mode()
    def _finish(self, pending: _Pending) -> list[Prediction]:
        results, flags = [], []
        for g in pending.groups:
            out, converged = self.forward.wait(g.handle)
            self.bases.update(g.stream_ids, converged)
            mask, conf, raw, finite = masks_from_logits(
                out, g.geo, from_padded=True, confidence=pending.confidence, logits_out=pending.logits, wide=self.wide
            )
            results.append(GroupResult(g.positions, mask, conf, raw))
            flags.append(finite)
        check_finite(flags)
        return assemble(pending.frames, results, pending.started, self.stats, self.wide)

    def _slide(
        self, x: Tensor, geo: Geometry, stream_ids: list[str], confidence: bool, logits: bool
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
        """mmseg's slide inference, window after window (synchronous)."""
        crop, stride = self.info.slide  # type: ignore[misc]

        def window(part: Tensor) -> Tensor:
            return self.forward(part, self.bases.initial(stream_ids, _CPU)[0], None)[0]

        out = slide_logits(x, crop, stride, self.info.num_classes, window)
        return masks_from_logits(out, geo, from_padded=False, confidence=confidence, logits_out=logits, wide=self.wide)
