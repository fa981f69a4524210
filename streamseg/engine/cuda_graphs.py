"""CUDA graphs: a group of frames through resize, model and argmax as one launch instead of hundreds.

segnext_t is a few hundred small kernels; at batch 1 the GPU waits for Python to launch them (a
launch-bound single frame). A graph records them once per shape and replays them with one call.
One graph per (batch bucket, frame size, NMF step count): a group of ``n`` frames runs in the
smallest bucket (1, 2, 4, 8, ...) that holds it, padded with copies of its last frame. All buckets
up to a group's are captured the first time a frame size is seen, and the time is reported
(``stats.compile_s``). Each capture is checked against the eager run on the same input: a graph
whose masks differ is never used (``auto``: eager from then on, with a warning; ``on``: an error).

Outputs are cloned right after each replay, on the same stream, so a batch still being copied to
the host is never overwritten by the next replay.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from streamseg.errors import EngineError

__all__ = ["GraphCache", "GraphFn"]

log = logging.getLogger(__name__)

#: images (n, H, W, 3) uint8, bases (n, D, R) -> (mask (n, H, W), finite flag, converged bases)
GraphFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]

MAX_BUCKET = 64


def bucket_of(n: int) -> int:
    """The smallest power of two >= ``n``."""
    return 1 << max(0, (n - 1).bit_length())


@dataclass
class _Graph:
    graph: Any  # torch.cuda.CUDAGraph
    images: Tensor
    bases: Tensor
    outputs: tuple[Tensor, Tensor, Tensor]


class GraphCache:
    """Captured graphs of one model on one device; ``run`` returns None where it does not apply."""

    def __init__(self, mode: str, stats: Any) -> None:
        self.mode = mode  # "auto" or "on"
        self.stats = stats
        self.enabled = True
        self._graphs: dict[tuple[int, int, int, int | None], _Graph] = {}
        self._pool: Any = None

    def run(self, fn: GraphFn, images: Tensor, bases: Tensor, steps: int | None) -> tuple[Tensor, Tensor, Tensor] | None:
        """``fn(images, bases)`` by graph replay, or None (disabled, or a group beyond :data:`MAX_BUCKET`)."""
        n = int(images.shape[0])
        if not self.enabled or n > MAX_BUCKET:
            return None
        h, w = int(images.shape[1]), int(images.shape[2])
        key = (bucket_of(n), h, w, steps)
        if key not in self._graphs:
            self._capture_upto(fn, key, images, bases)
            if not self.enabled:
                return None
        g = self._graphs[key]
        g.images[:n].copy_(images)
        g.bases[:n].copy_(bases)
        if n < key[0]:  # pad the bucket with the last frame: its outputs are dropped
            g.images[n:].copy_(images[-1:].expand_as(g.images[n:]))
            g.bases[n:].copy_(bases[-1:].expand_as(g.bases[n:]))
        g.graph.replay()
        mask, finite, converged = g.outputs
        return mask[:n].clone(), finite.clone(), converged[:n].clone()

    def _capture_upto(self, fn: GraphFn, key: tuple[int, int, int, int | None], images: Tensor, bases: Tensor) -> None:
        bucket, h, w, steps = key
        t0 = time.perf_counter()
        captured = 0
        size = 1
        while size <= bucket:
            k = (size, h, w, steps)
            if k not in self._graphs:
                try:
                    self._graphs[k] = self._capture(fn, size, images, bases)
                except Exception as exc:  # noqa: BLE001 - a capture that fails leaves the eager path
                    self._give_up(f"capturing a CUDA graph for {size} x {w}x{h} failed: {exc}")
                    return
                captured += 1
            size *= 2
        seconds = time.perf_counter() - t0
        self.stats.compile_s += seconds
        log.info("captured %d CUDA graphs for %dx%d frames (batches up to %d) in %.2f s", captured, w, h, bucket, seconds)

    def _capture(self, fn: GraphFn, size: int, images: Tensor, bases: Tensor) -> _Graph:
        reps = -(-size // images.shape[0])
        static_images = images.repeat(reps, 1, 1, 1)[:size].clone()
        static_bases = bases.repeat(reps, 1, 1)[:size].clone()
        side = torch.cuda.Stream(images.device)
        side.wait_stream(torch.cuda.current_stream(images.device))
        with torch.cuda.stream(side):  # warm-up: kernel choices and cached tables made outside the capture
            for _ in range(2):
                eager = fn(static_images, static_bases)
        torch.cuda.current_stream(images.device).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            outputs = fn(static_images, static_bases)
        graph.replay()
        if not torch.equal(outputs[0], eager[0]):  # the one check per capture; it synchronises, at start only
            differ = float((outputs[0] != eager[0]).float().mean())
            raise EngineError(f"the graph's masks differ from the eager run on {differ:.4%} of pixels")
        return _Graph(graph, static_images, static_bases, outputs)

    def _give_up(self, why: str) -> None:
        self._graphs.clear()
        self.enabled = False
        if self.mode == "on":
            raise EngineError(f"{why}; set engine.cuda_graphs to auto or off to run without CUDA graphs")
        log.warning("%s; running without CUDA graphs (engine.cuda_graphs: off hides this warning)", why)
