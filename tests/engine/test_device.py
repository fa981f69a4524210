"""Device and precision choice, and the one bf16 test every backend uses."""

from __future__ import annotations

import sys

import pytest
import torch

from streamseg.engine import device as device_module
from streamseg.engine.device import cpu_has_native_bf16, pick_device, pick_precision
from streamseg.errors import ConfigError

CPU = torch.device("cpu")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_native_bf16_is_what_the_cpu_flags_say():
    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


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
