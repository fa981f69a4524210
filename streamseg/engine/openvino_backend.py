"""OpenVINO CPU backend: a drop-in for ``Segmenter._forward`` (``forward_with_bases``).

Why: on CPUs OpenVINO's kernels (AMX/AVX-512 bf16) run SegNeXt about 3x faster than
PyTorch eager. The NMF's initial bases stay a graph *input* and the converged
bases an *output*, so the engine's ``reference``/``fixed``/``warm`` policies work
unchanged. The NMF iteration count is a Python loop in the model, so it is baked
into the graph: compiled models are keyed by ``(B, H, W, steps)`` (static shapes,
compiled lazily: a stream only ever produces a few padded sizes).

Precision: with bf16 inference OpenVINO would also run the NMF's matmuls in bf16,
which moves the converged bases by ~5e-3 and flips logits' argmax. The NMF nodes are
therefore marked "keep original precision" (the IR attribute ``precise``) so they run
in float32 like they do under torch autocast; the rest of the network runs in bf16.

Costs paid once: ``convert_model`` (~5-10 s) is skipped by a disk cache of the
converted IR (keyed by weights, architecture, input shape, steps and OpenVINO version);
compilation (~0.3 s) is cached by OpenVINO itself (``CACHE_DIR``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from streamseg.errors import BackendUnavailableError, ConfigError

__all__ = ["OpenVINOForward", "OpenVINOHandle", "openvino_available", "cpu_bf16_supported", "default_cache_dir"]

log = logging.getLogger(__name__)

PRECISIONS = ("bf16", "f32")
_IR_FORMAT = 1  # bump when the converted graph changes (wrapper, NMF marking): old cache entries are ignored
_NMF_PREFIX = "streamseg_nmf_f32/"
_INSTALL_HINT = 'install it with: pip install "streamseg[openvino]" (or use backend "torch")'


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailableError(f"the OpenVINO backend needs the openvino package ({exc}); {_INSTALL_HINT}") from exc
    return openvino


def openvino_available() -> bool:
    """True when the ``openvino`` package imports (it is an optional extra)."""
    try:
        _import_openvino()
    except BackendUnavailableError:
        return False
    return True


def cpu_bf16_supported() -> bool:
    """OpenVINO's own view: the CPU plugin lists BF16 among its optimisation capabilities (AVX-512-BF16/AMX)."""
    if not openvino_available():
        return False
    try:
        return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return False


def default_cache_dir() -> Path:
    """``<streamseg cache>/openvino`` (``$STREAMSEG_CACHE``, ``$XDG_CACHE_HOME/streamseg`` or ``~/.cache/streamseg``)."""
    from streamseg.weights.registry import cache_dir

    return cache_dir() / "openvino"


_CORE: Any = None


def _core() -> Any:
    """One ``ov.Core`` per process: creating it loads the plugins (slow) and CACHE_DIR is set per compile."""
    global _CORE
    if _CORE is None:
        _CORE = _import_openvino().Core()
    return _CORE


