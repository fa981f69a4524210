"""Folding BatchNorm and layer scale into the convolutions: the same function, fewer operations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamseg.model.fold import FoldedBlock, fold_model
from streamseg.errors import ConfigError
from streamseg.model import build_segnext
from streamseg.model.mscan import Block

from helpers import PARITY


def test_folded_matches_unfolded(parity_model):
    folded = fold_model(parity_model)
    x = torch.from_numpy(np.load(PARITY / "segnext_t" / "input.npy"))
    bases = F.normalize(torch.rand(1, 256, 16, generator=torch.Generator().manual_seed(3)), dim=1)
    with torch.no_grad():
        torch.testing.assert_close(folded(x, nmf_bases=bases), parity_model(x, nmf_bases=bases), atol=1e-4, rtol=1e-4)
        for a, b in zip(folded.forward_features(x), parity_model.forward_features(x)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.backbone.modules())


def test_folding_copies_and_is_idempotent(parity_model):
    before = {k: v.clone() for k, v in parity_model.state_dict().items()}
    folded = fold_model(parity_model)
    assert all(torch.equal(v, parity_model.state_dict()[k]) for k, v in before.items())  # the original is untouched
    assert any(isinstance(m, Block) for m in parity_model.modules())
    again = fold_model(folded)
    assert sum(isinstance(m, FoldedBlock) for m in again.modules()) == sum(isinstance(m, FoldedBlock) for m in folded.modules())
    x = torch.rand(1, 3, 64, 64)
    bases = F.normalize(torch.rand(1, 256, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    with torch.no_grad():
        torch.testing.assert_close(again(x, nmf_bases=bases), folded(x, nmf_bases=bases))


def test_folding_needs_running_statistics():
    with pytest.raises(ConfigError, match="eval-mode"):
        fold_model(build_segnext("segnext_t", num_classes=4).train())
