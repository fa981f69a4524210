"""SegNeXt prepared for inference in torch, and one group of same-sized frames through it.

Shared by the CPU and CUDA executors: folding, channels_last, conv weights stored in the compute
dtype, ``torch.compile``, autocast, mmseg's slide mode, and splitting a group that runs out of
memory. Device-agnostic: the CUDA executor runs it inside its compute stream.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from typing import Any, Callable

import torch
from torch import Tensor, nn

from streamseg.engine.cuda_graphs import GraphCache, GraphFn
from streamseg.engine.results import EngineStats
from streamseg.engine.loading import ModelInfo
from streamseg.engine.nmf_init import BasesPolicy
from streamseg.engine.preprocess import Geometry, masks_from_logits, preprocess, slide_logits
from streamseg.errors import OutOfMemoryError

__all__ = ["TorchModel", "prepare", "is_out_of_memory"]

log = logging.getLogger(__name__)

Forward = Callable[[Tensor, Tensor, Any], tuple[Tensor, Tensor]]


def prepare(model: nn.Module, device: torch.device, *, fold: bool, low_precision: torch.dtype | None) -> nn.Module:
    """The module that runs: on ``device``, folded (fp32-exact), channels_last, and with conv weights
    stored in ``low_precision`` once instead of autocast re-casting them every forward (the same
    rounding; measured ~15 % faster on CPU bf16). Folding works on a copy; without it ``model`` itself is
    moved and made channels_last (as before the engine split: the reference module and the one that runs
    stay one object)."""
    net = model.to(device)
    if fold:
        from streamseg.model.fold import fold_model

        net = fold_model(net)
    net = net.to(memory_format=torch.channels_last)
    if fold and low_precision is not None:
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                module.to(low_precision)
    return net


def _cat(parts: tuple[Tensor | None, ...]) -> Tensor | None:
    return None if parts[0] is None else torch.cat(parts)  # type: ignore[arg-type]


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's CUDA OOM, a CPU allocator failure, or Python's MemoryError."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


class TorchModel:
    """Runs groups of frames through the prepared module; not thread-safe (one caller at a time)."""

    def __init__(
        self,
        net: nn.Module,
        info: ModelInfo,
        bases: BasesPolicy,
        stats: EngineStats,
        *,
        device: torch.device,
        precision: str,
        compile: bool = False,
        cuda_graphs: str = "off",
    ) -> None:
        self.net, self.info, self.bases, self.stats = net, info, bases, stats
        self.device, self.precision, self.compiled = device, precision, compile
        self.graphs: GraphCache | None = None
        if device.type == "cuda" and cuda_graphs != "off" and not compile:
            self.graphs = GraphCache(cuda_graphs, stats)
        self.forward: Forward = net.forward_with_bases
        if compile:
            self.forward = torch.compile(net.forward_with_bases, dynamic=False)
        self.mean = torch.tensor(info.mean, dtype=torch.float32, device=device)
        self.std = torch.tensor(info.std, dtype=torch.float32, device=device)
        self.wide = info.num_classes > 255
        self.max_group: int | None = None  # set after an out-of-memory: larger groups are split

    def autocast(self) -> AbstractContextManager[Any]:
        if self.precision == "fp32":
            return torch.autocast(device_type=self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        # a graph replays the casts it captured: autocast's cache of cast weights must not be used there
        return torch.autocast(device_type=self.device.type, dtype=dtype, cache_enabled=self.graphs is None)

    def run(
        self, images: Tensor, geo: Geometry, stream_ids: list[str], confidence: bool, want_logits: bool
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
        """``(n, H, W, 3)`` uint8 on the device -> (mask, confidence, logits, finite flag), halving the group
        while the device runs out of memory.

        The smaller size is remembered (``max_group``) so later batches do not fail first; a single
        frame that does not fit is an :class:`OutOfMemoryError`.
        """
        n = int(images.shape[0])
        if self.max_group is not None and n > self.max_group:
            k = self.max_group
            parts = [self.run(images[i : i + k], geo, stream_ids[i : i + k], confidence, want_logits) for i in range(0, n, k)]
            masks, confs, raws, flags = zip(*parts)
            return torch.cat(masks), _cat(confs), _cat(raws), torch.stack(flags).all()
        try:
            return self._run(images, geo, stream_ids, confidence, want_logits)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if n == 1:
                h, w = geo.frame
                raise OutOfMemoryError(
                    f"out of memory segmenting one {w}x{h} frame on {self.device} "
                    f"(test scale {self.info.test_scale}): free device memory, use a smaller model "
                    "or a smaller test scale"
                ) from exc
            self.max_group = max(1, n // 2)
            log.warning("out of memory with %d frames on %s: groups of %d from now on", n, self.device, self.max_group)
            return self.run(images, geo, stream_ids, confidence, want_logits)

    def _graph_fn(self, geo: Geometry, steps: int | None) -> GraphFn:
        """What one CUDA graph records: uint8 frames and bases -> masks, finite flag, converged bases."""

        def fn(images: Tensor, bases: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            x = preprocess(images, geo, self.mean, self.std)
            with self.autocast():
                logits, converged = self.forward(x, bases, steps)
            mask, _, _, finite = masks_from_logits(logits, geo, from_padded=True, confidence=False, logits_out=False, wide=self.wide)
            return mask, finite, converged

        return fn

    @torch.inference_mode()
    def _run(
        self, images: Tensor, geo: Geometry, stream_ids: list[str], confidence: bool, want_logits: bool
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
        if self.info.slide:
            x = preprocess(images, geo, self.mean, self.std)
            crop, stride = self.info.slide

            def window(part: Tensor) -> Tensor:
                bases, _ = self.bases.initial(stream_ids, self.device)
                with self.autocast():
                    return self.forward(part, bases, None)[0]

            logits = slide_logits(x, crop, stride, self.info.num_classes, window)
            return masks_from_logits(logits, geo, from_padded=False, confidence=confidence, logits_out=want_logits, wide=self.wide)
        bases, steps = self.bases.initial(stream_ids, self.device)
        if self.graphs is not None and not (confidence or want_logits):
            replayed = self.graphs.run(self._graph_fn(geo, steps), images, bases, steps)
            if replayed is not None:
                mask, finite, converged = replayed
                self.bases.update(stream_ids, converged)
                return mask, None, None, finite
        x = preprocess(images, geo, self.mean, self.std)
        key = (tuple(x.shape), steps)
        first = key not in self.stats.shapes
        t0 = time.perf_counter()
        with self.autocast():
            logits, converged = self.forward(x, bases, steps)
        if first and self.compiled:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.stats.compile_s += time.perf_counter() - t0
            log.info("compiled for input %s in %.1f s", tuple(x.shape), time.perf_counter() - t0)
        self.stats.shapes.add(key)
        self.bases.update(stream_ids, converged)
        return masks_from_logits(logits, geo, from_padded=True, confidence=confidence, logits_out=want_logits, wide=self.wide)
