"""Reading SegNeXt checkpoints from mmseg 1.x, the original release, bare state dicts and MSCAN backbones.

:func:`map_checkpoint_keys` is a pure function from foreign key names to ours
(which are mmseg 1.x's); :func:`load_checkpoint` reads a file safely (never
unpickling code), maps it, checks it against the model and explains mismatches.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from streamseg.errors import CheckpointError, WeightsNotFoundError

__all__ = [
    "map_checkpoint_keys",
    "extract_state_dict",
    "read_checkpoint",
    "read_checkpoint_with_meta",
    "load_checkpoint",
    "load_state",
    "describe_state_dict",
]

log = logging.getLogger(__name__)

_BACKBONE_KEY = re.compile(r"^(patch_embed\d|block\d|norm\d)\.")


def extract_state_dict(obj: Any) -> dict[str, Tensor]:
    """The tensor dict inside a loaded checkpoint (``state_dict`` / ``model`` wrappers or bare)."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "module"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
                return dict(inner)
        if obj and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
            return dict(obj)
    raise CheckpointError(
        "no state dict found: expected a mapping of parameter names to tensors, "
        "or a dict with a 'state_dict' entry (mmseg) holding one"
    )


def map_checkpoint_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename foreign keys to streamseg's (= mmseg 1.x's) names. Pure: no I/O, no model.

    - ``module.`` prefixes (DataParallel/DDP) are stripped;
    - the original SegNeXt release's ``mlp.dwconv.dwconv.*`` becomes ``mlp.dwconv.*``;
    - backbone-only files (ImageNet MSCAN: ``patch_embed1...``, ``block1...``) get a
      ``backbone.`` prefix and their classifier ``head.*`` is dropped.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        while key.startswith("module."):
            key = key[len("module.") :]
        key = key.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv.")
        if _BACKBONE_KEY.match(key):
            key = "backbone." + key
        elif key.startswith("head."):
            continue  # ImageNet classifier of a backbone-only file
        out[key] = value
    return out


def read_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """Load a ``.pth``/``.pt``/``.safetensors`` file as a state dict, without executing pickled code."""
    return read_checkpoint_with_meta(path)[0]


def read_checkpoint_with_meta(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The state dict and the file's ``meta`` (mmseg's dict, or safetensors metadata with JSON values)."""
    path = Path(path)
    if not path.exists():
        raise WeightsNotFoundError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the download or copy did not finish; fetch it again")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                raw_meta = f.metadata() or {}
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc}); fetch it again") from exc
        meta: dict[str, Any] = {}
        for key, value in raw_meta.items():
            try:
                meta[key] = json.loads(value)
            except ValueError:
                meta[key] = value
        return state, meta
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds pickled objects other than tensors and plain containers; streamseg never "
            f"unpickles code. If you trust the file, re-save its state dict with torch.save(sd, ...). ({exc})"
        ) from exc
    except Exception as exc:  # torch raises many types (RuntimeError, KeyError, EOFError, ...) on junk
        raise CheckpointError(
            f"{path} is truncated, corrupt or not a PyTorch checkpoint ({type(exc).__name__}: {exc}); "
            "delete it and download or copy it again"
        ) from exc
    try:
        state = extract_state_dict(obj)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    meta = obj.get("meta") if isinstance(obj, dict) else None
    return state, dict(meta) if isinstance(meta, dict) else {}


def describe_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Architecture facts readable from weights: embed dims, depths, head channels, classes."""
    from streamseg.model.segnext import VARIANTS

    info: dict[str, Any] = {}
    dims = []
    for i in range(1, 5):
        w = state_dict.get(f"backbone.patch_embed{i}.proj.3.weight" if i == 1 else f"backbone.patch_embed{i}.proj.weight")
        if w is None:
            break
        dims.append(int(w.shape[0]))
    depths = []
    for i in range(1, 5):
        idx = {int(m.group(1)) for k in state_dict if (m := re.match(rf"backbone\.block{i}\.(\d+)\.", k))}
        depths.append(max(idx) + 1 if idx else 0)
    info["embed_dims"] = tuple(dims)
    info["depths"] = tuple(depths)
    seg = state_dict.get("decode_head.conv_seg.weight")
    if seg is not None:
        info["num_classes"] = int(seg.shape[0])
        info["head_channels"] = int(seg.shape[1])
    for name, cfg in VARIANTS.items():
        if cfg.embed_dims == info["embed_dims"] and cfg.depths == info["depths"]:
            if seg is None or cfg.head_channels == info.get("head_channels"):
                info["variant"] = name
    return info


