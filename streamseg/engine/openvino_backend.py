"""OpenVINO CPU backend: a drop-in for ``Segmenter._forward`` (``forward_with_bases``).

Why: on CPUs OpenVINO's fused graph and bf16 kernels (AMX/AVX-512) run SegNeXt faster
than PyTorch (46-49 vs 80-145 ms for torch bf16 at 512x512 on a 2-core AMX VM; docs/performance.md).
The NMF's initial bases stay a graph *input* and the converged bases an *output*, so the
engine's ``reference``/``fixed``/``warm`` policies work unchanged.

Shapes: the model is converted once per NMF step count (a Python loop, so baked into
the graph) with dynamic batch/height/width; each input shape a stream produces is
then compiled *static* (reshape + compile, ~0.3 s, lazily): static compiled models
are as fast as a static conversion, and a new frame size never pays the slow
``convert_model`` again.

Precision: under bf16 inference OpenVINO would also run the NMF's matmuls in bf16.
The NMF nodes are marked "keep original precision" (IR attribute ``precise``) so its
matmuls and updates run in float32, as under torch autocast; the rest runs in bf16.
(OpenVINO drops the mark on the softmax that initialises the coefficients when it
rewrites that op; forcing it to f32 changed nothing measurable, so it is left.)

First-use costs: ``convert_model`` (~5 s) is skipped by a disk cache of the
converted IR, keyed by weights, architecture, step count and OpenVINO version;
compiled blobs are cached by OpenVINO itself (``CACHE_DIR``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from streamseg.errors import BackendUnavailableError, ConfigError, InputError

__all__ = ["OpenVINOForward", "OpenVINOHandle", "cpu_bf16_supported", "default_cache_dir", "openvino_available"]

log = logging.getLogger(__name__)

PRECISIONS = ("bf16", "f32")
HINTS = ("LATENCY", "THROUGHPUT")
_IR_FORMAT = 2  # bump when the converted graph changes (wrapper, NMF marking): old cache entries are then ignored
_NMF_PREFIX = "streamseg_nmf_f32/"
_INSTALL_HINT = 'install it with: pip install "streamseg[openvino]" (or use backend "torch")'
# OpenVINO 2026.4's snippets tokenizer crashes (SIGSEGV) compiling the head's GroupNorm->ReLU->residual pattern
# for some static f32 shapes (e.g. 1x3x128x192); without snippets it is as fast here (measured), so they are off.
_SAFE_OPTIONS = {"SNIPPETS_MODE": "DISABLE"}


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the OpenVINO backend needs the openvino package ({exc}): {_INSTALL_HINT}"
        ) from exc
    return openvino


def openvino_available() -> bool:
    """True when the ``openvino`` package imports (it is an optional extra)."""
    try:
        _import_openvino()
    except BackendUnavailableError:
        return False
    return True


def cpu_bf16_supported() -> bool:
    """OpenVINO's own view: its CPU plugin lists BF16 among the optimisation capabilities (AVX-512-BF16/AMX)."""
    if not openvino_available():
        return False
    try:
        return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return False


def default_cache_dir() -> Path:
    """``<streamseg cache>/openvino``: ``$STREAMSEG_CACHE``, ``$XDG_CACHE_HOME/streamseg`` or ``~/.cache/streamseg``."""
    from streamseg.weights.registry import cache_dir

    return cache_dir() / "openvino"


_CORE: Any = None


def _core() -> Any:
    """One ``ov.Core`` per process: creating one loads the plugins, which is slow."""
    global _CORE
    if _CORE is None:
        _CORE = _import_openvino().Core()
    return _CORE


