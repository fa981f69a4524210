"""Architecture facts of the four variants: parameter counts, output sizes, stochastic depth."""

from __future__ import annotations

import math

import pytest
import torch

from streamseg.errors import ConfigError
from streamseg.model import VARIANTS, build_segnext

# mmsegmentation 1.2.2's parameter counts at 150 classes
PARAMS = {"segnext_t": 4_263_414, "segnext_s": 13_932_886, "segnext_b": 27_636_310, "segnext_l": 48_926_550}


@pytest.mark.parametrize("variant", sorted(PARAMS))
def test_parameter_count(variant):
    model = build_segnext(variant, num_classes=150)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[variant]


@pytest.mark.parametrize("h,w", [(128, 192), (65, 97), (33, 31), (8, 8)])
def test_any_input_size(h, w):
    model = build_segnext("segnext_t", num_classes=7).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(2, 3, h, w))
        logits = model(torch.randn(2, 3, h, w))
    expected = [tuple(math.ceil(s / 2**k) for s in (h, w)) for k in (2, 3, 4, 5)]
    # ceil at each stride-2 conv equals iterated ceil halving
    iterated, cur = [], (h, w)
    for k in range(5):
        cur = tuple(math.ceil(s / 2) for s in cur)
        if k >= 1:
            iterated.append(cur)
    assert [tuple(f.shape[2:]) for f in feats] == iterated
    assert tuple(logits.shape) == (2, 7) + iterated[1]
    assert iterated[1] == expected[1] or h < 8  # ceil(ceil(ceil(h/2)/2)/2) == ceil(h/8)


def test_stochastic_depth_schedule():
    for variant, top in (("segnext_t", 0.1), ("segnext_l", 0.3)):
        model = build_segnext(variant)
        rates = [m.drop_path.p for m in model.modules() if hasattr(m, "drop_path")]
        assert len(rates) == sum(VARIANTS[variant].depths)
        assert rates[0] == 0.0 and rates[-1] == pytest.approx(top)
        assert all(b > a for a, b in zip(rates, rates[1:]))


def test_nmf_rank_is_configurable():
    model = build_segnext("segnext_b", num_classes=19, nmf_rank=64).eval()
    assert model.decode_head.hamburger.ham.rank == 64
    bases = torch.nn.functional.normalize(torch.rand(1, 512, 64), dim=1)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), nmf_bases=bases)
    assert out.shape == (1, 19, 8, 8)
    with pytest.raises(ValueError, match="bases must have shape"):
        model(torch.randn(1, 3, 64, 64), nmf_bases=torch.rand(1, 512, 16))


def test_unknown_variant_names_the_closest():
    with pytest.raises(ConfigError, match="segnext_t"):
        build_segnext("segnex_t")


def test_training_mode_runs_backward():
    model = build_segnext("segnext_t", num_classes=5).train()
    out = model(torch.randn(2, 3, 64, 64))
    out.mean().backward()
    assert model.backbone.patch_embed1.proj[0].weight.grad is not None
    assert model.decode_head.hamburger.ham.train_steps == 6 and model.decode_head.hamburger.ham.eval_steps == 7
