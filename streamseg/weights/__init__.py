"""Pretrained SegNeXt weights: a registry of named specs, cached downloads and dataset palettes.

``resolve_weights("segnext_t_ade20k")`` gives a local checkpoint file (fetching
it once into :func:`cache_dir`); ``get_weights`` gives what is known about it.
"""

from __future__ import annotations

from streamseg.weights.download import download
from streamseg.weights.registry import (
    VARIANTS,
    WeightsSpec,
    cache_dir,
    get_weights,
    is_cached,
    list_weights,
    register_weights,
    resolve_weights,
    unregister_weights,
    weights_path,
)

__all__ = [
    "VARIANTS",
    "WeightsSpec",
    "cache_dir",
    "download",
    "get_weights",
    "is_cached",
    "list_weights",
    "register_weights",
    "resolve_weights",
    "unregister_weights",
    "weights_path",
]
