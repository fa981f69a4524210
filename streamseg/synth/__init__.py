"""Synthetic scenes with pixel-exact ground truth, and writers for clips and datasets.

Used to train the bundled model and to check the whole pipeline end to end
(colour channels, resizes, frame/mask alignment) against known masks.
"""

from __future__ import annotations

from streamseg.synth.io import write_clip, write_dataset
from streamseg.synth.scenes import (
    CLASSES,
    IGNORE_INDEX,
    PALETTE,
    SceneClip,
    random_sample,
)

__all__ = ["CLASSES", "PALETTE", "IGNORE_INDEX", "SceneClip", "random_sample", "write_clip", "write_dataset"]
