"""MSCAN, the convolutional-attention encoder of SegNeXt (Guo et al., NeurIPS 2022).

Parameter names follow mmsegmentation 1.x (``patch_embed1.proj.0``, ``block1.0.attn.
spatial_gating_unit.conv0_1``, ...) so its checkpoints load without renaming.
Everything is NCHW (and runs channels_last); the stage-end LayerNorm normalises over
channels at each pixel.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MSCAN", "DropPath"]


class DropPath(nn.Module):
    """Stochastic depth per sample: drops the whole residual branch of some samples in training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class StemConv(nn.Module):
    """Two stride-2 3x3 convs (1/4 resolution): conv-BN-GELU-conv-BN, no activation at the end."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, stride=2, padding=1),
            nn.BatchNorm2d(mid),
            nn.GELU(),
            nn.Conv2d(mid, out_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class OverlapPatchEmbed(nn.Module):
    """Stride-2 3x3 conv + BN between stages (ceil(n/2) output size for any n)."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x))


def _dw(channels: int, kernel: tuple[int, int]) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, kernel, padding=(kernel[0] // 2, kernel[1] // 2), groups=channels)


class MSCA(nn.Module):
    """Multi-scale convolutional attention: 5x5 depth-wise + three strip-conv pairs, 1x1 mix, gate."""

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.conv0 = _dw(channels, (5, 5))
        self.conv0_1 = _dw(channels, (1, 7))
        self.conv0_2 = _dw(channels, (7, 1))
        self.conv1_1 = _dw(channels, (1, 11))
        self.conv1_2 = _dw(channels, (11, 1))
        self.conv2_1 = _dw(channels, (1, 21))
        self.conv2_2 = _dw(channels, (21, 1))
        self.conv3 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b = self.conv0(x)
        s = b + self.conv0_2(self.conv0_1(b)) + self.conv1_2(self.conv1_1(b)) + self.conv2_2(self.conv2_1(b))
        return self.conv3(s) * x


class Attention(nn.Module):
    """proj_1 -> GELU -> MSCA -> proj_2, with the (normalised) input as inner shortcut."""

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(channels, channels, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = MSCA(channels=channels)
        self.proj_2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x)))) + x


class Mlp(nn.Module):
    """1x1 expand -> 3x3 depth-wise -> GELU -> 1x1 project."""

    def __init__(self, *, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class Block(nn.Module):
    """MSCAN block: x + ls1 * Attention(BN(x)); x + ls2 * Mlp(BN(x)), with stochastic depth."""

    def __init__(self, *, channels: int, mlp_ratio: float, drop_path: float = 0.0, layer_scale_init: float = 1e-2) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.attn = Attention(channels=channels)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2d(channels)
        self.mlp = Mlp(channels=channels, hidden=int(channels * mlp_ratio))
        self.layer_scale_1 = nn.Parameter(torch.full((channels,), layer_scale_init))
        self.layer_scale_2 = nn.Parameter(torch.full((channels,), layer_scale_init))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (each pixel normalised on its own)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(
            0, 3, 1, 2
        )


class MSCAN(nn.Module):
    """Four stages at strides 4, 8, 16, 32; ``forward`` returns all four stage outputs (NCHW)."""

    def __init__(
        self,
        *,
        embed_dims: Sequence[int] = (32, 64, 160, 256),
        depths: Sequence[int] = (3, 3, 5, 2),
        mlp_ratios: Sequence[float] = (8, 8, 4, 4),
        drop_path_rate: float = 0.1,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.embed_dims = tuple(embed_dims)
        self.depths = tuple(depths)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        start = 0
        for i, (dim, depth, ratio) in enumerate(zip(embed_dims, depths, mlp_ratios), start=1):
            if i == 1:
                embed: nn.Module = StemConv(in_channels=in_channels, out_channels=dim)
            else:
                embed = OverlapPatchEmbed(in_channels=embed_dims[i - 2], out_channels=dim)
            blocks = nn.ModuleList(
                Block(channels=dim, mlp_ratio=ratio, drop_path=rates[start + j]) for j in range(depth)
            )
            start += depth
            setattr(self, f"patch_embed{i}", embed)
            setattr(self, f"block{i}", blocks)
            setattr(self, f"norm{i}", ChannelLayerNorm(dim, eps=1e-5))

    def stages(self) -> list[tuple[nn.Module, nn.ModuleList, nn.Module]]:
        """(patch embedding, blocks, norm) of each stage in order; flat attributes keep mmseg's parameter names."""
        return [
            (getattr(self, f"patch_embed{i}"), getattr(self, f"block{i}"), getattr(self, f"norm{i}"))
            for i in range(1, len(self.depths) + 1)
        ]

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for embed, blocks, norm in self.stages():
            x = embed(x)
            for block in blocks:
                x = block(x)
            x = norm(x)
            outs.append(x)
        return outs
