"""Device and precision choice, and the one bf16 test every backend uses."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from streamseg.engine import device as device_module
from streamseg.engine.device import cpu_has_native_bf16, pick_device, pick_precision
from streamseg.errors import ConfigError

CPU = torch.device("cpu")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_native_bf16_is_what_the_cpu_flags_say(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    device_module._cpu_flags.cache_clear()
    # uncached: no answer outlives this environment
    monkeypatch.setattr(device_module, "_cpu_flags", device_module._cpu_flags.__wrapped__)
    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_a_onednn_isa_cap_hides_the_instructions_its_kernels_will_not_use(monkeypatch):
    flags = frozenset({"avx2", "avx512f", "avx_vnni", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"})
    base = frozenset({"avx2"})
    cases = {
        "avx2": base,
        "AVX2_VNNI": base | {"avx_vnni"},
        "AVX512_CORE_VNNI": base | {"avx512f", "avx_vnni", "avx512_vnni"},
        "AVX512_CORE_BF16": flags - {"amx_bf16", "amx_int8"},
        "AVX10_1_512_AMX": flags,
        "ALL": flags,
        "no-such-isa": flags,
    }
    for cap, expected in cases.items():
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert device_module._capped(flags) == expected, cap
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")  # oneDNN's older name for the same variable
    assert device_module._capped(flags) == base


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_under_an_avx2_cap_the_engine_runs_as_an_avx2_cpu_would():
    code = (
        "import torch; from streamseg.engine.device import *;"
        "print(cpu_has_native_bf16(), cpu_has_vnni(), pick_precision('auto', torch.device('cpu')));"
        "print(cpu_description())"
    )
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    answers, description = out.splitlines()
    assert answers.split() == ["False", "False", "fp32"]
    assert "avx512" not in description and "vnni" not in description and "bf16" not in description
    assert description.endswith("; ONEDNN_MAX_CPU_ISA=AVX2)")


def test_auto_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert pick_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    assert pick_precision("auto", CPU) == "fp32"
    assert pick_precision("auto", torch.device("cuda")) == "fp16"
    assert pick_precision("bf16", CPU) == "bf16"
    with pytest.raises(ConfigError, match="fp16 runs on CUDA only"):
        pick_precision("fp16", CPU)


def test_devices():
    assert pick_device("cpu") == CPU
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            pick_device("cuda:0")