def _weights_digest(model: nn.Module) -> str:
    """SHA-256 over the state dict's names and bytes (~15 ms for SegNeXt-T's 4M parameters)."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        t = value.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(memoryview(t.numpy()).cast("B"))
    return h.hexdigest()


def _structure_digest(model: nn.Module) -> str:
    """Names, shapes and dtypes only: tells folded from unfolded, T from B, 19 from 150 classes."""
    items = [(k, tuple(v.shape), str(v.dtype)) for k, v in model.state_dict().items()]
    return hashlib.sha256(f"{type(model).__qualname__}{items}".encode()).hexdigest()


def _eval_steps(model: nn.Module) -> int:
    ham = getattr(getattr(getattr(model, "decode_head", None), "hamburger", None), "ham", None)
    return int(getattr(ham, "eval_steps", 7))


class _ChannelNormNoPermute(nn.Module):
    """:class:`~streamseg.model.mscan.ChannelLayerNorm`'s maths without its NHWC permutes.

    Torch runs those permutes as free views of a channels_last tensor; OpenVINO runs them as
    real transposes plus layout reorders (measured 2.5 ms of a 66 ms 512x512 frame). Reducing
    over the channel axis directly becomes one MVN node.
    """

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.eps = norm.eps
        self.weight = nn.Parameter(norm.weight.detach().reshape(1, -1, 1, 1), requires_grad=False)
        self.bias = nn.Parameter(norm.bias.detach().reshape(1, -1, 1, 1), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        centred = x - x.mean(1, keepdim=True)
        var = (centred * centred).mean(1, keepdim=True)
        return centred * torch.rsqrt(var + self.eps) * self.weight + self.bias


def _for_export(model: nn.Module) -> nn.Module:
    """A float32 copy of ``model`` with the graph changes that make OpenVINO faster (same maths)."""
    from streamseg.model.mscan import ChannelLayerNorm

    model = copy.deepcopy(model).float()  # e.g. conv weights stored in bf16 for torch: the IR is float32
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, ChannelLayerNorm):
                setattr(parent, name, _ChannelNormNoPermute(child))
    return model


class _WithBases(nn.Module):
    """What gets converted: NHWC input, so the engine's channels_last tensors go in without a copy."""

    def __init__(self, model: nn.Module, steps: int) -> None:
        super().__init__()
        self.model = model
        self.steps = steps

    def forward(self, x_nhwc: Tensor, bases: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.forward_with_bases(x_nhwc.permute(0, 3, 1, 2), bases, self.steps)


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
    ) -> None:
        """Wrap an eval-mode SegNeXt (folded or not); nothing is converted until the first forward.

        ``precision``: ``bf16`` (f32 where OpenVINO has no bf16 kernels on this CPU) or ``f32``.
        ``weights_key`` names the weights in the IR cache (e.g. the checkpoint's SHA-256); without
        it the state dict is hashed. ``num_requests``: forwards per input shape that may be in
        flight before :meth:`start` waits for the oldest. ``performance_hint``: ``LATENCY`` (one
        forward uses every core) or ``THROUGHPUT`` (concurrent forwards on separate cores: more
        frames/s with several in flight, each one slower). ``split_batches``: a batch of B runs as
        B one-frame requests, so one model is compiled per frame size rather than per (batch, size):
        live sources make partial batches of every size, and each compiled size holds tens of MB.
        """
        ov = _import_openvino()
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
        self.ov_version = str(ov.get_version())
        key = weights_key if weights_key is not None else _weights_digest(model)
        ident = f"{key}|{_structure_digest(model)}|{self.ov_version}|{_IR_FORMAT}"
        self._model_key = hashlib.sha256(ident.encode()).hexdigest()[:24]
        self._config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": hint,
            "CACHE_DIR": str(self.cache_dir / "blobs"),
            **_SAFE_OPTIONS,
        }
        self._ir: dict[int, Any] = {}  # steps -> ov.Model with dynamic B/H/W
        self._compiled: dict[tuple[int, int, int, int], _Compiled] = {}
        self.conversions = 0  # convert_model calls made by this instance (0 when every IR came from the cache)
        self.compile_s = time.perf_counter() - t0  # converting + compiling: the first-frame cost the engine reports

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
        ov = _import_openvino()
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
        ov = _import_openvino()
        b, h, w, steps = key
        t0 = time.perf_counter()
        model = self._ir_model(steps, channels, rank).clone()
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
        core = _core()
        if "CACHE_DIR" in self._config:
            try:
                Path(self._config["CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                blobs = self._config.pop("CACHE_DIR")
                log.warning("openvino: cannot cache compiled models in %s (%s); compiling every time", blobs, exc)
        try:
            return core.compile_model(model, "CPU", self._config)
        except RuntimeError as exc:  # an OpenVINO that no longer knows an option: compile without it
            unknown = [k for k in _SAFE_OPTIONS if k in str(exc)]
            if not unknown:
                raise
            log.warning("openvino: this version rejects %s; compiling without it", ", ".join(unknown))
            for k in unknown:
                self._config.pop(k, None)
            return core.compile_model(model, "CPU", self._config)

    def _ir_model(self, steps: int, channels: int, rank: int) -> Any:
        """The converted model for ``steps`` (dynamic B/H/W): from memory, the disk cache, or converted now."""
        if steps in self._ir:
            return self._ir[steps]
        t0 = time.perf_counter()
        entry = self.cache_dir / "ir" / self._model_key / f"steps{steps}"
        model = None
        if (entry / "model.xml").is_file():
            try:
                model = _core().read_model(str(entry / "model.xml"))
                log.info("openvino: loaded the cached IR %s in %.2f s", entry, time.perf_counter() - t0)
            except RuntimeError as exc:  # a damaged entry (disk full, partial copy): replace it
                log.warning("openvino: the cached IR %s cannot be read; converting the model again", entry)
                log.debug("openvino: reading %s failed: %s", entry, exc)
                shutil.rmtree(entry, ignore_errors=True)
        if model is None:
            model = self._convert(entry, steps, channels, rank)
        self._ir[steps] = model
        return model

    def _convert(self, entry: Path, steps: int, channels: int, rank: int) -> Any:
        """``convert_model`` on the torch module, NMF nodes marked float32, saved as IR and read back.

        The IR is written to a private directory renamed into place, so concurrent processes
        never see half an entry; if another process got there first, its entry is used.
        """
        ov = _import_openvino()
        t0 = time.perf_counter()
        example = (torch.zeros((1, 64, 64, 3)), torch.full((1, channels, rank), channels**-0.5))
        shapes = [ov.PartialShape([-1, -1, -1, 3]), ov.PartialShape([-1, channels, rank])]
        module = _for_export(self.model)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants: expected
            warnings.simplefilter("ignore", DeprecationWarning)  # torch's notice that TorchScript tracing is legacy
            converted = ov.convert_model(_WithBases(module, steps), example_input=example, input=shapes)
        self.conversions += 1
        marked = _name_nmf_nodes(converted)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
            persist = True
        except OSError as exc:
            log.warning("openvino: cannot write the IR cache in %s (%s); it is converted again next time", entry, exc)
            tmp, persist = Path(tempfile.mkdtemp(prefix="streamseg-openvino-")), False
        try:
            ov.save_model(converted, str(tmp / "model.xml"), compress_to_fp16=False)  # f32 weights; bf16 is a hint
            _mark_precise(tmp / "model.xml", _NMF_PREFIX)
            meta = {"steps": steps, "openvino": self.ov_version, "format": _IR_FORMAT, "nmf_f32_nodes": marked}
            (tmp / "meta.json").write_text(json.dumps(meta))
            if persist:
                try:
                    os.rename(tmp, entry)
                except OSError:  # another process saved the same entry meanwhile: use that one
                    log.debug("openvino: %s appeared meanwhile; using it", entry)
                else:
                    tmp = entry
            # read back: the IR reader is what turns the marks into "keep float32" attributes
            model = _core().read_model(str(tmp / "model.xml"))
        finally:
            if tmp != entry:
                shutil.rmtree(tmp, ignore_errors=True)
        where = entry if persist else "memory only"
        log.info("openvino: converted the model (%d NMF steps) in %.1f s -> %s", steps, time.perf_counter() - t0, where)
        return model

    def _check_nmf_precision(self, compiled: Any) -> None:
        """Warn when bf16 inference did not keep any matmul (the NMF) in float32: an OpenVINO that ignores the mark."""
        if self.precision != "bf16":
            return
        try:
            infos = [op.get_rt_info() for op in compiled.get_runtime_model().get_ordered_ops()]
            kinds = [(str(i["layerType"].astype(str)), str(i["runtimePrecision"].astype(str))) for i in infos]
        except (RuntimeError, KeyError):
            return
        precisions = {p for layer, p in kinds if layer == "MatMul"}  # SegNeXt's only matmuls are the NMF's
        if precisions and "f32" not in precisions:
            log.warning("openvino: the NMF runs in bf16 with this OpenVINO; masks may differ slightly from torch's")


def _name_nmf_nodes(ov_model: Any) -> int:
    """Rename the NMF's nodes ``_NMF_PREFIX<i>`` so the saved IR can mark them; returns how many.

    The NMF is everything computed from the bases input up to (not including) the next
    convolution (``ham_out``): the iterations, the final coefficient update and the
    reconstruction.
    """
    stack = [ov_model.get_parameters()[1]]
    count = 0
    while stack:
        node = stack.pop()
        for output in node.outputs():
            for target in output.get_target_inputs():
                child = target.get_node()  # a fresh Python wrapper every time: the new name is the "seen" mark
                if child.get_friendly_name().startswith(_NMF_PREFIX) or child.get_type_name() in (
                    "Convolution",
                    "Result",
                ):
                    continue
                child.set_friendly_name(f"{_NMF_PREFIX}{count}")
                count += 1
                stack.append(child)
    return count


def _mark_precise(xml: Path, prefix: str) -> None:
    """Give layers named ``prefix*`` the ``precise`` runtime attribute (keep f32 under bf16/f16 inference).

    Python cannot attach that attribute to a live node (it is a C++ type), but the IR
    reader builds it from the XML, so it is written there.
    """
    tree = ET.parse(xml)
    for layer in tree.getroot().iter("layer"):
        if not layer.get("name", "").startswith(prefix):
            continue
        rt = layer.find("rt_info")
        if rt is None:
            rt = ET.SubElement(layer, "rt_info")
        ET.SubElement(rt, "attribute", {"name": "precise", "version": "0"})
    tree.write(xml, encoding="utf-8", xml_declaration=True)
