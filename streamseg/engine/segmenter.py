"""The inference engine: RGB uint8 frames in, class-id masks at each frame's size out.

``Segmenter`` owns the model and does everything between a decoded frame and a
mask: mmseg's test-time preprocessing (batched, on the device), the forward pass
(folded, channels_last, autocast), NMF initial bases per stream, and the
resize/argmax back to the frame. ``segmenter(frame)`` is the synchronous call for
control loops; ``segment``/``predict`` take many frames; ``submit``/``poll`` keep
several batches in flight on CUDA (copy and compute streams, pinned buffers).
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from streamseg.frames import as_rgb_uint8
from streamseg.engine.nmf_init import BasesPolicy
from streamseg.engine.preprocess import Geometry, postprocess, preprocess
from streamseg.errors import ConfigError, NumericalError, OutOfMemoryError
from streamseg.types import Batch, Frame, Prediction

__all__ = ["EngineConfig", "ModelInfo", "Segmenter", "load_model", "DEFAULT_WEIGHTS"]

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "segnext_t_synth"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BACKENDS = ("torch", "openvino", "auto")


@dataclass(frozen=True)
class EngineConfig:
    """How to run the model. ``None`` values come from the weights' spec."""

    model: str | None = None  # variant; inferred from the weights when None
    weights: str | None = DEFAULT_WEIGHTS  # registered name, path or URL; None = random init (benchmarks)
    num_classes: int | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    backend: str = "torch"  # torch | openvino (CPU only: pip install "streamseg[openvino]") | auto
    nmf_init: str = "fixed"  # reference | fixed | warm
    nmf_seed: int = 0
    warm_steps: int | None = None  # NMF iterations for warm starts (None = the model's 7)
    fold: bool = True
    compile: bool = False
    test_scale: tuple[int, int] | None = None
    slide: tuple[int, int] | None = None  # (crop, stride)
    in_flight: int = 2  # batches in flight (CUDA streams, OpenVINO infer requests)
    openvino_hint: str | None = None  # LATENCY | THROUGHPUT; None: LATENCY, THROUGHPUT inside a pipeline


@dataclass(frozen=True)
class ModelInfo:
    """What the weights say about the classes and the preprocessing they expect."""

    variant: str
    classes: tuple[str, ...]
    palette: np.ndarray
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    test_scale: tuple[int, int] | None = (2048, 512)
    slide: tuple[int, int] | None = None
    nmf_rank: int = 16
    weights: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _default_palette(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    palette[0] = 0
    return palette


def load_model(
    weights: str | Path | None,
    *,
    variant: str | None = None,
    num_classes: int | None = None,
    nmf_rank: int | None = None,
) -> tuple[nn.Module, ModelInfo]:
    """Build SegNeXt for ``weights`` (name, path or URL) and load them; ``None`` = random init."""
    from streamseg.model import build_segnext, load_checkpoint
    from streamseg.model.checkpoint import describe_state_dict, map_checkpoint_keys, read_checkpoint_with_meta

    spec = None
    path = None
    meta: dict[str, Any] = {}
    if weights is not None:
        from streamseg.weights import resolve_weights

        path, spec = resolve_weights(str(weights))
    if spec is not None:
        if spec.backbone_only and num_classes is None:
            raise ConfigError(f"{spec.name} is an ImageNet backbone without a head: pass num_classes to fine-tune it")
        variant = variant or spec.variant
        if variant != spec.variant:
            raise ConfigError(f"weights {spec.name} are for {spec.variant}, not {variant}: drop the model option")
        num_classes = num_classes or spec.num_classes
        nmf_rank = nmf_rank or spec.nmf_rank
    elif path is not None:
        state, meta = read_checkpoint_with_meta(path)
        facts = describe_state_dict(map_checkpoint_keys(state))
        variant = variant or meta.get("variant") or facts.get("variant")
        num_classes = num_classes or facts.get("num_classes")
        nmf_rank = nmf_rank or meta.get("nmf_rank")
        if variant is None:
            raise ConfigError(f"cannot tell which SegNeXt size {path} holds: pass the model (e.g. segnext_t)")
    variant = variant or "segnext_t"
    num_classes = num_classes or 150
    model = build_segnext(variant, num_classes=num_classes, nmf_rank=nmf_rank or 16)
    if path is not None:
        load_checkpoint(model, path)
    else:
        log.warning("no weights given: %s is randomly initialised (only useful for benchmarks)", variant)
    if spec is not None and not spec.backbone_only and len(spec.classes) == num_classes:
        classes, palette = tuple(spec.classes), np.asarray(spec.palette, np.uint8)
    elif len(meta.get("classes") or ()) == num_classes:  # checkpoints written by `streamseg train`
        classes = tuple(meta["classes"])
        palette = np.asarray(meta.get("palette") or _default_palette(num_classes), np.uint8)
    else:
        classes, palette = tuple(f"class_{i}" for i in range(num_classes)), _default_palette(num_classes)
    test_scale = spec.test_scale if spec else meta.get("test_scale") or ModelInfo.test_scale
    info = ModelInfo(
        variant=variant,
        classes=classes,
        palette=palette,
        mean=tuple(spec.mean) if spec else ModelInfo.mean,
        std=tuple(spec.std) if spec else ModelInfo.std,
        test_scale=tuple(test_scale) if test_scale else None,
        slide=tuple(spec.slide) if spec and spec.slide else None,
        nmf_rank=nmf_rank or 16,
        weights=str(spec.name if spec else path) if weights is not None else None,
    )
    return model.eval(), info


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but this torch has no CUDA device: use device 'cpu' or 'auto'")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got {name!r}")
    return device


