"""The training loop: AdamW with parameter groups, warm-up + poly lr, bf16 autocast, eval, checkpoints, resume."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from streamseg.config import to_dict
from streamseg.errors import ConfigError
from streamseg.training.config import TrainConfig
from streamseg.datasets import folder_pairs, read_image, read_mask
from streamseg.training.data import (
    FolderDataset,
    SyntheticDataset,
    folder_classes,
    infinite,
    warmup_iters_for,
    worker_init,
)

log = logging.getLogger(__name__)

_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


def param_groups(model: nn.Module, lr: float, weight_decay: float, head_lr_mult: float) -> list[dict[str, Any]]:
    """Four groups: (backbone | head) x (decayed | not). Norm layers and ``pos_block`` get no weight decay."""
    no_decay = set()
    for name, module in model.named_modules():
        if isinstance(module, _NORMS):
            no_decay.update(f"{name}.{p}" for p, _ in module.named_parameters(recurse=False))
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        head = name.startswith("decode_head.")
        decay = name not in no_decay and "pos_block" not in name
        groups.setdefault((head, decay), []).append(p)
    return [
        {
            "params": params,
            "lr": lr * (head_lr_mult if head else 1.0),
            "lr_mult": head_lr_mult if head else 1.0,
            "weight_decay": weight_decay if decay else 0.0,
        }
        for (head, decay), params in sorted(groups.items())
    ]


def freeze_stages(model: nn.Module, n: int) -> list[nn.Module]:
    """Stop training the first ``n`` encoder stages (stem or patch embedding, blocks, norm).

    Their parameters get no gradients, so backward stops at stage ``n + 1``: with two of
    segnext_t's four stages frozen a training step costs half as much on a CPU, and the
    frozen stages' low-level features are what a trained model changes least. Returns the
    frozen modules so that the loop keeps them in eval mode (BatchNorm statistics fixed).
    """
    backbone = model.backbone
    stages = len(backbone.depths)
    if not 0 <= n <= stages:
        raise ConfigError(f"frozen_stages must be between 0 and {stages} for {type(backbone).__name__}, got {n}")
    frozen = [part for stage in backbone.stages()[:n] for part in stage]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def _train_mode(model: nn.Module, frozen: list[nn.Module]) -> nn.Module:
    model.train()
    for module in frozen:
        module.eval()
    return model


def lr_at(it: int, cfg: TrainConfig) -> float:
    """Linear warm-up from ``lr * warmup_ratio``, then poly decay to ``min_lr`` (power 1.0)."""
    o = cfg.optim
    warmup = warmup_iters_for(cfg.iters, o.warmup_iters)
    poly = (o.lr - o.min_lr) * (1 - min(it, cfg.iters) / cfg.iters) ** o.power + o.min_lr
    if it < warmup:
        k = (1 - it / warmup) * (1 - o.warmup_ratio)
        return poly * (1 - k)
    return poly


def _device_and_dtype(cfg: TrainConfig) -> tuple[torch.device, torch.dtype | None]:
    from streamseg.engine.device import cpu_has_native_bf16, pick_device

    device = pick_device(cfg.device)
    if cfg.precision == "fp32":
        return device, None
    if cfg.precision == "bf16" or (device.type == "cpu" and cpu_has_native_bf16()) or device.type == "cuda":
        return device, torch.bfloat16
    return device, None


def _classes(cfg: TrainConfig) -> tuple[tuple[str, ...], np.ndarray]:
    if cfg.data.kind == "synthetic":
        from streamseg.synth import CLASSES, PALETTE

        return tuple(CLASSES), np.asarray(PALETTE)
    meta = Path(cfg.data.path) / "classes.json"
    n = cfg.num_classes or folder_classes(cfg.data.path)
    if n is None:
        raise ConfigError("num_classes is required for a folder dataset without classes.json")
    if meta.exists():
        data = json.loads(meta.read_text())
        if "palette" in data:
            return tuple(data["classes"]), np.asarray(data["palette"], np.uint8)
    from streamseg.datasets import make_palette

    return tuple(f"class_{i}" for i in range(n)), make_palette(n)


def evaluate_model(model: nn.Module, cfg: TrainConfig, classes: tuple[str, ...], palette: np.ndarray) -> dict[str, Any]:
    """mIoU on the held-out data through the inference engine (same preprocessing as deployment).

    Leaves the model in eval mode; the caller puts it back into its training mode.
    """
    from streamseg.engine import ModelInfo, Segmenter
    from streamseg.metrics import ConfusionMatrix

    info = ModelInfo(variant=cfg.model, classes=classes, palette=palette, test_scale=tuple(cfg.test_scale))
    seg = Segmenter(None, model=model.eval(), info=info, device=cfg.device)
    cm = ConfusionMatrix(len(classes))
    for img, gt in _eval_items(cfg):
        cm.update(seg(img), gt)
    return {"miou": cm.miou(), "aacc": cm.aacc(), "iou": dict(zip(classes, map(float, cm.iou())))}


def _eval_items(cfg: TrainConfig):
    e = cfg.eval
    if e.kind == "folder":
        for image, mask in folder_pairs(e.path):
            yield read_image(image), read_mask(mask)
        return
    import cv2

    from streamseg.synth import SceneClip

    clip = SceneClip(seed=e.seed, size=tuple(e.size))
    for img, mask in clip.frames(e.frames):
        ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
        yield np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]), mask


def save_checkpoint(path: Path, model: nn.Module, cfg: TrainConfig, it: int, classes, palette, optimizer=None) -> None:
    """mmseg layout (``state_dict`` with ``backbone.``/``decode_head.`` keys, ``meta``), plain data only."""
    meta = {
        "iter": it,
        "variant": cfg.model,
        "classes": list(classes),
        "palette": [list(map(int, c)) for c in palette],
        "nmf_rank": cfg.nmf_rank,
        "test_scale": list(cfg.test_scale),
        "config": json.dumps(to_dict(cfg)),
    }
    obj = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta}
    if optimizer is not None:
        obj["optimizer"] = optimizer.state_dict()
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train and return a summary (final metrics, checkpoint path)."""
    from streamseg.model import build_segnext, load_checkpoint

    torch.manual_seed(cfg.seed)
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    classes, palette = _classes(cfg)
    model = build_segnext(cfg.model, num_classes=len(classes), nmf_rank=cfg.nmf_rank)
    if cfg.pretrained:
        load_checkpoint(model, cfg.pretrained)
    frozen = freeze_stages(model, cfg.frozen_stages)
    device, amp_dtype = _device_and_dtype(cfg)
    model = _train_mode(model.to(device).to(memory_format=torch.channels_last), frozen)
    o = cfg.optim
    optimizer = torch.optim.AdamW(param_groups(model, o.lr, o.weight_decay, o.head_lr_mult), lr=o.lr, betas=o.betas)
    start = 0
    latest = work / "latest.pth"
    if resume:
        if not latest.exists():
            raise ConfigError(f"--resume: no checkpoint at {latest}")
        ckpt = torch.load(latest, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["meta"]["iter"])
        log.info("resumed from %s at iteration %d", latest, start)
    loader_options: dict[str, Any] = {
        "num_workers": cfg.workers,
        "persistent_workers": cfg.workers > 0,
        "worker_init_fn": worker_init,
        "pin_memory": device.type == "cuda",  # makes the non_blocking copies below asynchronous
    }
    if cfg.data.kind == "synthetic":
        dataset = SyntheticDataset(cfg.data, cfg.augment, start=start * cfg.batch_size)
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, **loader_options)
    else:
        dataset = FolderDataset(cfg.data, cfg.augment)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=len(dataset) >= cfg.batch_size, **loader_options
        )
    batches = infinite(loader)
    log_path = work / "train_log.jsonl"
    history = []
    from tqdm import tqdm

    bar = tqdm(total=cfg.iters, initial=start, disable=not progress, dynamic_ncols=True, desc="train")
    t0 = time.perf_counter()
    loss_avg = None
    for it in range(start, cfg.iters):
        lr = lr_at(it, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        x, y = next(batches)
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(x)
        logits = F.interpolate(logits.float(), size=y.shape[1:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, y, ignore_index=255)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at iteration {it}: lower optim.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_avg = loss.item() if loss_avg is None else 0.9 * loss_avg + 0.1 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{loss_avg:.4f}", lr=f"{lr:.2e}")
        done = it + 1
        record: dict[str, Any] | None = None
        if done % cfg.log_interval == 0 or done == cfg.iters:
            record = {"iter": done, "loss": round(loss_avg, 5), "lr": lr, "time_s": round(time.perf_counter() - t0, 1)}
        if cfg.eval.interval and (done % cfg.eval.interval == 0 or done == cfg.iters):
            metrics = evaluate_model(model, cfg, classes, palette)
            _train_mode(model, frozen)
            record = dict(record or {"iter": done}, miou=round(metrics["miou"], 4), aacc=round(metrics["aacc"], 4))
            bar.write(f"iter {done}: mIoU {metrics['miou']:.4f} aAcc {metrics['aacc']:.4f}")
        if record:
            history.append(record)
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if done % cfg.checkpoint_interval == 0 or done == cfg.iters:
            save_checkpoint(latest, model, cfg, done, classes, palette, optimizer)
    bar.close()
    final = work / "final.pth"
    save_checkpoint(final, model, cfg, cfg.iters, classes, palette)
    last_eval = next((r for r in reversed(history) if "miou" in r), {})
    return {"checkpoint": str(final), "iters": cfg.iters, "miou": last_eval.get("miou"), "log": str(log_path)}


def export_safetensors(checkpoint: str | Path, out: str | Path, *, half: bool = True) -> Path:
    """Write a checkpoint's weights as (fp16) safetensors, the format the package bundles."""
    from safetensors.torch import save_file

    from streamseg.model.checkpoint import map_checkpoint_keys, read_checkpoint_with_meta

    state, meta = read_checkpoint_with_meta(checkpoint)
    state = map_checkpoint_keys(state)
    tensors = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous()
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    }
    keep = ("variant", "classes", "palette", "nmf_rank", "test_scale", "iter")
    out = Path(out)
    save_file(tensors, str(out), metadata={k: json.dumps(meta[k]) for k in keep if k in meta})
    return out


