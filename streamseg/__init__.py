"""streamseg: real-time semantic segmentation of video streams with SegNeXt.

Nothing heavy happens at import time: submodules (and torch) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

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
