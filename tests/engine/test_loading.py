"""Weights -> model + ModelInfo: what each kind of weights says, and the file read once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamseg.engine import loading
from streamseg.engine.loading import ModelInfo, load_model
from streamseg.errors import ConfigError
from streamseg.model import build_segnext, checkpoint
from streamseg.weights import get_weights


def test_a_registered_spec_gives_its_classes_palette_and_geometry():
    spec = get_weights("segnext_t_cityscapes")
    info = ModelInfo.from_spec(spec, 19)
    assert info.classes == spec.classes and info.slide == (1024, 768) and info.test_scale == (2048, 1024)
    np.testing.assert_array_equal(info.palette, np.asarray(spec.palette, np.uint8))
    fine_tuned = ModelInfo.from_spec(get_weights("mscan_t_in1k"), 5)  # a backbone trained on other classes
    assert fine_tuned.classes == tuple(f"class_{i}" for i in range(5)) and fine_tuned.palette.shape == (5, 3)


def test_a_checkpoint_written_by_train_names_its_classes_and_is_read_once(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = build_segnext("segnext_t", num_classes=3)
    meta = {"variant": "segnext_t", "classes": ["bg", "x", "y"], "palette": [[0, 0, 0], [255, 0, 0], [0, 0, 255]],
            "test_scale": [96, 64]}  # fmt: skip
    path = tmp_path / "tiny.pth"
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)
    reads = []
    real = checkpoint.read_checkpoint_with_meta
    monkeypatch.setattr(checkpoint, "read_checkpoint_with_meta", lambda p: reads.append(p) or real(p))
    loaded, info = load_model(path)
    assert len(reads) == 1  # facts, classes and tensors come from one read of the file
    assert info.classes == ("bg", "x", "y") and info.test_scale == (96, 64) and info.weights == str(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_random_init_and_mismatched_variant():
    model, info = load_model(None, variant="segnext_t", num_classes=4)
    assert info.num_classes == 4 and info.weights is None and not model.training
    with pytest.raises(ConfigError, match="are for segnext_t, not segnext_b"):
        load_model("segnext_t_synth", variant="segnext_b")
    assert loading.ModelInfo.for_module(model).num_classes == 4
