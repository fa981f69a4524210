"""Weights -> a SegNeXt module and what it needs to be run as it was evaluated (:class:`ModelInfo`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from streamseg.datasets import MEAN, STD, make_palette
from streamseg.errors import ConfigError

if TYPE_CHECKING:
    from streamseg.weights.registry import WeightsSpec

__all__ = ["ModelInfo", "load_model"]

log = logging.getLogger(__name__)

_DEFAULT_TEST_SCALE = (2048, 512)  # mmseg's ADE20K test scale
_MANIFEST = "streamseg.json"  # what `streamseg quantize --out` writes into its folder


@dataclass(frozen=True)
class ModelInfo:
    """What the weights say about the classes and the preprocessing they expect."""

    variant: str
    classes: tuple[str, ...]
    palette: np.ndarray
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    test_scale: tuple[int, int] | None = _DEFAULT_TEST_SCALE
    slide: tuple[int, int] | None = None
    nmf_rank: int = 16
    weights: str | None = None
    quantized: str | None = None  # a folder with an int8 OpenVINO graph of these weights (streamseg quantize --out)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def unnamed(cls, variant: str, num_classes: int, **fields: Any) -> "ModelInfo":
        """Classes ``class_0 ... class_{n-1}`` with the default palette (weights that name none)."""
        classes = tuple(f"class_{i}" for i in range(num_classes))
        return cls(variant=variant, classes=classes, palette=make_palette(num_classes), **fields)

    @classmethod
    def from_spec(cls, spec: "WeightsSpec", num_classes: int) -> "ModelInfo":
        """A registered spec's classes, palette, normalisation and test-time geometry."""
        fields: dict[str, Any] = {
            "mean": tuple(spec.mean),
            "std": tuple(spec.std),
            "test_scale": tuple(spec.test_scale) if spec.test_scale else None,
            "slide": tuple(spec.slide) if spec.slide else None,
            "nmf_rank": spec.nmf_rank,
            "weights": spec.name,
        }
        if spec.backbone_only or len(spec.classes) != num_classes:  # a backbone fine-tuned to other classes
            return cls.unnamed(spec.variant, num_classes, **fields)
        return cls(variant=spec.variant, classes=tuple(spec.classes), palette=np.asarray(spec.palette, np.uint8), **fields)

    @classmethod
    def from_meta(cls, meta: dict[str, Any], variant: str, num_classes: int, nmf_rank: int, path: Path) -> "ModelInfo":
        """What a checkpoint's own ``meta`` says (files written by ``streamseg train`` name their classes)."""
        test_scale = meta.get("test_scale") or _DEFAULT_TEST_SCALE
        fields: dict[str, Any] = {"test_scale": tuple(test_scale), "nmf_rank": nmf_rank, "weights": str(path)}
        classes = meta.get("classes") or ()
        if len(classes) != num_classes:
            return cls.unnamed(variant, num_classes, **fields)
        palette = np.asarray(meta.get("palette") or make_palette(num_classes), np.uint8)
        return cls(variant=variant, classes=tuple(classes), palette=palette, **fields)

    @classmethod
    def for_module(cls, net: nn.Module, num_classes: int | None = None) -> "ModelInfo":
        """An already built module: its own variant, class count and NMF rank."""
        n = int(getattr(net, "num_classes", num_classes or 0))
        return cls.unnamed(getattr(net, "variant", "custom"), n, nmf_rank=int(getattr(net, "nmf_rank", 16)))


def load_model(
    weights: str | Path | None,
    *,
    variant: str | None = None,
    num_classes: int | None = None,
    nmf_rank: int | None = None,
) -> tuple[nn.Module, ModelInfo]:
    """Build SegNeXt for ``weights`` (name, path or URL) and load them, reading the file once; ``None`` = random init."""
    from streamseg.model import build_segnext
    from streamseg.model.checkpoint import describe_state_dict, load_state, map_checkpoint_keys, read_checkpoint_with_meta

    if weights is None:
        variant, num_classes = variant or "segnext_t", num_classes or 150
        log.warning("no weights given: %s is randomly initialised (only useful for benchmarks)", variant)
        model = build_segnext(variant, num_classes=num_classes, nmf_rank=nmf_rank or 16)
        return model.eval(), ModelInfo.unnamed(variant, num_classes, nmf_rank=nmf_rank or 16)
    from streamseg.weights import resolve_weights

    quantized = None
    folder = Path(str(weights)).expanduser()
    if (folder / _MANIFEST).is_file():  # written by `streamseg quantize --out`: float weights + an int8 graph
        manifest = json.loads((folder / _MANIFEST).read_text())
        weights, quantized = folder / manifest["weights"], str(folder / manifest["int8"])
    path, spec = resolve_weights(str(weights))
    raw, meta = read_checkpoint_with_meta(path)
    state = map_checkpoint_keys(raw)
    if spec is not None:
        if spec.backbone_only and num_classes is None:
            raise ConfigError(f"{spec.name} is an ImageNet backbone without a head: pass num_classes to fine-tune it")
        variant = variant or spec.variant
        if variant != spec.variant:
            raise ConfigError(f"weights {spec.name} are for {spec.variant}, not {variant}: drop the model option")
        num_classes, nmf_rank = num_classes or spec.num_classes, nmf_rank or spec.nmf_rank
    else:
        facts = describe_state_dict(state)
        variant = variant or meta.get("variant") or facts.get("variant")
        num_classes, nmf_rank = num_classes or facts.get("num_classes"), nmf_rank or meta.get("nmf_rank")
        if variant is None:
            raise ConfigError(f"cannot tell which SegNeXt size {path} holds: pass the model (e.g. segnext_t)")
    num_classes, nmf_rank = num_classes or 150, nmf_rank or 16
    model = build_segnext(variant, num_classes=num_classes, nmf_rank=nmf_rank)
    load_state(model, state, path)
    info = ModelInfo.from_spec(spec, num_classes) if spec is not None else ModelInfo.from_meta(meta, variant, num_classes, nmf_rank, path)
    return model.eval(), replace(info, quantized=quantized) if quantized else info
