"""Where the NMF's initial bases come from: reference, fixed and warm, per stream."""

from __future__ import annotations

import pytest
import torch

from streamseg.engine.nmf_init import BasesPolicy
from streamseg.errors import ConfigError

CPU = torch.device("cpu")


def test_fixed_is_seeded_batch_invariant_and_leaves_the_global_rng_alone():
    torch.manual_seed(1)
    before = torch.rand(1)
    torch.manual_seed(1)
    policy = BasesPolicy("fixed", channels=32, rank=4, seed=7)
    bases, steps = policy.initial(["a", "b", "a"], CPU)
    assert torch.equal(torch.rand(1), before)  # the global generator was not drawn from
    assert bases.shape == (3, 32, 4) and steps is None
    assert torch.equal(bases[0], bases[1]) and torch.equal(bases[1], bases[2])
    torch.testing.assert_close(bases[0].norm(dim=0), torch.ones(4))  # unit columns, as mmseg normalises
    assert torch.equal(BasesPolicy("fixed", channels=32, rank=4, seed=7).fixed_bases(), bases[0])
    assert not torch.equal(BasesPolicy("fixed", channels=32, rank=4, seed=8).fixed_bases(), bases[0])


def test_reference_draws_from_the_global_generator():
    policy = BasesPolicy("reference", channels=16, rank=2)
    torch.manual_seed(3)
    a, _ = policy.initial(["s"], CPU)
    torch.manual_seed(3)
    b, _ = policy.initial(["s"], CPU)
    c, _ = policy.initial(["s"], CPU)
    assert torch.equal(a, b) and not torch.equal(b, c)


def test_warm_starts_from_each_streams_last_bases_with_fewer_steps():
    policy = BasesPolicy("warm", channels=8, rank=2, warm_steps=3)
    first, steps = policy.initial(["a", "b"], CPU)
    assert steps is None  # cold: the model's own step count
    converged = torch.rand(2, 8, 2) * 5
    policy.update(["a", "b"], converged)
    bases, steps = policy.initial(["b", "a"], CPU)
    assert steps == 3
    torch.testing.assert_close(bases[0], torch.nn.functional.normalize(converged[1], dim=0))
    torch.testing.assert_close(bases[1], torch.nn.functional.normalize(converged[0], dim=0))
    bases, steps = policy.initial(["a", "new"], CPU)
    assert steps is None and torch.equal(bases[1], first[0])  # one cold stream: every frame runs the full count
    policy.reset("a")
    assert policy.initial(["a"], CPU)[1] is None
    policy.update(["b", "b"], torch.stack([converged[0], converged[1]]))  # twice in a batch: the later frame wins
    torch.testing.assert_close(policy.initial(["b"], CPU)[0][0], torch.nn.functional.normalize(converged[1], dim=0))


def test_unknown_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="nmf_init must be one of"):
        BasesPolicy("random", channels=8, rank=2)


def test_fixed_bases_go_to_a_device_once():
    """A copy per batch from host memory would synchronise a CUDA stream: the device copy is made once."""
    policy = BasesPolicy("fixed", channels=8, rank=2)
    meta = torch.device("meta")
    first, _ = policy.initial(["a"], meta)
    second, _ = policy.initial(["a", "b"], meta)
    assert first.device == meta and first._base is second._base is not None
