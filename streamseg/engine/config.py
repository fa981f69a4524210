"""How to run the model: :class:`EngineConfig`, checked the moment it is built.

A value that cannot work (an unknown precision, a negative ``in_flight``, OpenVINO on a GPU) is a
:class:`ConfigError` from the constructor, so a bad YAML file fails while it is loaded, in the
caller's thread, not later inside the pipeline's engine thread. What depends on the machine (is
there a GPU? does the CPU have bf16?) is decided when the engine starts (:mod:`.device`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

from streamseg.errors import ConfigError

__all__ = ["EngineConfig", "DEFAULT_WEIGHTS", "PRECISIONS", "BACKENDS", "NMF_INITS", "OPENVINO_HINTS"]

DEFAULT_WEIGHTS = "segnext_t_synth"

Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
Backend = Literal["torch", "openvino", "auto"]
NmfInit = Literal["reference", "fixed", "warm"]
OpenVINOHint = Literal["LATENCY", "THROUGHPUT"]
CudaGraphs = Literal["auto", "on", "off"]

PRECISIONS: tuple[str, ...] = get_args(Precision)
BACKENDS: tuple[str, ...] = get_args(Backend)
NMF_INITS: tuple[str, ...] = get_args(NmfInit)
OPENVINO_HINTS: tuple[str, ...] = get_args(OpenVINOHint)
CUDA_GRAPHS: tuple[str, ...] = get_args(CudaGraphs)
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class EngineConfig:
    """How to run the model. ``None`` values come from the weights' spec."""

    model: str | None = None  # variant; inferred from the weights when None
    weights: str | None = DEFAULT_WEIGHTS  # registered name, path or URL; None = random init (benchmarks)
    num_classes: int | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = "auto"
    backend: Backend = "auto"  # auto: OpenVINO on a CPU where it is installed, else torch; openvino: CPU only
    nmf_init: NmfInit = "fixed"
    nmf_seed: int = 0
    warm_steps: int | None = None  # NMF iterations for warm starts (None = the model's 7)
    fold: bool = True
    compile: bool = False
    test_scale: tuple[int, int] | None = None
    slide: tuple[int, int] | None = None  # (crop, stride)
    in_flight: int = 2  # batches in flight (CUDA streams, OpenVINO infer requests)
    threads: int | None = None  # CPU threads of the engine (torch intra-op / OpenVINO); None: every core
    cuda_graphs: CudaGraphs = "auto"  # auto: on CUDA (torch, not compiled); on: required; off: eager launches
    openvino_hint: OpenVINOHint | None = None  # None: LATENCY, THROUGHPUT inside a pipeline
    calibration: str | None = None  # int8: frames to calibrate on (video, folder, glob, URL, or "synth")
    calibration_frames: int = 300  # int8: how many (a fifth of them held out for the accuracy check)
    accuracy_floor: float = 0.99  # int8: least argmax agreement with the float model on held-out frames

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every value on its own and the combinations that cannot work; the machine is not asked."""
        checks = (("precision", PRECISIONS), ("backend", BACKENDS), ("nmf_init", NMF_INITS), ("cuda_graphs", CUDA_GRAPHS))
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.openvino_hint is not None and self.openvino_hint not in OPENVINO_HINTS:
            raise ConfigError(f"openvino_hint must be LATENCY or THROUGHPUT, got {self.openvino_hint!r}")
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.precision == "fp16" and self.device == "cpu":
            raise ConfigError("fp16 runs on CUDA only; on a CPU use precision bf16 (or fp32)")
        if self.backend == "openvino" and self.device.startswith("cuda"):
            raise ConfigError(
                f"backend 'openvino' runs on the CPU, not {self.device!r}: use device 'cpu' or backend 'torch'"
            )
        if self.precision == "int8":
            if self.backend == "torch" or self.device.startswith("cuda"):
                raise ConfigError("int8 runs on the OpenVINO backend on a CPU: set backend openvino (or auto) and device cpu")
            if self.warm_steps is not None:
                raise ConfigError("int8 runs the model's own NMF step count: drop warm_steps (or use a float precision)")
        if not 0.0 < self.accuracy_floor <= 1.0:
            raise ConfigError(f"accuracy_floor is an agreement between 0 and 1 (0.99 = 99 %), got {self.accuracy_floor}")
        if self.calibration_frames < 16:
            raise ConfigError(f"calibration_frames must be >= 16, got {self.calibration_frames}")
        if self.backend == "openvino" and self.compile:
            raise ConfigError("compile is a torch option: drop it with backend 'openvino' (OpenVINO compiles anyway)")
        if self.cuda_graphs == "on" and (self.device == "cpu" or self.backend == "openvino" or self.compile):
            raise ConfigError("cuda_graphs 'on' needs the torch backend on a CUDA device, without compile (set it to auto)")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 (or None for every core), got {self.threads}")
        if self.in_flight < 1:
            raise ConfigError(f"in_flight must be >= 1, got {self.in_flight}")
        if self.warm_steps is not None and self.warm_steps < 1:
            raise ConfigError(f"warm_steps must be >= 1 (or None for the model's own), got {self.warm_steps}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {self.num_classes}")
        for name in ("test_scale", "slide"):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or min(value) < 1):
                raise ConfigError(f"{name} must be two positive integers, got {value!r}")

    def replace(self, **overrides: Any) -> "EngineConfig":
        """A copy with ``overrides``; an unknown option names the closest valid one."""
        known = [f.name for f in fields(self)]
        for key in sorted(set(overrides) - set(known)):
            close = difflib.get_close_matches(key, known, n=1)
            raise ConfigError(f"unknown engine option {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
        return replace(self, **overrides)
