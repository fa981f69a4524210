"""The OpenVINO backend against torch on the parity weights: real conversions, compiled models and disk cache."""

from __future__ import annotations

import logging
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamseg.model.fold import fold_model
from streamseg.engine.openvino_backend import OpenVINOForward, cpu_bf16_supported, openvino_available
from streamseg.errors import BackendUnavailableError, ConfigError, InputError

from helpers import PARITY, scene

pytest.importorskip("openvino", reason='optional backend: pip install "streamseg[openvino]" (CI installs it)')

FIX = PARITY / "segnext_t"
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
KEY = "parity-segnext-t-folded"  # the weights_key every instance here shares, so the IR is converted once


@pytest.fixture(scope="module")
def model(parity_model):
    return fold_model(parity_model)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("openvino-cache")


@pytest.fixture(scope="module")
def ov_f32(model, cache):
    """The first instance: it converts the model (the only conversion of the 7-step graph in this module)."""
    forward = OpenVINOForward(model, precision="f32", cache_dir=cache, weights_key=KEY)
    forward(torch.from_numpy(np.load(FIX / "input.npy")), torch.from_numpy(np.load(FIX / "nmf_bases.npy")))
    return forward


@pytest.fixture(scope="module")
def x():
    return torch.from_numpy(np.load(FIX / "input.npy"))


@pytest.fixture(scope="module")
def bases():
    return torch.from_numpy(np.load(FIX / "nmf_bases.npy"))


def normalised(img: np.ndarray) -> torch.Tensor:
    x = (torch.from_numpy(img).permute(2, 0, 1)[None].float() - MEAN) / STD
    return x.contiguous(memory_format=torch.channels_last)


def fixed_bases(batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.rand((batch, 256, 16), generator=g), dim=1)


def test_f32_matches_the_mmseg_parity_logits(ov_f32, x, bases):
    logits, _ = ov_f32(x, bases)
    assert logits.dtype == torch.float32 and tuple(logits.shape) == (1, 150, 16, 24)
    np.testing.assert_allclose(logits.numpy(), np.load(FIX / "decode_logits.npy"), atol=1e-3, rtol=1e-3)


def test_converged_bases_match_torch(ov_f32, model, x, bases):
    _, converged = ov_f32(x, bases)
    with torch.no_grad():
        _, expected = model.forward_with_bases(x, bases)
    assert tuple(converged.shape) == (1, 256, 16)
    np.testing.assert_allclose(converged.numpy(), expected.numpy(), atol=1e-3, rtol=1e-3)
    assert not torch.allclose(converged, bases, atol=1e-3)  # the NMF did iterate


def test_bf16_masks_agree_with_torch_fp32(model, cache, caplog):
    forward = OpenVINOForward(model, precision="bf16", cache_dir=cache, weights_key=KEY)
    assert forward.precision == ("bf16" if cpu_bf16_supported() else "f32")
    agree = []
    with caplog.at_level(logging.WARNING, logger="streamseg.engine"):
        for seed in range(3):
            x = normalised(scene(128, 192, seed))
            b = fixed_bases()
            logits, converged = forward(x, b)
            with torch.no_grad():
                ref, ref_bases = model.forward_with_bases(x, b)
            up = [
                F.interpolate(t, size=(128, 192), mode="bilinear", align_corners=False).argmax(1) for t in (logits, ref)
            ]
            agree.append((up[0] == up[1]).float().mean().item())
            assert (converged - ref_bases).abs().max().item() < 3e-2
    assert np.mean(agree) >= 0.99, agree
    assert "NMF runs in bf16" not in caplog.text  # the NMF's matmuls kept float32


def test_second_instance_loads_the_cached_ir(ov_f32, model, cache, x, bases, caplog):
    with caplog.at_level(logging.INFO, logger="streamseg.engine"):
        again = OpenVINOForward(model, precision="f32", cache_dir=cache, weights_key=KEY)
        logits, converged = again(x, bases)
    assert again.conversions == 0 and ov_f32.conversions >= 1
    assert "loaded the cached IR" in caplog.text and "converted the model" not in caplog.text
    assert again.compile_s < ov_f32.compile_s / 3
    expected = ov_f32(x, bases)
    torch.testing.assert_close(logits, expected[0])
    torch.testing.assert_close(converged, expected[1])


