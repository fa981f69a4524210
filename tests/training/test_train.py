"""`streamseg train` smoke test (a few iterations, tiny crops), frozen stages, the lr schedule, and the param groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from streamseg.config import from_dict
from streamseg.errors import ConfigError
from streamseg.model import build_segnext, load_checkpoint
from streamseg.training import TrainConfig
from streamseg.training.loop import lr_at, param_groups, train

pytestmark = pytest.mark.timeout(240)


def test_train_smoke_resume_and_export(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        f"""
model: segnext_t
test_scale: [96, 64]
iters: 4
batch_size: 2
workers: 0
checkpoint_interval: 2
log_interval: 1
work_dir: {tmp_path / 'wd'}
data: {{kind: synthetic, size: [96, 64]}}
augment: {{scale: [96, 64], crop_size: [64, 64]}}
optim: {{lr: 0.001, warmup_iters: 2}}
eval: {{interval: 4, frames: 2, size: [96, 64]}}
"""
    )
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "streamseg", "train", str(cfg), "--no-progress", *a],
        capture_output=True, text=True, cwd=tmp_path,
    )
    out = run("--export", str(tmp_path / "w.safetensors"))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["iters"] == 4 and 0.0 <= summary["miou"] <= 1.0
    log = [json.loads(line) for line in (tmp_path / "wd" / "train_log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log if "loss" in r] == [1, 2, 3, 4]
    assert "miou" in log[-1]
    for name in ("final.pth", "latest.pth"):
        model = build_segnext("segnext_t", num_classes=8)
        info = load_checkpoint(model, tmp_path / "wd" / name)  # mmseg layout, strict
        assert info["num_classes"] == 8
    from streamseg.engine import Segmenter

    seg = Segmenter(tmp_path / "w.safetensors")
    assert seg.classes[0] == "background" and seg.info.test_scale == (96, 64)
    # resume continues from the saved iteration
    (tmp_path / "t.yaml").write_text(cfg.read_text().replace("iters: 4", "iters: 6"))
    out = run("--resume")
    assert out.returncode == 0, out.stderr
    log = [json.loads(line) for line in (tmp_path / "wd" / "train_log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log if "loss" in r][-2:] == [5, 6]


def _tiny_config(tmp_path, **overrides) -> TrainConfig:
    data = {
        "model": "segnext_t", "iters": 3, "batch_size": 2, "workers": 0, "log_interval": 1,
        "work_dir": str(tmp_path / "wd"), "data": {"size": [96, 64]},
        "augment": {"scale": [96, 64], "crop_size": [64, 64]}, "optim": {"lr": 0.01, "warmup_iters": 1},
        "eval": {"interval": 0},
    }
    return from_dict(TrainConfig, {**data, **overrides})


def test_frozen_stages_keep_their_weights_and_batchnorm_statistics(tmp_path):
    start = build_segnext("segnext_t", num_classes=8)
    torch.save({"state_dict": start.state_dict()}, tmp_path / "start.pth")
    before = {k: v.clone() for k, v in start.state_dict().items()}
    summary = train(_tiny_config(tmp_path, pretrained=str(tmp_path / "start.pth"), frozen_stages=2), progress=False)
    after = torch.load(summary["checkpoint"], weights_only=True)["state_dict"]
    frozen = ("backbone.patch_embed1.", "backbone.block1.", "backbone.norm1.", "backbone.patch_embed2.",
              "backbone.block2.", "backbone.norm2.")  # fmt: skip
    for key, value in before.items():
        if key.startswith(frozen) and not key.endswith("num_batches_tracked"):
            assert torch.equal(after[key], value), key  # weights and BatchNorm running statistics
    assert not torch.equal(after["backbone.block3.0.mlp.fc1.weight"], before["backbone.block3.0.mlp.fc1.weight"])
    assert not torch.equal(after["backbone.patch_embed3.norm.running_mean"], before["backbone.patch_embed3.norm.running_mean"])
    assert not torch.equal(after["decode_head.conv_seg.weight"], before["decode_head.conv_seg.weight"])


def test_frozen_stages_out_of_range_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="frozen_stages must be between 0 and 4"):
        train(_tiny_config(tmp_path, frozen_stages=5), progress=False)


def test_unknown_key_in_train_config_exits_2(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("iters: 2\noptim: {lrr: 0.1}\n")
    out = subprocess.run([sys.executable, "-m", "streamseg", "train", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 2 and "optim.lrr" in out.stderr and "'lr'" in out.stderr


def test_schedule_warmup_then_poly():
    cfg = from_dict(TrainConfig, {"iters": 1000, "optim": {"lr": 1e-3, "warmup_iters": 100}})
    assert lr_at(0, cfg) == pytest.approx(1e-3 * 1e-6, rel=1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-3 * 0.9)
    assert lr_at(500, cfg) == pytest.approx(1e-3 * 0.5)
    assert lr_at(1000, cfg) == pytest.approx(0.0)
    assert all(lr_at(i, cfg) <= lr_at(i - 1, cfg) for i in range(101, 1000))
    # mmseg warms up for 1500 of 160k iterations; short runs keep the fraction
    assert lr_at(10, from_dict(TrainConfig, {"iters": 16000})) < lr_at(150, from_dict(TrainConfig, {"iters": 16000}))


def test_param_groups_recipe():
    model = build_segnext("segnext_t", num_classes=3)
    groups = param_groups(model, 6e-5, 0.01, 10.0)
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert by_id[id(model.decode_head.conv_seg.weight)]["lr"] == pytest.approx(6e-4)
    assert by_id[id(model.backbone.block1[0].attn.proj_1.weight)]["lr"] == pytest.approx(6e-5)
    assert by_id[id(model.backbone.block1[0].norm1.weight)]["weight_decay"] == 0.0
    assert by_id[id(model.backbone.norm1.weight)]["weight_decay"] == 0.0
    assert by_id[id(model.decode_head.squeeze.gn.weight)]["weight_decay"] == 0.0
    assert by_id[id(model.backbone.block1[0].attn.proj_1.weight)]["weight_decay"] == 0.01
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert isinstance(groups[0]["params"][0], torch.nn.Parameter)


@pytest.mark.parametrize("user_policy", [None, "ACTIVE"])
def test_train_gives_openmp_its_spin_wait_back(user_policy):
    """streamseg's PASSIVE default slows training ~30 %; `streamseg train` drops it, never the user's own."""
    code = (
        "import os\n"
        "import streamseg\n"
        f"assert os.environ['OMP_WAIT_POLICY'] == {user_policy or 'PASSIVE'!r}\n"
        "from streamseg.commands.train import _spin_wait_openmp\n"
        "_spin_wait_openmp()\n"
        "print(os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_policy:
        env["OMP_WAIT_POLICY"] = user_policy
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(user_policy)
