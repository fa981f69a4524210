"""SegNeXt models: ``build_segnext(name, num_classes=...)`` and ``load_checkpoint(model, file_or_name)``."""

from streamseg.model.checkpoint import load_checkpoint, map_checkpoint_keys, read_checkpoint
from streamseg.model.ham_head import LightHamHead, NMF2D, reference_bases
from streamseg.model.mscan import MSCAN
from streamseg.model.segnext import VARIANTS, SegNeXt, SegNeXtConfig, build_segnext

__all__ = [
    "build_segnext",
    "load_checkpoint",
    "map_checkpoint_keys",
    "read_checkpoint",
    "reference_bases",
    "SegNeXt",
    "SegNeXtConfig",
    "VARIANTS",
    "MSCAN",
    "LightHamHead",
    "NMF2D",
]
