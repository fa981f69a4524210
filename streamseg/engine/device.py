"""Which device and precision the engine runs on; whether this CPU has native bf16.

One answer to "does this CPU do bf16?" for every backend: the instruction sets (AVX-512-BF16 or
AMX-BF16), read from the CPU itself. oneDNN also "supports" bf16 on plain AVX-512 by emulating it,
slower than fp32, and OpenVINO lists bf16 only where it is native: asking either library gave two
answers that could disagree. Under oneDNN's ``ONEDNN_MAX_CPU_ISA`` cap (which OpenVINO's and torch's
kernels obey) the answers are the capped CPU's: ``ONEDNN_MAX_CPU_ISA=AVX2`` runs a newer CPU as an
AVX2-only one would, fp32 and int8 with the overflow fix included.
"""

from __future__ import annotations

import functools
import os
import platform
import sys

import torch

from streamseg.errors import ConfigError

__all__ = ["cpu_description", "cpu_has_native_bf16", "cpu_has_vnni", "pick_device", "pick_precision"]

_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
_VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}
# oneDNN's instruction-set levels (ONEDNN_MAX_CPU_ISA), lowest first, with the flags each one adds that
# this module asks about: under a cap, OpenVINO and torch run the kernels of that level, so we answer so too.
_ISA_LEVELS = (
    ("AVX2", frozenset()),
    ("AVX2_VNNI", frozenset({"avx_vnni"})),
    ("AVX2_VNNI_2", frozenset()),
    ("AVX512_CORE", frozenset({"avx512f"})),
    ("AVX512_CORE_VNNI", frozenset({"avx512_vnni"})),
    ("AVX512_CORE_BF16", frozenset({"avx512_bf16"})),
    ("AVX512_CORE_FP16", frozenset()),
    ("AVX512_CORE_AMX", frozenset({"amx_bf16", "amx_int8"})),
)
_ISA_ALIASES = {"AVX10_1_512": "AVX512_CORE_FP16", "AVX10_1_512_AMX": "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16": "AVX512_CORE_AMX"}


def _isa_cap() -> str:
    """oneDNN's cap as set (``DNNL_MAX_CPU_ISA`` is its older name), or ``""``."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or ""


def _capped(flags: frozenset[str]) -> frozenset[str]:
    """``flags`` less those above the oneDNN cap: how a newer CPU is run as an older one
    (docs/performance.md measures an AVX2-only CPU so); unset, unknown or ``ALL``: unchanged."""
    cap = _isa_cap().upper()
    names = [name for name, _ in _ISA_LEVELS]
    cap = _ISA_ALIASES.get(cap, cap)
    if cap not in names:
        return flags
    above = set().union(*(added for _, added in _ISA_LEVELS[names.index(cap) + 1 :]))
    return flags - above


def _cpuinfo(key: str) -> str | None:
    """The first ``key`` line of /proc/cpuinfo (Linux), or None where it cannot be read."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), None)
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags (Linux), or None where they cannot be read."""
    flags = _cpuinfo("flags")
    return None if flags is None else _capped(frozenset(flags.split()))


def cpu_description() -> str:
    """The CPU's name and what decides int8/bf16 speed, e.g. ``AMD EPYC (avx512, vnni, bf16)``: printed beside
    every benchmark figure, since the CPU behind a machine name changes."""
    name = _cpuinfo("model name") or platform.processor() or platform.machine()
    flags = _cpu_flags() or frozenset()
    features = [
        "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "",
        "vnni" if cpu_has_vnni() else "",
        "bf16" if cpu_has_native_bf16() else "",
        "amx" if "amx_int8" in flags else "",
    ]
    cap = _isa_cap()
    detail = ", ".join(f for f in features if f) + (f"; ONEDNN_MAX_CPU_ISA={cap}" if cap else "")
    return f"{name} ({detail})"


def cpu_has_native_bf16() -> bool:
    """True where the CPU executes bf16 natively (AVX-512-BF16 / AMX)."""
    flags = _cpu_flags()
    if flags is not None:
        return bool(_BF16_FLAGS & flags)
    try:  # elsewhere, oneDNN's view (it may count emulated bf16)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_has_vnni() -> bool:
    """True where the CPU has 8-bit dot products that accumulate without saturating (VNNI, AMX-INT8).

    Without them (plain AVX2/AVX-512) int8 convolutions go through 16-bit intermediates that can
    overflow: the case NNCF's overflow fix is for.
    """
    return bool(_VNNI_FLAGS & (_cpu_flags() or frozenset()))


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA where torch sees a GPU, else the CPU; asking for CUDA without one is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but this torch has no CUDA device: use device 'cpu' or 'auto'")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got {name!r}")
    return device


def pick_precision(name: str, device: torch.device) -> str:
    """``auto``: fp16 on CUDA, bf16 on a CPU with native bf16, else fp32."""
    if name == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 runs on CUDA only; on a CPU use precision bf16 (or fp32)")
    return name