class _WithBases(nn.Module):
    """What gets converted: NHWC input (the engine's channels_last tensors are then views, not copies)."""

    def __init__(self, model: nn.Module, steps: int) -> None:
        super().__init__()
        self.model = model
        self.steps = steps

    def forward(self, x_nhwc: Tensor, bases: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.forward_with_bases(x_nhwc.permute(0, 3, 1, 2), bases, self.steps)


def _structure_digest(model: nn.Module) -> str:
    """Names, shapes and dtypes of the state dict: tells folded from unfolded, T from B, 19 from 150 classes."""
    items = [(k, tuple(v.shape), str(v.dtype)) for k, v in model.state_dict().items()]
    return hashlib.sha256(repr(items).encode()).hexdigest()


def weights_digest(model: nn.Module) -> str:
    """SHA-256 over every state-dict tensor's bytes (~20 ms for SegNeXt-T's 4M parameters)."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        t = value.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _eval_steps(model: nn.Module) -> int:
    ham = getattr(getattr(getattr(model, "decode_head", None), "hamburger", None), "ham", None)
    return int(getattr(ham, "eval_steps", 7))


@dataclass
class _Compiled:
    """One compiled static-shape model and its pool of infer requests."""

    compiled: Any
    idle: list[Any]
    in_flight: list["OpenVINOHandle"] = field(default_factory=list)


@dataclass(eq=False)
class OpenVINOHandle:
    """A started inference; pass it to :meth:`OpenVINOForward.wait` (results are collected once)."""

    key: tuple[int, int, int, int]
    request: Any = None
    inputs: tuple[np.ndarray, np.ndarray] | None = None  # kept alive: the request reads them in place
    result: tuple[Tensor, Tensor] | None = None


class OpenVINOForward:
    """Drop-in for ``Segmenter._forward``: ``(x NCHW f32, bases (B,D,R), steps) -> (logits f32, converged bases)``."""

    def __init__(
        self,
        model: nn.Module,
        *,
        precision: str = "bf16",
        cache_dir: Path | str | None = None,
        weights_key: str | None = None,
        num_requests: int = 2,
    ) -> None:
        """``model``: an eval-mode SegNeXt (folded or not). ``precision``: bf16 (f32 where the CPU lacks bf16) or f32.

        ``weights_key`` names the weights for the IR cache (e.g. the checkpoint's sha256);
        without it the state dict is hashed. ``num_requests``: infer requests per input shape,
        i.e. how many forwards may be in flight before :meth:`start` has to wait.
        """
        ov = _import_openvino()
        if precision not in PRECISIONS:
            raise ConfigError(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if model.training:
            raise ConfigError("OpenVINOForward needs an eval-mode model: call model.eval() first")
        if num_requests < 1:
            raise ConfigError(f"num_requests must be >= 1, got {num_requests}")
        if precision == "bf16" and not cpu_bf16_supported():
            log.info("openvino: this CPU has no native bf16 kernels; running in f32")
            precision = "f32"
        self.model = model
        self.precision = precision
        self.num_requests = num_requests
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.compile_s = 0.0
        self.default_steps = _eval_steps(model)
        self._ov_version = ov.get_version()
        t0 = time.perf_counter()
        key = weights_key if weights_key is not None else weights_digest(model)
        self._model_key = hashlib.sha256(
            f"{key}|{_structure_digest(model)}|{self._ov_version}|{_IR_FORMAT}".encode()
        ).hexdigest()[:24]
        self.compile_s += time.perf_counter() - t0
        self._compiled: dict[tuple[int, int, int, int], _Compiled] = {}
        self._config = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "CACHE_DIR": str(self.cache_dir / "blobs"),
        }

    # ------------------------------------------------------------------ inference
    def __call__(self, x: Tensor, bases: Tensor, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Synchronous forward (``start`` + ``wait``)."""
        return self.wait(self.start(x, bases, steps))

    def start(self, x: Tensor, bases: Tensor, steps: int | None = None) -> OpenVINOHandle:
        """Start a forward and return at once; up to ``num_requests`` per shape run concurrently."""
        if x.dim() != 4 or bases.dim() != 3 or bases.shape[0] != x.shape[0]:
            raise ConfigError(
                f"expected x (B,C,H,W) and bases (B,D,R) with the same B, got {tuple(x.shape)} and {tuple(bases.shape)}"
            )
        b, _, h, w = (int(s) for s in x.shape)
        key = (b, h, w, self.default_steps if steps is None else int(steps))
        entry = self._compiled.get(key) or self._compile(key, int(bases.shape[1]), int(bases.shape[2]))
        if not entry.idle:  # all requests busy: collect the oldest so its request can be reused
            oldest = entry.in_flight[0]
            self._collect(oldest)
        request = entry.idle.pop()
        x_nhwc = x.detach().to(device="cpu", dtype=torch.float32).permute(0, 2, 3, 1).contiguous().numpy()
        b_np = bases.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
        handle = OpenVINOHandle(key, request, (x_nhwc, b_np))
        request.start_async({0: x_nhwc, 1: b_np}, share_inputs=True)
        entry.in_flight.append(handle)
        return handle

    def wait(self, handle: OpenVINOHandle) -> tuple[Tensor, Tensor]:
        """Block until ``handle`` is done; ``(logits (B,K,h,w) float32, converged bases (B,D,R) float32)``."""
        if handle.result is None:
            if handle.request is None:
                raise ConfigError("this OpenVINO handle was already collected: wait() on each handle once")
            self._collect(handle)
        result, handle.result = handle.result, None
        if result is None:
            raise ConfigError("this OpenVINO handle was already collected: wait() on each handle once")
        return result

    def _collect(self, handle: OpenVINOHandle) -> None:
        """Wait for the request, copy its outputs out (the buffers are reused) and return it to the pool."""
        request = handle.request
        request.wait()
        logits = torch.from_numpy(np.array(request.get_output_tensor(0).data, copy=True))
        bases = torch.from_numpy(np.array(request.get_output_tensor(1).data, copy=True))
        handle.result, handle.request, handle.inputs = (logits, bases), None, None
        entry = self._compiled[handle.key]
        entry.in_flight.remove(handle)
        entry.idle.append(request)

    # ------------------------------------------------------------------ conversion and compilation
    def _compile(self, key: tuple[int, int, int, int], channels: int, rank: int) -> _Compiled:
        b, h, w, steps = key
        t0 = time.perf_counter()
        xml = self._ir_path(key)
        if xml.is_file():
            log.info("openvino: using the cached IR %s", xml)
        else:
            self._convert(xml, key, channels, rank)
        core = _core()
        compiled = core.compile_model(str(xml), "CPU", self._config)
        elapsed = time.perf_counter() - t0
        self.compile_s += elapsed
        self._check_nmf_precision(compiled)
        log.info(
            "openvino: ready for input %dx%dx%d (batch %d, %d NMF steps, %s) in %.2f s",
            3, h, w, b, steps, self.precision, elapsed,
        )
        requests = [compiled.create_infer_request() for _ in range(self.num_requests)]
        entry = _Compiled(compiled, requests)
        self._compiled[key] = entry
        return entry

    def _ir_path(self, key: tuple[int, int, int, int]) -> Path:
        b, h, w, steps = key
        return self.cache_dir / "ir" / self._model_key / f"b{b}_{h}x{w}_s{steps}.xml"

    def _convert(self, xml: Path, key: tuple[int, int, int, int], channels: int, rank: int) -> None:
        """``convert_model`` on the torch module, NMF nodes marked float32, saved atomically as IR."""
        ov = _import_openvino()
        b, h, w, steps = key
        t0 = time.perf_counter()
        x = torch.zeros((b, h, w, 3))
        bases = torch.full((b, channels, rank), 1.0 / channels**0.5)
        with torch.no_grad():
            ov_model = ov.convert_model(
                _WithBases(self.model, steps),
                example_input=(x, bases),
                input=[ov.PartialShape(list(x.shape)), ov.PartialShape(list(bases.shape))],
            )
        marked = _name_nmf_nodes(ov_model)
        xml.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=xml.parent))
        try:
            tmp_xml = tmp / xml.name
            ov.save_model(ov_model, str(tmp_xml), compress_to_fp16=False)
            _mark_precise(tmp_xml, _NMF_PREFIX)
            tmp_xml.with_suffix(".json").write_text(
                json.dumps({"shape": [b, 3, h, w], "steps": steps, "openvino": self._ov_version, "nmf_f32_nodes": marked})
            )
            for suffix in (".bin", ".json", ".xml"):  # the .xml last: its presence means the entry is complete
                os.replace(tmp_xml.with_suffix(suffix), xml.with_suffix(suffix))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("openvino: converted the model for input %dx%d (batch %d) in %.1f s -> %s", h, w, b, time.perf_counter() - t0, xml)

    def _check_nmf_precision(self, compiled: Any) -> None:
        """Warn when bf16 inference did not keep the NMF's matmuls in float32 (an OpenVINO that ignores the mark)."""
        if self.precision != "bf16":
            return
        try:
            ops = compiled.get_runtime_model().get_ordered_ops()
            precisions = [
                str(op.get_rt_info()["runtimePrecision"].astype(str))
                for op in ops
                if str(op.get_rt_info()["layerType"].astype(str)) == "MatMul"
            ]
        except (RuntimeError, KeyError):
            return
        if precisions and "f32" not in precisions:
            log.warning("openvino: the NMF runs in bf16 on this OpenVINO (masks may differ slightly from torch)")


