"""Checkpoint formats (mmseg 1.x, original release, bare, module., backbone-only) and their errors."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from streamseg.errors import CheckpointError, StreamsegError, WeightsNotFoundError
from streamseg.model import build_segnext, load_checkpoint, map_checkpoint_keys

from helpers import PARITY


@pytest.fixture(scope="module")
def parity_state(parity_checkpoint):
    return torch.load(parity_checkpoint, weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def x():
    return torch.from_numpy(np.load(PARITY / "segnext_t" / "input.npy"))


def _logits(path, x, **kw):
    model = build_segnext("segnext_t", **kw).eval()
    load_checkpoint(model, path)
    torch.manual_seed(0)
    with torch.no_grad():
        return model(x)


def test_original_release_layout_gives_identical_output(parity_state, parity_checkpoint, x, tmp_path):
    original = {k.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv."): v for k, v in parity_state.items()}
    assert any(".mlp.dwconv.dwconv." in k for k in original)
    path = tmp_path / "original.pth"
    torch.save({"state_dict": original, "meta": {"CLASSES": ["c"] * 150}}, path)
    assert torch.equal(_logits(path, x), _logits(parity_checkpoint, x))


@pytest.mark.parametrize("wrap", ["bare", "module", "model"])
def test_other_wrappings(parity_state, parity_checkpoint, x, tmp_path, wrap):
    if wrap == "bare":
        obj = dict(parity_state)
    elif wrap == "module":
        obj = {"state_dict": {"module." + k: v for k, v in parity_state.items()}}
    else:
        obj = {"model": dict(parity_state)}
    path = tmp_path / f"{wrap}.pth"
    torch.save(obj, path)
    assert torch.equal(_logits(path, x), _logits(parity_checkpoint, x))


def test_safetensors(parity_state, parity_checkpoint, x, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in parity_state.items()}, str(path))
    assert torch.equal(_logits(path, x), _logits(parity_checkpoint, x))


def test_backbone_only_file_loads_into_backbone(parity_state, tmp_path):
    backbone = {k[len("backbone.") :]: v for k, v in parity_state.items() if k.startswith("backbone.")}
    backbone["head.weight"] = torch.zeros(1000, 256)  # ImageNet classifier: dropped
    path = tmp_path / "mscan_t.pth"
    torch.save({"state_dict": backbone}, path)
    model = build_segnext("segnext_t", num_classes=19)
    head_before = model.decode_head.conv_seg.weight.clone()
    info = load_checkpoint(model, path)
    assert info["backbone_only"]
    assert torch.equal(model.backbone.block1[0].layer_scale_1, parity_state["backbone.block1.0.layer_scale_1"])
    assert torch.equal(model.decode_head.conv_seg.weight, head_before)


def test_map_keys_is_pure():
    sd = {"module.backbone.block1.0.mlp.dwconv.dwconv.weight": torch.zeros(1), "block2.0.norm1.bias": torch.zeros(1)}
    mapped = map_checkpoint_keys(sd)
    assert set(mapped) == {"backbone.block1.0.mlp.dwconv.weight", "backbone.block2.0.norm1.bias"}
    assert set(sd) == {"module.backbone.block1.0.mlp.dwconv.dwconv.weight", "block2.0.norm1.bias"}


def test_other_variant_is_named(tmp_path):
    path = tmp_path / "s.pth"
    torch.save({"state_dict": build_segnext("segnext_s").state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"segnext_s.*build_segnext\('segnext_s'"):
        load_checkpoint(build_segnext("segnext_t"), path)


def test_wrong_class_count_says_what_to_pass(parity_checkpoint):
    with pytest.raises(CheckpointError, match="checkpoint has 150 classes, the model has 19: pass num_classes=150"):
        load_checkpoint(build_segnext("segnext_t", num_classes=19), parity_checkpoint)


def test_missing_and_unexpected_keys_are_listed(parity_state, tmp_path):
    sd = dict(parity_state)
    del sd["decode_head.align.gn.weight"]
    sd["decode_head.extra.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_segnext("segnext_t"), path)
    assert "decode_head.align.gn.weight" in str(err.value) and "decode_head.extra.weight" in str(err.value)


def test_truncated_file(parity_checkpoint, tmp_path):
    data = parity_checkpoint.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(build_segnext("segnext_t"), path)


def test_corrupt_file(parity_checkpoint, tmp_path):
    data = bytearray(parity_checkpoint.read_bytes())
    data[:64] = os.urandom(64)
    path = tmp_path / "corrupt.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(build_segnext("segnext_t"), path)


@pytest.mark.parametrize("content", [b"", b"hello, I am a text file\n"])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_checkpoint(build_segnext("segnext_t"), path)


def test_pickle_of_other_things(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="no state dict found"):
        load_checkpoint(build_segnext("segnext_t"), path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        torch.save({"state_dict": {"x": torch.zeros(1)}, "evil": _Evil()}, f, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(CheckpointError, match="never unpickles code"):
        load_checkpoint(build_segnext("segnext_t"), path)
    assert not (tmp_path / "pwned").exists()


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(WeightsNotFoundError):
        load_checkpoint(build_segnext("segnext_t"), tmp_path / "nope.pth")
    with pytest.raises(StreamsegError, match="directory"):
        load_checkpoint(build_segnext("segnext_t"), tmp_path)
