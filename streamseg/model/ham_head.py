"""LightHamHead: the SegNeXt decoder, a "hamburger" whose filling is a 2-D NMF.

The NMF is the only random step at inference: its initial bases are drawn per
forward. ``nmf_bases`` lets callers inject them (parity, per-stream policies) and
``return_bases`` hands back the converged bases (warm starts across frames).
The NMF always runs in float32, also under autocast.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamseg.errors import InputError

__all__ = ["NMF2D", "LightHamHead", "reference_bases"]


def reference_bases(batch: int, channels: int, rank: int, *, device: torch.device | str = "cpu") -> Tensor:
    """mmseg's draw: one ``torch.rand((B, D, R))`` on the default CPU generator, L2-normalised over D.

    Drawn on the CPU even for a GPU model, because that is what the reference does
    (a CUDA draw is a different random stream and gives other masks).
    """
    bases = F.normalize(torch.rand((batch, channels, rank)), dim=1)
    if torch.device(device).type == "cuda":  # from pinned memory: a pageable copy would synchronise the stream
        return bases.pin_memory().to(device, non_blocking=True)
    return bases.to(device)


class NMF2D(nn.Module):
    """Non-negative matrix factorisation of a ``(B, D, H*W)`` map with multiplicative updates.

    ``steps`` coefficient+bases updates (6 in training, 7 in eval) follow a softmax
    initialisation of the coefficients (temperature 1, as mmseg computes it), then
    one final coefficient update. As in mmseg, gradients flow only through that
    final update ("one-step gradient").
    """

    def __init__(self, *, rank: int = 16, train_steps: int = 6, eval_steps: int = 7, eps: float = 1e-6) -> None:
        super().__init__()
        self.rank = rank
        self.train_steps = train_steps
        self.eval_steps = eval_steps
        self.eps = eps

    def _coef_step(self, x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
        numerator = torch.bmm(x.transpose(1, 2), bases)
        denominator = coef.bmm(bases.transpose(1, 2).bmm(bases))
        return coef * numerator / (denominator + self.eps)

    def _bases_step(self, x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
        numerator = torch.bmm(x, coef)
        denominator = bases.bmm(coef.transpose(1, 2).bmm(coef))
        return bases * numerator / (denominator + self.eps)

    def forward(self, x: Tensor, bases: Tensor | None = None, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Return (reconstruction ``(B, D, H, W)``, converged bases ``(B, D, R)``)."""
        b, d, h, w = x.shape
        x = x.reshape(b, d, h * w).float()
        if bases is None:
            bases = reference_bases(b, d, self.rank, device=x.device)
        elif bases.shape != (b, d, self.rank):
            raise InputError(f"NMF bases must have shape {(b, d, self.rank)}, got {tuple(bases.shape)}")
        bases = bases.to(device=x.device, dtype=torch.float32)
        if steps is None:
            steps = self.train_steps if self.training else self.eval_steps
        with torch.no_grad():
            coef = torch.softmax(torch.bmm(x.transpose(1, 2), bases), dim=-1)
            for _ in range(steps):
                coef = self._coef_step(x, bases, coef)
                bases = self._bases_step(x, bases, coef)
        coef = self._coef_step(x, bases, coef)
        out = torch.bmm(bases, coef.transpose(1, 2))
        return out.reshape(b, d, h, w), bases

    def extra_repr(self) -> str:
        return f"rank={self.rank}, train_steps={self.train_steps}, eval_steps={self.eval_steps}"


class ConvGNReLU(nn.Module):
    """1x1 conv (no bias) + GroupNorm(32) + optional ReLU; key names ``conv`` / ``gn`` as in mmseg."""

    def __init__(self, *, in_channels: int, out_channels: int, act: bool = True, groups: int = 32) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.gn = nn.GroupNorm(groups, out_channels)
        self.act = nn.ReLU() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.gn(self.conv(x)))


class BiasConv(nn.Module):
    """A plain 1x1 conv with bias, keyed ``conv`` (mmseg's ConvModule without norm)."""

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Hamburger(nn.Module):
    """ReLU(x + GN(conv(NMF(ReLU(conv(x))))))."""

    def __init__(self, *, channels: int, rank: int) -> None:
        super().__init__()
        self.ham_in = BiasConv(channels=channels)
        self.ham = NMF2D(rank=rank)
        self.ham_out = ConvGNReLU(in_channels=channels, out_channels=channels, act=False)

    def forward(self, x: Tensor, bases: Tensor | None = None, steps: int | None = None) -> tuple[Tensor, Tensor]:
        enjoy = F.relu(self.ham_in(x))
        with torch.autocast(device_type=x.device.type, enabled=False):
            enjoy, bases = self.ham(enjoy, bases, steps)
        enjoy = self.ham_out(enjoy.to(x.dtype))
        return F.relu(x + enjoy), bases


class LightHamHead(nn.Module):
    """Resize stages 2-4 to the stage-2 size, concat, squeeze, hamburger, align, classify."""

    def __init__(
        self,
        *,
        in_channels: Sequence[int],
        channels: int = 256,
        ham_channels: int | None = None,
        num_classes: int = 150,
        nmf_rank: int = 16,
        dropout: float = 0.1,
        in_index: Sequence[int] = (1, 2, 3),
    ) -> None:
        super().__init__()
        ham_channels = ham_channels or channels
        self.in_index = tuple(in_index)
        self.num_classes = num_classes
        self.squeeze = ConvGNReLU(in_channels=sum(in_channels), out_channels=ham_channels)
        self.hamburger = Hamburger(channels=ham_channels, rank=nmf_rank)
        self.align = ConvGNReLU(in_channels=ham_channels, out_channels=channels)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(
        self, feats: Sequence[Tensor], bases: Tensor | None = None, steps: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return (logits at the stage-2 size, converged NMF bases)."""
        xs = [feats[i] for i in self.in_index]
        size = xs[0].shape[2:]
        xs = [F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in xs]
        x = self.squeeze(torch.cat(xs, dim=1))
        x, bases = self.hamburger(x, bases, steps)
        return self.conv_seg(self.dropout(self.align(x))), bases
