"""A small fast segmenter for pipeline mechanics tests (the mIoU tests use the bundled model)."""

from __future__ import annotations

import pytest

from streamseg.engine import ModelInfo, Segmenter
from streamseg.model import build_segnext


@pytest.fixture(scope="session")
def tiny_model():
    import torch

    torch.manual_seed(0)
    return build_segnext("segnext_t", num_classes=4).eval()


@pytest.fixture
def tiny_segmenter(tiny_model):
    """Random-weight segnext_t at the frames' own size (no upscaling), fp32: fast and deterministic."""
    import numpy as np

    info = ModelInfo(
        variant="segnext_t",
        classes=("a", "b", "c", "d"),
        palette=np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8),
        test_scale=None,
    )
    return Segmenter(None, model=tiny_model, info=info, precision="fp32", device="cpu")
