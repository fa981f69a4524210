"""A small fast segmenter for pipeline mechanics tests (the mIoU tests use the bundled model)."""

from __future__ import annotations

import pytest

from streamseg.model import build_segnext

import helpers


@pytest.fixture(scope="session")
def tiny_model():
    import torch

    torch.manual_seed(0)
    return build_segnext("segnext_t", num_classes=4).eval()


@pytest.fixture
def tiny_segmenter(tiny_model):
    """Random-weight segnext_t at the frames' own size (no upscaling), fp32: fast and deterministic."""
    return helpers.tiny_segmenter(tiny_model)
