"""Reduced precision against fp32 on the bundled model over a generated clip (real-looking frames)."""

from __future__ import annotations

import numpy as np
import pytest

from streamseg.engine import Segmenter
from streamseg.engine.device import cpu_has_native_bf16
from streamseg.synth import SceneClip

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def frames():
    clip = SceneClip(seed=4711, size=(320, 180))
    return [clip.frame(i)[0] for i in range(0, 48, 6)]


@pytest.fixture(scope="module")
def fp32_masks(frames):
    seg = Segmenter(precision="fp32", device="cpu", backend="torch")
    return [seg(f) for f in frames]


def _agreement(masks, ref) -> float:
    return float(np.mean([(a == b).mean() for a, b in zip(masks, ref)]))


def test_bf16_agrees_with_fp32(frames, fp32_masks):
    seg = Segmenter(precision="bf16", device="cpu", backend="torch")
    if not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (autocast would emulate it)")
    assert _agreement([seg(f) for f in frames], fp32_masks) >= 0.995


def test_folded_fp32_equals_unfolded_fp32_masks(frames, fp32_masks):
    seg = Segmenter(precision="fp32", device="cpu", fold=False, backend="torch")
    assert _agreement([seg(f) for f in frames], fp32_masks) >= 0.9999


def test_openvino_bf16_agrees_with_torch_fp32(frames, fp32_masks, tmp_path, monkeypatch):
    pytest.importorskip("openvino", reason="install the openvino extra")
    monkeypatch.setenv("STREAMSEG_CACHE", str(tmp_path))
    seg = Segmenter(backend="openvino", device="cpu")
    assert _agreement([seg(f) for f in frames], fp32_masks) >= 0.995


def test_warm_policy_stays_close_to_fixed(frames, fp32_masks):
    seg = Segmenter(precision="fp32", device="cpu", nmf_init="warm", warm_steps=3, backend="torch")
    assert _agreement([seg(f, stream_id="clip") for f in frames], fp32_masks) >= 0.99
