"""Pretrained SegNeXt weights: a registry of named specs, cached downloads and dataset palettes.

``resolve_weights("segnext_t_ade20k")`` gives a local checkpoint file (fetching
it once into :func:`cache_dir`); ``get_weights`` gives what is known about it.
"""

from __future__ import annotations

from streamseg.weights import registry as _registry
from streamseg.weights.download import download
from streamseg.weights.registry import *  # noqa: F403 - the registry's public names are this package's

__all__ = ["download", *_registry.__all__]
