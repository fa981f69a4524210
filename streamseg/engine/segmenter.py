"""The inference engine's public API: RGB uint8 frames in, class-id masks at each frame's size out.

``Segmenter`` loads the weights, picks the device and precision, and hands batches to one
executor (:mod:`.cpu`, :mod:`.cuda` or :mod:`.openvino`). ``segmenter(frame)`` is the synchronous
call for control loops; ``segment``/``predict`` take many frames; ``submit``/``poll``/``flush`` keep
several batches in flight where the backend can (CUDA streams, OpenVINO infer requests).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from streamseg.draw import View
from streamseg.engine.config import EngineConfig
from streamseg.engine.device import pick_device, pick_precision
from streamseg.engine.executor import Executor
from streamseg.engine.results import EngineStats
from streamseg.engine.loading import ModelInfo, load_model
from streamseg.engine.nmf_init import BasesPolicy
from streamseg.errors import ConfigError
from streamseg.types import Batch, Frame, Prediction

__all__ = ["Segmenter"]

log = logging.getLogger(__name__)

_FROM_CONFIG = object()


def resolve_backend(cfg: EngineConfig) -> EngineConfig:
    """``backend: auto`` -> OpenVINO on a CPU where it is installed (measured faster; int8 always), else torch."""
    if cfg.backend != "auto":
        return cfg
    from streamseg.engine.openvino_ir import openvino_available

    on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    openvino = cfg.precision == "int8" or (on_cpu and openvino_available() and not cfg.compile)
    return cfg.replace(backend="openvino" if openvino else "torch")


class Segmenter:
    """SegNeXt inference on RGB uint8 frames. Thread-compatible, not thread-safe: one caller at a time."""

    def __init__(
        self,
        weights: str | Path | None | object = _FROM_CONFIG,
        *,
        model: str | nn.Module | None = None,
        info: ModelInfo | None = None,
        config: EngineConfig | None = None,
        **overrides: Any,
    ) -> None:
        """``weights``: registered name, path or URL (default: the bundled demo model; None: random init).

        ``model`` is a variant name or an already built module; ``config`` an
        :class:`EngineConfig`, and keyword ``overrides`` replace its fields.
        """
        if isinstance(weights, EngineConfig):  # the first argument is the weights, not the whole config
            raise ConfigError("Segmenter(EngineConfig(...)): pass the config by keyword, Segmenter(config=EngineConfig(...))")
        cfg = (config or EngineConfig()).replace(**overrides)
        if weights is not _FROM_CONFIG:
            cfg = cfg.replace(weights=None if weights is None else str(weights))
        if isinstance(model, str):
            cfg = cfg.replace(model=model)
        self.config = cfg = resolve_backend(cfg)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)  # process-wide, asked for (e.g. one Ray actor per core); OpenVINO too
        openvino = cfg.backend == "openvino"
        self.device = pick_device("cpu" if openvino else cfg.device)
        self.precision = pick_precision(cfg.precision, self.device)
        if isinstance(model, nn.Module):
            net, self.info = model.eval(), info or ModelInfo.for_module(model, cfg.num_classes)
        else:
            net, self.info = load_model(cfg.weights, variant=cfg.model, num_classes=cfg.num_classes)
            self.info = info or self.info
        if cfg.precision == "auto" and self.info.quantized and cfg.backend == "openvino":
            self.precision = "int8"  # weights quantized ahead of time run as such
        if cfg.test_scale is not None or cfg.slide is not None:
            self.info = replace(self.info, test_scale=cfg.test_scale or self.info.test_scale, slide=cfg.slide or self.info.slide)
        self.model = net  # the unfolded reference module (training layout)
        self.bases = BasesPolicy(
            cfg.nmf_init, channels=int(net.ham_channels), rank=int(net.nmf_rank), seed=cfg.nmf_seed, warm_steps=cfg.warm_steps
        )
        self.stats = EngineStats()
        self.executor: Executor = self._executor(net)
        self.mean = torch.tensor(self.info.mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(self.info.std, dtype=torch.float32, device=self.device)
        log.info("engine: %s (%s) on %s (%s), %s, %s", self.info.variant, self.info.weights, self.device, cfg.backend,
                 self.precision, cfg)  # fmt: skip

    def _executor(self, net: nn.Module) -> Executor:
        from streamseg.engine.torch_model import TorchModel, prepare

        cfg = self.config
        if cfg.backend == "openvino":
            from streamseg.engine.openvino import OpenVINOExecutor
            from streamseg.engine.openvino_backend import OpenVINOForward

            plan = None
            if self.precision == "int8" and not self.info.quantized:
                from streamseg.engine.openvino_int8 import CalibrationPlan

                plan = CalibrationPlan(cfg.calibration, cfg.calibration_frames, self.info, self.bases.fixed_bases())
            forward = OpenVINOForward(
                prepare(net, self.device, fold=cfg.fold, low_precision=None),
                precision={"fp32": "f32", "int8": "int8"}.get(self.precision, "bf16"),
                num_requests=cfg.in_flight,
                performance_hint=cfg.openvino_hint or "LATENCY",
                calibration=plan,
                accuracy_floor=cfg.accuracy_floor,
                int8_dir=Path(self.info.quantized) if self.info.quantized else None,
                threads=cfg.threads,
            )
            if self.precision == "int8":
                forward.prepare()  # quantize and check now: a refusal surfaces here, not at the first frame
            return OpenVINOExecutor(forward, self.info, self.bases, self.stats, in_flight=cfg.in_flight)
        low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision) if not cfg.compile else None
        prepared = prepare(net, self.device, fold=cfg.fold, low_precision=low)
        if cfg.cuda_graphs == "on" and self.device.type != "cuda":
            raise ConfigError(f"cuda_graphs 'on' needs a CUDA device, this engine runs on {self.device}; set it to auto")
        torch_model = TorchModel(
            prepared, self.info, self.bases, self.stats, device=self.device, precision=self.precision, compile=cfg.compile,
            cuda_graphs=cfg.cuda_graphs,
        )  # fmt: skip
        if self.device.type == "cuda":
            from streamseg.engine.cuda import CudaExecutor

            return CudaExecutor(torch_model, in_flight=cfg.in_flight)
        from streamseg.engine.cpu import CpuExecutor

        return CpuExecutor(torch_model)

    # ------------------------------------------------------------------ public API
    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    @property
    def palette(self) -> np.ndarray:
        return self.info.palette

    @property
    def max_group(self) -> int | None:
        """Frames per forward after an out-of-memory (torch backends), else None."""
        return getattr(getattr(self.executor, "model", None), "max_group", None)

    def __call__(self, image: Any, *, stream_id: str = "0") -> np.ndarray:
        """Segment one frame synchronously (no threads): the mask at the frame's size."""
        return self.segment([image], stream_ids=[stream_id])[0].mask

    def segment(
        self,
        images: Sequence[Any],
        *,
        stream_ids: Sequence[str] | None = None,
        confidence: bool = False,
        logits: bool = False,
    ) -> list[Prediction]:
        """Segment several frames (arrays, tensors or Frames) in as few forwards as their sizes allow."""
        now = time.monotonic()
        frames = []
        for i, image in enumerate(images):
            sid = stream_ids[i] if stream_ids is not None else "0"
            frames.append(image if isinstance(image, Frame) else Frame(image=image, source_id=sid, index=i, capture_time=now))
        return self.predict(Batch(tuple(frames)), confidence=confidence, logits=logits)

    def predict(self, batch: Batch, *, confidence: bool = False, logits: bool = False) -> list[Prediction]:
        """Segment a batch synchronously (CUDA work is still overlapped inside)."""
        if not len(batch):
            return []
        self.submit(batch, confidence=confidence, logits=logits)
        done = self.flush()
        return done[-1]  # predict() is synchronous: this batch is the last one out

    def submit(self, batch: Batch, *, confidence: bool = False, logits: bool = False) -> None:
        """Start segmenting a batch; collect results in order with :meth:`poll`.

        On CPU (torch) the work happens here; elsewhere it is queued, and this only blocks when
        ``in_flight`` batches are already outstanding.
        """
        self.executor.submit(batch, confidence=confidence, logits=logits)

    def draw_views(self, views: Sequence[View]) -> bool:
        """Render these sink views with every batch on the device; True when this engine renders any.

        Only a GPU engine does: the frame and mask are already there, and the sinks then only
        encode. On a CPU the sinks' OpenCV drawing measured 15-20x faster than the same drawing in
        torch (720p: 1.6 against 23 ms), and it runs beside the model rather than inside its thread.
        """
        from streamseg.engine.cuda import CudaExecutor
        from streamseg.render import Renderer

        if not isinstance(self.executor, CudaExecutor):
            return False
        renderer = Renderer(self.palette, self.classes)
        self.executor.views = tuple(dict.fromkeys(v for v in views if renderer.can_render(v)))
        self.executor.renderer = renderer if self.executor.views else None
        return bool(self.executor.views)

    def poll(self, *, wait: bool = False) -> list[list[Prediction]]:
        """Completed batches in submission order (``wait`` blocks for the oldest one)."""
        return self.executor.poll(wait=wait)

    def flush(self) -> list[list[Prediction]]:
        """Wait for every outstanding batch."""
        return self.executor.flush()

    def reset_stream(self, stream_id: str | None = None) -> None:
        """Forget per-stream state (warm NMF bases), e.g. after a discontinuity."""
        self.bases.reset(stream_id)

    def warmup(self, size: tuple[int, int] = (512, 512), *, batch: int = 1) -> float:
        """Run once at a frame size so compile/allocation costs are paid now; returns the seconds spent."""
        start = time.perf_counter()
        image = np.zeros((size[1], size[0], 3), np.uint8)
        self.segment([image] * batch, stream_ids=[f"__warmup{i}" for i in range(batch)])
        for i in range(batch):
            self.bases.reset(f"__warmup{i}")
        return time.perf_counter() - start