def load_checkpoint(model: nn.Module, ref: str | os.PathLike, *, strict: bool = True) -> dict[str, Any]:
    """Load weights into ``model`` from a path, an http(s) URL or a registered weights name.

    A full-model load is strict: missing, unexpected or mis-shaped keys raise one
    :class:`CheckpointError` listing them and saying what to do. A backbone-only
    file loads into ``model.backbone``. Returns facts about the file
    (``variant``, ``num_classes``, ``backbone_only``, ``path``, ``spec``).
    """
    if Path(ref).exists():
        path, spec = Path(ref), None
    else:
        from streamseg.weights import resolve_weights

        path, spec = resolve_weights(ref)
    info = load_state(model, map_checkpoint_keys(read_checkpoint(path)), path, strict=strict)
    info["spec"] = spec
    return info


def load_state(model: nn.Module, state: dict[str, Tensor], path: str | os.PathLike, *, strict: bool = True) -> dict[str, Any]:
    """:func:`load_checkpoint` for a state dict already read and mapped (``path`` names it in messages)."""
    info = describe_state_dict(state)
    info.update(path=str(path))
    own = model.state_dict()
    backbone_only = not any(k.startswith("decode_head.") for k in state)
    info["backbone_only"] = backbone_only
    expected = {k: v for k, v in own.items() if not backbone_only or k.startswith("backbone.")}
    problems = _compare(model, state, expected, info)
    if problems and strict:
        raise CheckpointError(f"{path} does not fit this model:\n" + "\n".join(problems))
    # num_batches_tracked is bookkeeping some exporters drop: fill it rather than fail.
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = own[key]
    loadable = {k: v.to(own[k].dtype) for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(loadable, strict=False)
    log.info("loaded %d tensors from %s%s", len(loadable), path, " (backbone only)" if backbone_only else "")
    return info


def _compare(model: nn.Module, state: Mapping[str, Tensor], expected: Mapping[str, Tensor], info: Mapping[str, Any]) -> list[str]:
    """Human-readable mismatches, most useful first (variant, classes), then key lists."""
    problems: list[str] = []
    ours = getattr(model, "variant", "") or "this model"
    theirs = info.get("variant")
    if theirs and theirs != getattr(model, "variant", theirs):
        problems.append(f"- the checkpoint is a {theirs} but the model is {ours}: build it with build_segnext({theirs!r}, ...)")
    elif not theirs and info["embed_dims"] and hasattr(model, "config"):
        problems.append(
            f"- the checkpoint's backbone (embed dims {info['embed_dims']}, depths {info['depths']}) is not "
            f"{ours}'s ({model.config.embed_dims}, {model.config.depths})"
        )
    n_ckpt, n_model = info.get("num_classes"), getattr(model, "num_classes", None)
    if n_ckpt is not None and n_model is not None and n_ckpt != n_model and not problems:
        problems.append(f"- the checkpoint has {n_ckpt} classes, the model has {n_model}: pass num_classes={n_ckpt}")
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in model.state_dict()]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            shown = ", ".join(items[:8]) + (f", ... ({len(items) - 8} more)" if len(items) > 8 else "")
            problems.append(f"- {len(items)} {title}: {shown}")
    return problems