def cpu_supports_bf16() -> bool:
    """True where oneDNN has native bf16 kernels (AVX-512-BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _pick_precision(name: str, device: torch.device) -> str:
    if name not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_supports_bf16() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 runs on CUDA only; on a CPU use precision bf16 (or fp32)")
    return name


@dataclass
class EngineStats:
    """Counters the pipeline reports (``stages.engine``)."""

    frames: int = 0
    batches: int = 0
    busy_s: float = 0.0
    compile_s: float = 0.0  # first-call cost of torch.compile (warm-up), reported, not hidden
    shapes: set = field(default_factory=set)


@dataclass
class _Pending:
    """A CUDA batch in flight: its frames, output buffers and the event that says they are ready."""

    frames: tuple[Frame, ...]
    outputs: list[tuple[list[int], Tensor, Tensor | None, Tensor | None]]  # (frame positions, mask, conf, logits)
    done: Any
    started: float
    options: tuple[bool, bool] = (False, False)  # (confidence, logits) asked for: OpenVINO batches finish later


class _OpenVINODone:
    """The ``query``/``synchronize`` of a CUDA event, over a batch's OpenVINO handles."""

    def __init__(self, handles: list[Any]) -> None:
        self.handles = handles

    def query(self) -> bool:
        return all(h.ready() for h in self.handles)

    def synchronize(self) -> None:
        return None  # _finish_openvino waits on each handle


_FROM_CONFIG = object()


