"""streamseg: real-time semantic segmentation of video streams with SegNeXt.

Nothing heavy happens at import time: submodules (and torch) load on first use.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

# streamseg runs decode, inference and encode threads side by side on few cores; OpenMP's
# default busy-waiting makes torch's worker threads spin against them (measured: batches
# 3-20x slower under contention, 4x with one busy process beside a 2-thread engine). Only a
# default: the user's environment wins, and it can only take effect if torch has not been
# imported yet. ``streamseg train`` drops it again (see streamseg.commands.train).
_omp_policy_defaulted = "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ
if _omp_policy_defaulted:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

__version__ = "0.1.0"

_LAZY = {
    "Frame": "streamseg.types",
    "Batch": "streamseg.types",
    "Prediction": "streamseg.types",
    "Segmenter": "streamseg.engine",
    "Pipeline": "streamseg.pipeline",
    "stream": "streamseg.pipeline",
    "build_segnext": "streamseg.model",
    "load_checkpoint": "streamseg.model",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamseg' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
