"""SegNeXt-T against the real mmsegmentation 1.2.2 outputs in ../shared/parity (float32, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F


from helpers import PARITY

FIX = PARITY / "segnext_t"
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def model(parity_model):
    return parity_model


@pytest.fixture(scope="module")
def x():
    return torch.from_numpy(np.load(FIX / "input.npy"))


def test_backbone_features(model, x):
    ref = np.load(FIX / "backbone_feats.npz")
    with torch.no_grad():
        feats = model.forward_features(x)
    assert len(feats) == 4
    for i, f in enumerate(feats, start=1):
        np.testing.assert_allclose(f.numpy(), ref[f"stage{i}"], **TOL)


def test_logits_with_injected_bases(model, x):
    bases = torch.from_numpy(np.load(FIX / "nmf_bases.npy"))
    with torch.no_grad():
        logits = model(x, nmf_bases=bases)
    np.testing.assert_allclose(logits.numpy(), np.load(FIX / "decode_logits.npy"), **TOL)
    full = F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)
    np.testing.assert_allclose(full.numpy(), np.load(FIX / "full_logits.npy"), **TOL)


def test_logits_with_seed_protocol(model, x):
    torch.manual_seed(0)
    with torch.no_grad():
        logits = model(x)
    np.testing.assert_allclose(logits.numpy(), np.load(FIX / "decode_logits.npy"), **TOL)
    full = F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)
    np.testing.assert_allclose(full.numpy(), np.load(FIX / "full_logits.npy"), **TOL)


def test_seed_protocol_draws_the_stored_bases():
    from streamseg.model import reference_bases

    torch.manual_seed(0)
    np.testing.assert_array_equal(reference_bases(1, 256, 16).numpy(), np.load(FIX / "nmf_bases.npy"))


def test_wrong_seed_changes_the_output(model, x):
    """The check can fail: a different NMF draw moves the logits far beyond the tolerance."""
    torch.manual_seed(1)
    with torch.no_grad():
        logits = model(x)
    assert np.abs(logits.numpy() - np.load(FIX / "decode_logits.npy")).max() > 0.1


def test_batch_uses_one_joint_draw(model, x):
    """Batch of 2 with the seed protocol: sample b uses uniforms [b*D*R, (b+1)*D*R) of one draw."""
    xb = torch.cat([x, x.flip(-1)])
    torch.manual_seed(0)
    with torch.no_grad():
        joint = model(xb)
    torch.manual_seed(0)
    bases = torch.nn.functional.normalize(torch.rand((2, 256, 16)), dim=1)
    with torch.no_grad():
        first = model(x, nmf_bases=bases[:1])
        second = model(x.flip(-1), nmf_bases=bases[1:])
    np.testing.assert_allclose(joint[:1].numpy(), np.load(FIX / "decode_logits.npy"), **TOL)
    np.testing.assert_allclose(joint[:1].numpy(), first.numpy(), **TOL)
    np.testing.assert_allclose(joint[1:].numpy(), second.numpy(), **TOL)