def _check_fields(overrides: dict[str, Any]) -> None:
    """Unknown engine options name the closest valid one."""
    import difflib

    for key in sorted(set(overrides) - set(EngineConfig.__dataclass_fields__)):
        close = difflib.get_close_matches(key, EngineConfig.__dataclass_fields__, n=1)
        raise ConfigError(f"unknown engine option {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))


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
        _check_fields(overrides)
        if isinstance(weights, EngineConfig):  # the first argument is the weights, not the whole config
            raise ConfigError("Segmenter(EngineConfig(...)): pass the config by keyword, Segmenter(config=EngineConfig(...))")
        cfg = replace(config or EngineConfig(), **overrides)
        if weights is not _FROM_CONFIG:
            cfg = replace(cfg, weights=None if weights is None else str(weights))
        if isinstance(model, str):
            cfg = replace(cfg, model=model)
        if cfg.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
        if cfg.backend == "auto":  # OpenVINO on a CPU where it is installed (measured faster), else torch
            from streamseg.engine.openvino_backend import openvino_available

            on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
            cfg = replace(cfg, backend="openvino" if on_cpu and openvino_available() and not cfg.compile else "torch")
        self.config = cfg
        openvino = cfg.backend == "openvino"
        if openvino and cfg.device not in ("auto", "cpu"):
            raise ConfigError(
                f"backend 'openvino' runs on the CPU, not {cfg.device!r}: use device 'cpu' or backend 'torch'"
            )
        if openvino and cfg.compile:
            raise ConfigError("compile is a torch option: drop it with backend 'openvino' (OpenVINO compiles anyway)")
        self.device = _pick_device("cpu" if openvino else cfg.device)
        self.precision = _pick_precision(cfg.precision, self.device)
        if openvino and cfg.precision == "auto":
            from streamseg.engine.openvino_backend import cpu_bf16_supported

            self.precision = "bf16" if cpu_bf16_supported() else "fp32"  # OpenVINO's view of the CPU, not oneDNN's
        if isinstance(model, nn.Module):
            net = model.eval()
            n = int(getattr(net, "num_classes", cfg.num_classes or 0))
            self.info = info or ModelInfo(
                variant=getattr(net, "variant", "custom"),
                classes=tuple(f"class_{i}" for i in range(n)),
                palette=_default_palette(n),
                nmf_rank=int(getattr(net, "nmf_rank", 16)),
            )
        else:
            net, self.info = load_model(cfg.weights, variant=cfg.model, num_classes=cfg.num_classes)
            if info is not None:
                self.info = info
        if cfg.test_scale is not None or cfg.slide is not None:
            self.info = replace(
                self.info,
                test_scale=tuple(cfg.test_scale) if cfg.test_scale else self.info.test_scale,
                slide=tuple(cfg.slide) if cfg.slide else self.info.slide,
            )
        self.model = net  # the unfolded reference module (training layout)
        net = net.to(self.device)
        if cfg.fold:
            from streamseg.engine.fold import fold_model

            net = fold_model(net)
        self.net = net.to(memory_format=torch.channels_last)
        if cfg.fold and self.precision != "fp32" and not cfg.compile and not openvino:
            # Store conv weights in the compute dtype once, instead of autocast re-casting them every
            # forward (the same rounding autocast applies; measured ~15 % faster on CPU bf16).
            low = torch.bfloat16 if self.precision == "bf16" else torch.float16
            for module in self.net.modules():
                if isinstance(module, nn.Conv2d):
                    module.to(low)
        self._forward = self.net.forward_with_bases
        if cfg.compile:
            self._forward = torch.compile(self.net.forward_with_bases, dynamic=False)
        self._ov = None
        if openvino:
            from streamseg.engine.openvino_backend import OpenVINOForward

            self._ov = OpenVINOForward(
                self.net,
                precision="f32" if self.precision == "fp32" else "bf16",
                num_requests=max(1, cfg.in_flight),
                performance_hint=cfg.openvino_hint or "LATENCY",
            )
            self._forward = self._ov
        self.bases = BasesPolicy(
            cfg.nmf_init,
            channels=int(self.net.ham_channels),
            rank=int(self.net.nmf_rank),
            seed=cfg.nmf_seed,
            warm_steps=cfg.warm_steps,
        )
        self.mean = torch.tensor(self.info.mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(self.info.std, dtype=torch.float32, device=self.device)
        self.mask_dtype = np.uint8 if self.info.num_classes <= 255 else np.uint16
        self.stats = EngineStats()
        self._cuda = self.device.type == "cuda"
        self._finite: list[Tensor] = []  # per-group "logits are finite" flags, checked when results are handed out
        self._pending: collections.deque[_Pending] = collections.deque()
        self._ready: collections.deque[list[Prediction]] = collections.deque()
        self._staging: dict[tuple[int, ...], list[Tensor]] = {}
        self._in_copy: list[tuple[Any, tuple[int, ...], Tensor]] = []
        self.max_group: int | None = None  # set after an out-of-memory: larger groups are split
        if self._cuda:
            torch.backends.cuda.matmul.allow_tf32 = self.precision != "fp32"
            torch.backends.cudnn.allow_tf32 = self.precision != "fp32"
            self._copy_stream = torch.cuda.Stream(self.device)
            self._compute_stream = torch.cuda.Stream(self.device)
        log.info(
            "engine: %s (%s) on %s (%s), %s, nmf_init=%s, fold=%s, compile=%s",
            self.info.variant,
            self.info.weights,
            self.device,
            cfg.backend,
            self.precision,
            cfg.nmf_init,
            cfg.fold,
            cfg.compile,
        )

    # ------------------------------------------------------------------ public API
    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    @property
    def palette(self) -> np.ndarray:
        return self.info.palette

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
        frames = []
        for i, image in enumerate(images):
            if isinstance(image, Frame):
                frames.append(image)
            else:
                sid = stream_ids[i] if stream_ids is not None else "0"
                frames.append(Frame(image=image, source_id=sid, index=i, capture_time=time.monotonic()))
        return self.predict(Batch(tuple(frames)), confidence=confidence, logits=logits)

    def predict(self, batch: Batch, *, confidence: bool = False, logits: bool = False) -> list[Prediction]:
        """Segment a batch synchronously (CUDA work is still overlapped inside)."""
        if not len(batch):
            return []
        self.submit(batch, confidence=confidence, logits=logits)
        out: list[Prediction] = []
        while self._pending or self._ready:
            for done in self.poll(wait=True):
                out = done  # predict() is synchronous: exactly one batch is outstanding
        return out

    def submit(self, batch: Batch, *, confidence: bool = False, logits: bool = False) -> None:
        """Start segmenting a batch; collect results in order with :meth:`poll`.

        On CPU the work happens here; on CUDA it is queued on the compute stream and
        this only blocks when ``in_flight`` batches are already outstanding.
        """
        frames = tuple(f if isinstance(f, Frame) else Frame(image=f) for f in batch.frames)
        images = [as_rgb_uint8(f.image, what=f"frame {f.source_id}/{f.index}") for f in frames]
        async_ov = self._ov is not None and not self.info.slide
        # warm starts need the previous batch's converged bases: one OpenVINO batch in flight then
        limit = 1 if async_ov and self.bases.policy == "warm" else max(1, self.config.in_flight)
        while (self._cuda or async_ov) and len(self._pending) >= limit:
            self._ready.append(self._finish(self._pending.popleft()))
        started = time.perf_counter()
        groups: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
        for pos, image in enumerate(images):
            groups[(int(image.shape[0]), int(image.shape[1]))].append(pos)
        outputs = []
        for (h, w), positions in groups.items():
            geo = self._geometry(h, w)
            stream_ids = [frames[p].source_id for p in positions]
            device_images = self._to_device(_resize_on_host([images[p] for p in positions], geo))
            if async_ov:
                outputs.append(self._start_openvino(device_images, geo, positions, stream_ids))
                continue
            mask, conf, raw = self._run_group_fitting(device_images, geo, stream_ids, confidence, logits)
            outputs.append((positions, mask, conf, raw))
        if async_ov:
            done = _OpenVINODone([handle for *_, handle in outputs])
            self._pending.append(_Pending(frames, outputs, done, started, (confidence, logits)))
        elif self._cuda:
            done = self._to_host_async(outputs)
            self._pending.append(_Pending(frames, outputs, done, started))
        else:
            self._ready.append(self._assemble(frames, outputs, started))

    def poll(self, *, wait: bool = False) -> list[list[Prediction]]:
        """Completed batches in submission order (``wait`` blocks for the oldest one)."""
        while self._pending and (wait and not self._ready or self._pending[0].done.query()):
            self._ready.append(self._finish(self._pending.popleft()))
        out = list(self._ready)
        self._ready.clear()
        return out

    def flush(self) -> list[list[Prediction]]:
        """Wait for every outstanding batch."""
        while self._pending:
            self._ready.append(self._finish(self._pending.popleft()))
        return self.poll()

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

    # ------------------------------------------------------------------ internals
    def _autocast(self):
        if self.precision == "fp32":
            return torch.autocast(device_type=self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _geometry(self, h: int, w: int) -> Geometry:
        return Geometry.for_frame(h, w, self.info.test_scale, divisor=1 if self.info.slide else 32)

    def _to_device(self, images: list[Any]) -> Tensor:
        """``(B, H, W, 3)`` uint8 on the device; CUDA copies go through reused pinned buffers on the copy stream."""
        if isinstance(images[0], torch.Tensor):
            return torch.stack([t.to(self.device) for t in images])
        if not self._cuda:
            return torch.from_numpy(np.stack(images))
        shape = (len(images),) + tuple(images[0].shape)
        pool = self._staging.setdefault(shape, [])
        host = pool.pop() if pool else torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        np.stack(images, out=host.numpy())
        with torch.cuda.stream(self._copy_stream):
            dev = host.to(self.device, non_blocking=True)
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

    def _run_group_fitting(
        self, images: Tensor, geo: Geometry, stream_ids: list[str], confidence: bool, want_logits: bool
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """:meth:`_run_group`, halving the group while the device runs out of memory.

        The smaller size is remembered (``max_group``) so later batches do not fail
        first; a single frame that does not fit is an :class:`OutOfMemoryError`.
        """
        n = int(images.shape[0])
        if self.max_group is not None and n > self.max_group:
            k = self.max_group
            parts = [
                self._run_group_fitting(images[i : i + k], geo, stream_ids[i : i + k], confidence, want_logits)
                for i in range(0, n, k)
            ]
            return tuple(None if p[0] is None else torch.cat(p) for p in zip(*parts))  # type: ignore[return-value]
        try:
            return self._run_group(images, geo, stream_ids, confidence, want_logits)
        except (RuntimeError, MemoryError) as exc:
            if not _is_out_of_memory(exc):
                raise
            if self._cuda:
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
            return self._run_group_fitting(images, geo, stream_ids, confidence, want_logits)

    @torch.inference_mode()
    def _run_group(
        self, images: Tensor, geo: Geometry, stream_ids: list[str], confidence: bool, want_logits: bool
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        stream = torch.cuda.stream(self._compute_stream) if self._cuda else _nullcontext()
        with stream:
            x = preprocess(images, geo, self.mean, self.std)
            if self.info.slide:
                logits = self._slide(x, stream_ids)
                from_padded = False
            else:
                bases, steps = self.bases.initial(stream_ids, self.device)
                key = (tuple(x.shape), steps)
                first = key not in self.stats.shapes
                t0 = time.perf_counter()
                with self._autocast():
                    logits, converged = self._forward(x, bases, steps)
                if first and self.config.compile:
                    if self._cuda:
                        torch.cuda.synchronize(self.device)
                    self.stats.compile_s += time.perf_counter() - t0
                    log.info("compiled for input %s in %.1f s", tuple(x.shape), time.perf_counter() - t0)
                self.stats.shapes.add(key)
                if self._ov is not None:
                    self.stats.compile_s = self._ov.compile_s
                self.bases.update(stream_ids, converged)
                from_padded = True
            return self._from_logits(logits, geo, from_padded, confidence, want_logits)

    def _from_logits(
        self, logits: Tensor, geo: Geometry, from_padded: bool, confidence: bool, want_logits: bool
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Mask (and confidence, raw logits) at the frame's size from the model's 1/8 logits."""
        logits = logits.float()
        ids, conf = postprocess(logits, geo, from_padded=from_padded, confidence=confidence)
        self._finite.append(torch.isfinite(logits).all())
        mask = ids.to(torch.uint8 if self.mask_dtype == np.uint8 else torch.int16)
        raw = None
        if want_logits:
            h8 = -(-geo.resized[0] // 8) if from_padded else logits.shape[2]
            w8 = -(-geo.resized[1] // 8) if from_padded else logits.shape[3]
            raw = logits[:, :, :h8, :w8]
        return mask, conf, raw

    @torch.inference_mode()
    def _start_openvino(self, images: Tensor, geo: Geometry, positions: list[int], stream_ids: list[str]) -> tuple:
        """Preprocess and start an OpenVINO forward; :meth:`_finish_openvino` collects it."""
        x = preprocess(images, geo, self.mean, self.std)
        bases, steps = self.bases.initial(stream_ids, self.device)
        handle = self._ov.start(x, bases, steps)
        self.stats.shapes.add((tuple(x.shape), steps))
        self.stats.compile_s = self._ov.compile_s
        return positions, stream_ids, geo, handle

    @torch.inference_mode()
    def _finish_openvino(self, pending: _Pending) -> list[Prediction]:
        confidence, want_logits = pending.options
        outputs = []
        for positions, stream_ids, geo, handle in pending.outputs:
            logits, converged = self._ov.wait(handle)
            self.bases.update(stream_ids, converged)
            outputs.append((positions, *self._from_logits(logits, geo, True, confidence, want_logits)))
        return self._assemble(pending.frames, outputs, pending.started)

    def _slide(self, x: Tensor, stream_ids: list[str]) -> Tensor:
        """mmseg's slide inference: overlapping crop windows, logits averaged where they overlap."""
        crop, stride = self.info.slide
        b, _, h, w = x.shape
        k = self.info.num_classes
        preds = x.new_zeros((b, k, h, w))
        count = x.new_zeros((1, 1, h, w))
        rows = max(h - crop + stride - 1, 0) // stride + 1
        cols = max(w - crop + stride - 1, 0) // stride + 1
        for r in range(rows):
            for c in range(cols):
                y2, x2 = min(r * stride + crop, h), min(c * stride + crop, w)
                y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
                window = x[:, :, y1:y2, x1:x2].contiguous(memory_format=torch.channels_last)
                bases, _ = self.bases.initial(stream_ids, self.device)
                with self._autocast():
                    out, _ = self._forward(window, bases, None)
                out = torch.nn.functional.interpolate(
                    out.float(), size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False
                )
                preds[:, :, y1:y2, x1:x2] += out
                count[:, :, y1:y2, x1:x2] += 1
        return preds / count

    def _to_host_async(self, outputs: list) -> Any:
        """Queue device->host copies of the uint8 masks (never the float logits) on the copy stream."""
        computed = torch.cuda.Event()
        computed.record(self._compute_stream)
        self._copy_stream.wait_event(computed)
        with torch.cuda.stream(self._copy_stream):
            for i, (positions, mask, conf, raw) in enumerate(outputs):
                host = torch.empty(mask.shape, dtype=mask.dtype, pin_memory=True)
                host.copy_(mask, non_blocking=True)
                mask.record_stream(self._copy_stream)
                hconf = None
                if conf is not None:
                    hconf = torch.empty(conf.shape, dtype=conf.dtype, pin_memory=True)
                    hconf.copy_(conf, non_blocking=True)
                    conf.record_stream(self._copy_stream)
                hraw = raw.to("cpu", non_blocking=True) if raw is not None else None
                outputs[i] = (positions, host, hconf, hraw, mask)  # keep the device mask alive until done
        done = torch.cuda.Event()
        done.record(self._copy_stream)
        return done

    def _finish(self, pending: _Pending) -> list[Prediction]:
        if isinstance(pending.done, _OpenVINODone):
            return self._finish_openvino(pending)
        pending.done.synchronize()  # the one host synchronisation: a result is handed out
        outputs = [(p, m, c, r) for p, m, c, r, *_ in pending.outputs]
        self._recycle_staging()
        return self._assemble(pending.frames, outputs, pending.started)

    def _check_finite(self) -> None:
        flags, self._finite = self._finite, []
        if flags and not bool(torch.stack(flags).all()):
            raise NumericalError(
                "the model produced NaN/Inf logits: the weights are broken (e.g. a corrupt or wrongly "
                "converted checkpoint) or the input is; re-check the weights file"
            )

    def _assemble(self, frames: tuple[Frame, ...], outputs: list, started: float) -> list[Prediction]:
        self._check_finite()
        elapsed = time.perf_counter() - started
        self.stats.frames += len(frames)
        self.stats.batches += 1
        self.stats.busy_s += elapsed
        result: list[Prediction | None] = [None] * len(frames)
        for positions, mask, conf, raw in outputs:
            masks = mask.numpy()
            if self.mask_dtype == np.uint16:
                masks = masks.view(np.uint16)
            confs = conf.numpy() if conf is not None else None
            raws = raw.numpy() if raw is not None else None
            for j, pos in enumerate(positions):
                result[pos] = Prediction(
                    frame=frames[pos],
                    mask=masks[j],
                    confidence=confs[j] if confs is not None else None,
                    logits=raws[j] if raws is not None else None,
                    timings={"engine": elapsed, "batch_size": float(len(frames))},
                )
        return result  # type: ignore[return-value]


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _resize_on_host(images: list[Any], geo: Geometry) -> list[Any]:
    """mmseg's own keep-ratio resize for frames in host memory: OpenCV bilinear on uint8 (mmcv.imresize).

    OpenCV's fixed-point result differs from a rounded float resize by one grey level on ~10 % of
    pixels, which moved 0.5 % of fp32 mask pixels against mmseg; resizing the same way makes the
    fp32 masks identical. Frames already on a GPU stay there and are resized by ``preprocess``.
    """
    if geo.resized == geo.frame or any(isinstance(i, Tensor) and i.device.type != "cpu" for i in images):
        return images
    size = (geo.resized[1], geo.resized[0])
    return [cv2.resize(np.asarray(i), size, interpolation=cv2.INTER_LINEAR) for i in images]


def iter_batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Consecutive chunks of ``size`` (the last may be shorter)."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _is_out_of_memory(exc: BaseException) -> bool:
    """torch's CUDA OOM, a CPU allocator failure, or Python's MemoryError."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text