def _name_nmf_nodes(ov_model: Any) -> int:
    """Rename the NMF's nodes ``_NMF_PREFIX<i>`` so the saved IR can mark them; returns how many.

    The NMF is everything computed from the bases input up to (not including) the next
    convolution (``ham_out``): the iterations, the final coefficient update and the
    reconstruction.
    """
    bases_param = ov_model.get_parameters()[1]
    stack = [bases_param]
    count = 0
    while stack:
        node = stack.pop()
        for output in node.outputs():
            for target in output.get_target_inputs():
                child = target.get_node()  # a fresh Python wrapper each time: "seen" is the new name
                if child.get_friendly_name().startswith(_NMF_PREFIX):
                    continue
                if child.get_type_name() in ("Convolution", "Result"):
                    continue
                child.set_friendly_name(f"{_NMF_PREFIX}{count}")
                count += 1
                stack.append(child)
    return count


def _mark_precise(xml: Path, prefix: str) -> None:
    """Add the ``precise`` runtime attribute (keep f32 under bf16/f16 inference) to layers named ``prefix*``.

    Python cannot create that attribute on a live node (it needs the C++ type), but the
    IR reader builds it from the XML, so it is written there.
    """
    tree = ET.parse(xml)
    for layer in tree.getroot().iter("layer"):
        if not layer.get("name", "").startswith(prefix):
            continue
        rt = layer.find("rt_info")
        if rt is None:
            rt = ET.Element("rt_info")
            layer.insert(0, rt)
        ET.SubElement(rt, "attribute", {"name": "precise", "version": "0"})
    tree.write(xml, encoding="utf-8", xml_declaration=True)