@pytest.mark.timeout(60)
def test_two_requests_in_flight_match_sync_calls(ov_f32):
    xs = [normalised(scene(128, 192, s)) for s in (3, 4, 5)]
    bs = [fixed_bases(seed=s) for s in (3, 4, 5)]
    sync = [ov_f32(x, b) for x, b in zip(xs, bs, strict=True)]
    handles = [
        ov_f32.start(x, b) for x, b in zip(xs, bs, strict=True)
    ]  # 3 > num_requests=2: the oldest is collected early
    assert handles[0].ready()  # collected to free its request
    deadline = time.monotonic() + 30
    while not handles[2].ready():  # a non-blocking poll turns True without wait()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    for handle, (logits, converged) in zip(reversed(handles), reversed(sync), strict=True):
        got = ov_f32.wait(handle)
        torch.testing.assert_close(got[0], logits)
        torch.testing.assert_close(got[1], converged)
    with pytest.raises(InputError, match="once"):
        ov_f32.wait(handles[0])


def test_a_batch_equals_its_frames(ov_f32):
    x = torch.cat([normalised(scene(128, 192, s)) for s in (6, 7)])
    b = torch.cat([fixed_bases(seed=6), fixed_bases(seed=7)])
    logits, converged = ov_f32(x, b)
    assert tuple(logits.shape) == (2, 150, 16, 24)
    for i in range(2):
        one = ov_f32(x[i : i + 1], b[i : i + 1])
        torch.testing.assert_close(logits[i : i + 1], one[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(converged[i : i + 1], one[1], atol=1e-4, rtol=1e-4)
    x3 = torch.cat([x, x[:1]])
    logits3, _ = ov_f32(x3, torch.cat([b, b[:1]]))
    torch.testing.assert_close(logits3[:2], logits)
    # batches run as one-frame requests: partial batches of any size never compile (and hold) another model
    assert {key[0] for key in ov_f32._compiled} == {1}


@pytest.mark.slow
def test_steps_are_part_of_the_graph(ov_f32, model):
    x, b = normalised(scene(64, 64, 8)), fixed_bases(seed=8)
    before = ov_f32.conversions
    logits, converged = ov_f32(x, b, 2)
    with torch.no_grad():
        ref, ref_bases = model.forward_with_bases(x, b, 2)
        seven, _ = model.forward_with_bases(x, b, 7)
    np.testing.assert_allclose(logits.numpy(), ref.numpy(), atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(converged.numpy(), ref_bases.numpy(), atol=1e-3, rtol=1e-3)
    assert not torch.allclose(ref, seven, atol=1e-3)  # 2 steps really differ from the default 7
    assert ov_f32.conversions == before + 1  # a step count is its own graph


def test_wrong_inputs_are_refused(ov_f32, model):
    with pytest.raises(InputError, match="bases"):
        ov_f32(torch.zeros(1, 3, 64, 64), torch.zeros(1, 128, 16))
    with pytest.raises(InputError, match="same B"):
        ov_f32(torch.zeros(2, 3, 64, 64), torch.zeros(1, 256, 16))
    with pytest.raises(ConfigError, match="precision"):
        OpenVINOForward(model, precision="fp16")


def test_missing_openvino_says_how_to_install(monkeypatch, model):
    monkeypatch.setitem(sys.modules, "openvino", None)  # what `import openvino` meets when it is not installed
    assert not openvino_available()
    assert not cpu_bf16_supported()
    with pytest.raises(BackendUnavailableError, match=r'pip install "streamseg\[openvino\]"') as info:
        OpenVINOForward(model)
    assert isinstance(info.value, ImportError)


@pytest.mark.parametrize("policy", ["reference", "fixed", "warm"])
def test_engine_backend_openvino_f32_gives_the_torch_masks(model, cache, monkeypatch, policy):
    """Through the Segmenter (async requests, NMF policies): OpenVINO f32 masks equal torch fp32 masks."""
    from streamseg.engine import Segmenter

    monkeypatch.setenv("STREAMSEG_CACHE", str(cache))
    rng = np.random.default_rng(0)
    frames = [np.kron(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8)) for _ in range(3)]
    opts = dict(precision="fp32", device="cpu", nmf_init=policy, test_scale=(128, 96))
    torch_seg = Segmenter(None, model=model, backend="torch", **opts)
    ov_seg = Segmenter(None, model=model, backend="openvino", **opts)
    for seg in (torch_seg, ov_seg):
        torch.manual_seed(0)
        seg.masks = [p.mask for p in seg.segment(frames, stream_ids=["a", "b", "a"])]
        seg.masks += [p.mask for p in seg.segment(frames[:1], stream_ids=["a"])]  # warm: second batch
    for a, b in zip(torch_seg.masks, ov_seg.masks):
        assert (a == b).mean() > 0.999
