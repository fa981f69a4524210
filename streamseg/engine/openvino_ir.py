"""OpenVINO's view of SegNeXt: the converted graph (IR), its disk cache, and the NMF kept in float32.

The model is converted once per NMF step count (a Python loop, so baked into the graph) with
dynamic batch/height/width, NHWC input (the engine's channels_last tensors go in without a copy)
and the NMF's initial bases as a second input. ``convert_model`` (~5 s) is skipped by a disk cache
of the converted IR, keyed by weights, architecture, step count and OpenVINO version.

Precision: under bf16 inference OpenVINO would also run the NMF's matmuls in bf16. The NMF nodes
are marked "keep original precision" (IR attribute ``precise``) so its matmuls and updates run in
float32, as under torch autocast; the rest runs in bf16. (OpenVINO drops the mark on the softmax
that initialises the coefficients when it rewrites that op; forcing it to f32 changed nothing
measurable, so it is left.)
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
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from streamseg.engine.device import cpu_has_native_bf16
from streamseg.errors import BackendUnavailableError

__all__ = ["NMF_PREFIX", "IRCache", "core", "cpu_bf16_supported", "default_cache_dir", "import_openvino", "openvino_available"]

log = logging.getLogger(__name__)

_IR_FORMAT = 2  # bump when the converted graph changes (wrapper, NMF marking): old cache entries are then ignored
NMF_PREFIX = "streamseg_nmf_f32/"
_INSTALL_HINT = 'install it with: pip install "streamseg[openvino]" (or use backend "torch")'


def import_openvino() -> Any:
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
        import_openvino()
    except BackendUnavailableError:
        return False
    return True


def cpu_bf16_supported() -> bool:
    """OpenVINO is installed and the CPU has native bf16 (the one bf16 test, :func:`.device.cpu_has_native_bf16`)."""
    return openvino_available() and cpu_has_native_bf16()


def default_cache_dir() -> Path:
    """``<streamseg cache>/openvino``: ``$STREAMSEG_CACHE``, ``$XDG_CACHE_HOME/streamseg`` or ``~/.cache/streamseg``."""
    from streamseg.weights.registry import cache_dir

    return cache_dir() / "openvino"


_CORE: Any = None


def core() -> Any:
    """One ``ov.Core`` per process: creating one loads the plugins, which is slow."""
    global _CORE
    if _CORE is None:
        _CORE = import_openvino().Core()
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


class IRCache:
    """The converted model per NMF step count (dynamic B/H/W): from memory, the disk cache, or converted now."""

    def __init__(self, model: nn.Module, cache_dir: Path, weights_key: str | None = None) -> None:
        """``weights_key`` names the weights (e.g. the checkpoint's SHA-256); without it the state dict is hashed."""
        self.model = model
        self.cache_dir = cache_dir
        self.ov_version = str(import_openvino().get_version())
        key = weights_key if weights_key is not None else _weights_digest(model)
        ident = f"{key}|{_structure_digest(model)}|{self.ov_version}|{_IR_FORMAT}"
        self.key = hashlib.sha256(ident.encode()).hexdigest()[:24]
        self.conversions = 0  # convert_model calls (0 when every IR came from the cache)
        self._ir: dict[int, Any] = {}

    def get(self, steps: int, channels: int, rank: int) -> Any:
        """The converted model for ``steps`` (dynamic B/H/W): from memory, the disk cache, or converted now."""
        if steps in self._ir:
            return self._ir[steps]
        t0 = time.perf_counter()
        entry = self.cache_dir / "ir" / self.key / f"steps{steps}"
        model = None
        if (entry / "model.xml").is_file():
            try:
                model = core().read_model(str(entry / "model.xml"))
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
        ov = import_openvino()
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
            _mark_precise(tmp / "model.xml", NMF_PREFIX)
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
            model = core().read_model(str(tmp / "model.xml"))
        finally:
            if tmp != entry:
                shutil.rmtree(tmp, ignore_errors=True)
        where = entry if persist else "memory only"
        log.info("openvino: converted the model (%d NMF steps) in %.1f s -> %s", steps, time.perf_counter() - t0, where)
        return model


def _name_nmf_nodes(ov_model: Any) -> int:
    """Rename the NMF's nodes ``NMF_PREFIX<i>`` so the saved IR can mark them; returns how many.

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
                if child.get_friendly_name().startswith(NMF_PREFIX) or child.get_type_name() in (
                    "Convolution",
                    "Result",
                ):
                    continue
                child.set_friendly_name(f"{NMF_PREFIX}{count}")
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
