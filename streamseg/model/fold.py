"""Inference-time folding that keeps float32 maths.

BatchNorm before a 1x1 conv folds into that conv; layer scale folds into the conv
that feeds it (``proj_2``, ``fc2``); the block's normalised shortcut becomes one
per-channel scale of ``x``. Stem/patch-embed BatchNorms fold into their convs.
The folded model computes the same function up to float rounding (checked at 1e-4).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from streamseg.errors import ConfigError
from streamseg.model.mscan import Block, OverlapPatchEmbed, StemConv

__all__ = ["fold_model", "FoldedBlock"]


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


@torch.no_grad()
def _conv_after_affine(conv: nn.Conv2d, scale: Tensor, shift: Tensor) -> nn.Conv2d:
    """1x1 conv applied to ``scale * x + shift``  ->  one conv applied to ``x``."""
    out = copy.deepcopy(conv)
    w = conv.weight[:, :, 0, 0]
    out.weight.copy_((w * scale[None, :])[:, :, None, None])
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    out.bias = nn.Parameter(bias + w @ shift)
    return out


@torch.no_grad()
def _conv_then_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """conv followed by BatchNorm -> one conv."""
    scale, shift = _bn_affine(bn)
    out = copy.deepcopy(conv)
    out.weight.mul_(scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    out.bias = nn.Parameter(bias * scale + shift)
    return out


@torch.no_grad()
def _scaled_conv(conv: nn.Conv2d, scale: Tensor, extra_bias: Tensor | None = None) -> nn.Conv2d:
    """``scale * (conv(x) + extra_bias)`` -> one conv."""
    out = copy.deepcopy(conv)
    out.weight.mul_(scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    if extra_bias is not None:
        bias = bias + extra_bias
    out.bias = nn.Parameter(bias * scale)
    return out


class FoldedBlock(nn.Module):
    """``x*s1 + proj_2'(MSCA(GELU(proj_1'(x))))`` then ``+ fc2'(GELU(dw(fc1'(x))))``."""

    def __init__(self, block: Block) -> None:
        super().__init__()
        with torch.no_grad():
            a1, b1 = _bn_affine(block.norm1)
            a2, b2 = _bn_affine(block.norm2)
            ls1, ls2 = block.layer_scale_1.detach(), block.layer_scale_2.detach()
            self.proj_1 = _conv_after_affine(block.attn.proj_1, a1, b1)
            self.act = nn.GELU()
            self.spatial_gating_unit = copy.deepcopy(block.attn.spatial_gating_unit)
            self.proj_2 = _scaled_conv(block.attn.proj_2, ls1, b1)
            self.register_buffer("shortcut_scale", (1.0 + ls1 * a1).view(1, -1, 1, 1).clone())
            self.fc1 = _conv_after_affine(block.mlp.fc1, a2, b2)
            self.dwconv = copy.deepcopy(block.mlp.dwconv)
            self.fc2 = _scaled_conv(block.mlp.fc2, ls2)

    def forward(self, x: Tensor) -> Tensor:
        t = self.proj_2(self.spatial_gating_unit(self.act(self.proj_1(x))))
        x = torch.addcmul(t, x, self.shortcut_scale)
        return x + self.fc2(self.act(self.dwconv(self.fc1(x))))


class FoldedStem(nn.Module):
    def __init__(self, stem: StemConv) -> None:
        super().__init__()
        p = stem.proj
        self.proj = nn.Sequential(_conv_then_bn(p[0], p[1]), nn.GELU(), _conv_then_bn(p[3], p[4]))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class FoldedPatchEmbed(nn.Module):
    def __init__(self, embed: OverlapPatchEmbed) -> None:
        super().__init__()
        self.proj = _conv_then_bn(embed.proj, embed.norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


def fold_model(model: nn.Module) -> nn.Module:
    """A folded deep copy of an eval-mode SegNeXt (the original is left untouched)."""
    if model.training:
        raise ConfigError("fold_model needs an eval-mode model (BatchNorm running statistics are folded in)")
    folded = copy.deepcopy(model)
    backbone = folded.backbone
    for i, (embed, blocks, _) in enumerate(backbone.stages(), start=1):  # folded parts are kept: idempotent
        if isinstance(embed, StemConv):
            setattr(backbone, f"patch_embed{i}", FoldedStem(embed))
        elif isinstance(embed, OverlapPatchEmbed):
            setattr(backbone, f"patch_embed{i}", FoldedPatchEmbed(embed))
        for j, block in enumerate(blocks):
            if isinstance(block, Block):
                blocks[j] = FoldedBlock(block)
    return folded.eval()
