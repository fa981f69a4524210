"""OpenVINO CPU runtime: a forward with SegNeXt's ``forward_with_bases`` signature, compiled per input shape.

Why: on CPUs OpenVINO's fused graph and bf16 kernels (AMX/AVX-512) run SegNeXt faster
than PyTorch (46-49 vs 80-145 ms for torch bf16 at 512x512 on a 2-core AMX VM; docs/performance.md).
The NMF's initial bases stay a graph *input* and the converged bases an *output*, so the
engine's ``reference``/``fixed``/``warm`` policies work unchanged.

Shapes: the converted graph (:mod:`.openvino_ir`, dynamic batch/height/width) is compiled
*static* for each input shape a stream produces (reshape + compile, ~0.3 s, lazily): static
compiled models are as fast as a static conversion, and a new frame size never pays the slow
``convert_model`` again. Compiled blobs are cached by OpenVINO itself (``CACHE_DIR``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from streamseg.engine.openvino_ir import (
    IRCache,
    core,
    cpu_bf16_supported,
    default_cache_dir,
    import_openvino,
    openvino_available,
)
from streamseg.errors import ConfigError, InputError

__all__ = ["OpenVINOForward", "OpenVINOHandle", "cpu_bf16_supported", "default_cache_dir", "openvino_available"]
# cpu_bf16_supported, default_cache_dir and openvino_available are re-exported from .openvino_ir

log = logging.getLogger(__name__)

PRECISIONS = ("bf16", "f32", "int8")
HINTS = ("LATENCY", "THROUGHPUT")
# OpenVINO 2026.4's snippets tokenizer crashes (SIGSEGV) compiling the head's GroupNorm->ReLU->residual pattern
# for some static f32 shapes (e.g. 1x3x128x192); without snippets it is as fast here (measured), so they are off.
_SAFE_OPTIONS = {"SNIPPETS_MODE": "DISABLE"}


def _eval_steps(model: nn.Module) -> int:
    ham = getattr(getattr(getattr(model, "decode_head", None), "hamburger", None), "ham", None)
    return int(getattr(ham, "eval_steps", 7))


@dataclass(eq=False)
class OpenVINOHandle:
    """A started forward; hand it to :meth:`OpenVINOForward.wait` once."""

    key: tuple[int, int, int, int]
    request: Any = None
    buffers: tuple[np.ndarray, ...] = ()  # inputs and outputs the request reads/writes in place: kept alive here
    result: tuple[Tensor, Tensor] | None = None
    parts: list["OpenVINOHandle"] = field(default_factory=list)  # a split batch: one handle per frame

    def ready(self) -> bool:
        """True once :meth:`OpenVINOForward.wait` would not block (for non-blocking polls)."""
        if self.parts:
            return all(p.ready() for p in self.parts)
        return self.request is None or bool(self.request.wait_for(0))

    query = ready  # what a CUDA event calls it: executors poll either the same way

    @classmethod
    def all_of(cls, handles: list["OpenVINOHandle"]) -> "OpenVINOHandle":
        """One handle that is ready once every one of ``handles`` is (never waited on itself)."""
        return cls((0, 0, 0, 0), parts=list(handles))


@dataclass
class _Compiled:
    """One static-shape compiled model and its pool of idle infer requests."""

    compiled: Any
    idle: list[Any]
    logits_shape: tuple[int, ...]
    bases_shape: tuple[int, ...]
    in_flight: list[OpenVINOHandle] = field(default_factory=list)


class OpenVINOForward:
    """Drop-in for ``Segmenter._forward``: ``(x (B,3,H,W) f32, bases (B,D,R), steps) -> (logits f32, converged bases)``.

    Not thread-safe (like the Segmenter): one caller at a time.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        precision: str = "bf16",
        cache_dir: Path | str | None = None,
        weights_key: str | None = None,
        num_requests: int = 2,
        performance_hint: str = "LATENCY",
        split_batches: bool = True,
        calibration: Any = None,
        accuracy_floor: float = 0.99,
        int8_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        """Wrap an eval-mode SegNeXt (folded or not); nothing is converted until the first forward.

        ``precision``: ``bf16`` (f32 where OpenVINO has no bf16 kernels on this CPU), ``f32``, or ``int8``
        (quantized on ``calibration``, a :class:`~streamseg.engine.openvino_int8.CalibrationPlan`, and refused
        below ``accuracy_floor``; ``int8_dir``: a model quantized ahead of time). ``threads``: CPU
        threads for inference (None: every core).
        ``weights_key`` names the weights in the IR cache (e.g. the checkpoint's SHA-256); without
        it the state dict is hashed. ``num_requests``: forwards per input shape that may be in
        flight before :meth:`start` waits for the oldest. ``performance_hint``: ``LATENCY`` (one
        forward uses every core) or ``THROUGHPUT`` (concurrent forwards on separate cores: more
        frames/s with several in flight, each one slower). ``split_batches``: a batch of B runs as
        B one-frame requests, so one model is compiled per frame size rather than per (batch, size):
        live sources make partial batches of every size, and each compiled size holds tens of MB.
        """
        import_openvino()
        precision = {"fp32": "f32"}.get(precision, precision)  # the engine's spelling
        if precision not in PRECISIONS:
            raise ConfigError(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        hint = performance_hint.upper()
        if hint not in HINTS:
            raise ConfigError(f"performance_hint must be one of {', '.join(HINTS)}, got {performance_hint!r}")
        if model.training:
            raise ConfigError("OpenVINOForward needs an eval-mode model: call model.eval() first")
        if num_requests < 1:
            raise ConfigError(f"num_requests must be >= 1, got {num_requests}")
        if precision == "bf16" and not cpu_bf16_supported():
            log.info("openvino: this CPU has no native bf16 kernels; running in f32")
            precision = "f32"
        t0 = time.perf_counter()
        self.model = model
        self.precision = precision
        self.num_requests = num_requests
        self.split_batches = bool(split_batches)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.default_steps = _eval_steps(model)
        self.channels = int(getattr(model, "ham_channels", 0)) or None
        self.rank = int(getattr(model, "nmf_rank", 0)) or None
        self.ir = IRCache(model, self.cache_dir, weights_key)
        # the layers int8 leaves in float run in bf16 where the CPU has it, as under precision bf16
        inference = ("bf16" if cpu_bf16_supported() else "f32") if precision == "int8" else precision
        self.int8 = None
        if precision == "int8":
            from streamseg.engine.openvino_int8 import Int8Model

            if calibration is None and int8_dir is None:
                raise ConfigError("int8 needs calibration frames (or a model quantized ahead of time)")
            self.int8 = Int8Model(
                self.ir, calibration, steps=self.default_steps, floor=accuracy_floor, hint=inference, directory=int8_dir
            )
        self._graphs: Any = self.int8 or self.ir  # get(steps, channels, rank) -> the graph to compile
        self._config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": inference,
            "PERFORMANCE_HINT": hint,
            "CACHE_DIR": str(self.cache_dir / "blobs"),
            **_SAFE_OPTIONS,
        }
        if threads:
            # a share of the cores (several engines side by side, e.g. Ray actors): pinning would put every
            # engine's threads on the same first cores (two 1-thread engines: 365 ms a frame each, not 181)
            self._config.update(INFERENCE_NUM_THREADS=int(threads), ENABLE_CPU_PINNING=False)
        self._compiled: dict[tuple[int, int, int, int], _Compiled] = {}
        self.compile_s = time.perf_counter() - t0  # converting + compiling: the first-frame cost the engine reports

    def prepare(self) -> None:
        """Convert (and for int8, quantize and check) now rather than at the first frame."""
        if self.channels and self.rank:
            t0 = time.perf_counter()
            self._graphs.get(self.default_steps, self.channels, self.rank)
            self.compile_s += time.perf_counter() - t0

    @property
    def conversions(self) -> int:
        """``convert_model`` calls made by this instance (0 when every IR came from the cache)."""
        return self.ir.conversions

    # ------------------------------------------------------------------ inference
    def __call__(self, x: Tensor, bases: Tensor, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Synchronous forward (:meth:`start` then :meth:`wait`)."""
        return self.wait(self.start(x, bases, steps))

    def start(self, x: Tensor, bases: Tensor, steps: int | None = None) -> OpenVINOHandle:
        """Start a forward and return at once. ``x`` must not be modified until :meth:`wait` returns."""
        if x.dim() != 4 or x.shape[1] != 3 or bases.dim() != 3 or bases.shape[0] != x.shape[0]:
            raise InputError(
                f"expected x (B,3,H,W) and bases (B,D,R) with the same B, got {tuple(x.shape)} and {tuple(bases.shape)}"
            )
        if self.channels and self.rank and tuple(bases.shape[1:]) != (self.channels, self.rank):
            raise InputError(f"NMF bases must be (B, {self.channels}, {self.rank}), got {tuple(bases.shape)}")
        b, _, h, w = (int(s) for s in x.shape)
        steps = self.default_steps if steps is None else int(steps)
        if b > 1 and self.split_batches:
            pool = b * self.num_requests  # num_requests split batches in flight
            parts = [self._start_one(x[i : i + 1], bases[i : i + 1], (1, h, w, steps), pool) for i in range(b)]
            return OpenVINOHandle((b, h, w, steps), parts=parts)
        return self._start_one(x, bases, (b, h, w, steps), self.num_requests)

    def _start_one(self, x: Tensor, bases: Tensor, key: tuple[int, int, int, int], pool: int) -> OpenVINOHandle:
        entry = self._compiled.get(key) or self._compile(key, int(bases.shape[1]), int(bases.shape[2]))
        x_nhwc = x.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).contiguous().numpy()  # a view if channels_last
        b_np = bases.detach().to("cpu", torch.float32).contiguous().numpy()
        logits = np.empty(entry.logits_shape, np.float32)
        converged = np.empty(entry.bases_shape, np.float32)
        if not entry.idle and len(entry.in_flight) < pool:
            entry.idle.append(entry.compiled.create_infer_request())  # split batches: one request per frame
        if not entry.idle:  # every request of this shape is busy: collect the oldest so its request can be reused
            self._collect(entry.in_flight[0])
        request = entry.idle.pop()
        ov = import_openvino()
        try:
            request.set_output_tensor(0, ov.Tensor(logits, shared_memory=True))  # results land in arrays we own
            request.set_output_tensor(1, ov.Tensor(converged, shared_memory=True))
            request.start_async({0: x_nhwc, 1: b_np}, share_inputs=True)
        except BaseException:
            entry.idle.append(request)
            raise
        handle = OpenVINOHandle(key, request, (x_nhwc, b_np, logits, converged))
        entry.in_flight.append(handle)
        return handle

    def wait(self, handle: OpenVINOHandle) -> tuple[Tensor, Tensor]:
        """Block until ``handle`` is done: ``(logits (B,K,ceil(H/8),ceil(W/8)) float32, converged bases (B,D,R))``."""
        if handle.parts:
            results = [self.wait(p) for p in handle.parts]
            handle.parts = []
            return torch.cat([r[0] for r in results]), torch.cat([r[1] for r in results])
        if handle.result is None and handle.request is not None:
            self._collect(handle)
        result, handle.result = handle.result, None
        if result is None:
            raise InputError("this OpenVINO handle was already collected: call wait() once per start()")
        return result

    def _collect(self, handle: OpenVINOHandle) -> None:
        entry = self._compiled[handle.key]
        try:
            handle.request.wait()
        finally:  # back to the pool even when inference failed, so the next start() still has a request
            entry.in_flight.remove(handle)
            entry.idle.append(handle.request)
        logits, converged = handle.buffers[2], handle.buffers[3]
        handle.result = (torch.from_numpy(logits), torch.from_numpy(converged))
        handle.request, handle.buffers = None, ()

    # ------------------------------------------------------------------ conversion and compilation
    def _compile(self, key: tuple[int, int, int, int], channels: int, rank: int) -> _Compiled:
        """Reshape the step count's dynamic IR to this input and compile it (OpenVINO caches the blob)."""
        ov = import_openvino()
        b, h, w, steps = key
        t0 = time.perf_counter()
        model = self._graphs.get(steps, channels, rank).clone()
        model.reshape({0: ov.PartialShape([b, h, w, 3]), 1: ov.PartialShape([b, channels, rank])})
        compiled = self._compile_model(model)
        elapsed = time.perf_counter() - t0
        self.compile_s += elapsed
        self._check_nmf_precision(compiled)
        log.info(
            "openvino: ready for input %dx%d, batch %d, %d NMF steps (%s) in %.2f s",
            h,
            w,
            b,
            steps,
            self.precision,
            elapsed,
        )
        requests = [compiled.create_infer_request() for _ in range(self.num_requests)]
        shapes = [tuple(int(d) for d in compiled.output(i).get_shape()) for i in range(2)]
        entry = _Compiled(compiled, requests, shapes[0], shapes[1])
        self._compiled[key] = entry
        return entry

    def _compile_model(self, model: Any) -> Any:
        ov_core = core()
        if "CACHE_DIR" in self._config:
            try:
                Path(self._config["CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                blobs = self._config.pop("CACHE_DIR")
                log.warning("openvino: cannot cache compiled models in %s (%s); compiling every time", blobs, exc)
        try:
            return ov_core.compile_model(model, "CPU", self._config)
        except RuntimeError as exc:  # an OpenVINO that no longer knows an option: compile without it
            unknown = [k for k in _SAFE_OPTIONS if k in str(exc)]
            if not unknown:
                raise
            log.warning("openvino: this version rejects %s; compiling without it", ", ".join(unknown))
            for k in unknown:
                self._config.pop(k, None)
            return ov_core.compile_model(model, "CPU", self._config)

    def _check_nmf_precision(self, compiled: Any) -> None:
        """Warn when bf16 inference did not keep any matmul (the NMF) in float32: an OpenVINO that ignores the mark."""
        if self._config.get("INFERENCE_PRECISION_HINT") != "bf16":
            return
        try:
            infos = [op.get_rt_info() for op in compiled.get_runtime_model().get_ordered_ops()]
            kinds = [(str(i["layerType"].astype(str)), str(i["runtimePrecision"].astype(str))) for i in infos]
        except (RuntimeError, KeyError):
            return
        precisions = {p for layer, p in kinds if layer == "MatMul"}  # SegNeXt's only matmuls are the NMF's
        if precisions and "f32" not in precisions:
            log.warning("openvino: the NMF runs in bf16 with this OpenVINO; masks may differ slightly from torch's")
