"""SegNeXt = MSCAN encoder + LightHamHead decoder, in four sizes (T/S/B/L).

``build_segnext("segnext_t", num_classes=19)`` is the one entry point; variant
hyper-parameters are plain data in :data:`VARIANTS`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from torch import Tensor, nn

from streamseg.errors import ConfigError
from streamseg.model.ham_head import LightHamHead
from streamseg.model.mscan import MSCAN

__all__ = ["SegNeXt", "SegNeXtConfig", "VARIANTS", "build_segnext"]


@dataclass(frozen=True)
class SegNeXtConfig:
    """Architecture of one SegNeXt size (mmseg's configs, as plain values)."""

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    mlp_ratios: tuple[float, float, float, float]
    head_channels: int
    drop_path_rate: float


VARIANTS: dict[str, SegNeXtConfig] = {
    "segnext_t": SegNeXtConfig((32, 64, 160, 256), (3, 3, 5, 2), (8, 8, 4, 4), 256, 0.1),
    "segnext_s": SegNeXtConfig((64, 128, 320, 512), (2, 2, 4, 2), (8, 8, 4, 4), 256, 0.1),
    "segnext_b": SegNeXtConfig((64, 128, 320, 512), (3, 3, 12, 3), (8, 8, 4, 4), 512, 0.1),
    "segnext_l": SegNeXtConfig((64, 128, 320, 512), (3, 5, 27, 3), (8, 8, 4, 4), 1024, 0.3),
}


class SegNeXt(nn.Module):
    """Logits at 1/8 of the input size (``ceil`` at each stride-2 conv) for any input size."""

    def __init__(
        self,
        *,
        config: SegNeXtConfig,
        num_classes: int = 150,
        nmf_rank: int = 16,
        variant: str = "",
        drop_path_rate: float | None = None,
    ) -> None:
        super().__init__()
        self.variant = variant
        self.config = config
        self.num_classes = num_classes
        self.nmf_rank = nmf_rank
        self.backbone = MSCAN(
            embed_dims=config.embed_dims,
            depths=config.depths,
            mlp_ratios=config.mlp_ratios,
            drop_path_rate=config.drop_path_rate if drop_path_rate is None else drop_path_rate,
        )
        self.decode_head = LightHamHead(
            in_channels=config.embed_dims[1:],
            channels=config.head_channels,
            num_classes=num_classes,
            nmf_rank=nmf_rank,
        )

    @property
    def ham_channels(self) -> int:
        """D of the NMF (the shape of injected bases is ``(B, D, nmf_rank)``)."""
        return self.config.head_channels

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The four stage outputs, NCHW, at strides 4/8/16/32."""
        return self.backbone(x)

    def forward_with_bases(
        self, x: Tensor, nmf_bases: Tensor | None = None, nmf_steps: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits and the converged NMF bases (for warm starts on the next frame)."""
        return self.decode_head(self.backbone(x), nmf_bases, nmf_steps)

    def forward(self, x: Tensor, nmf_bases: Tensor | None = None) -> Tensor:
        """Logits ``[B, classes, ceil(H/8), ceil(W/8)]``; ``nmf_bases`` ``(B, D, R)`` replaces the random draw."""
        return self.forward_with_bases(x, nmf_bases)[0]


def build_segnext(
    variant: str = "segnext_t",
    *,
    num_classes: int = 150,
    nmf_rank: int = 16,
    drop_path_rate: float | None = None,
) -> SegNeXt:
    """Build a randomly initialised SegNeXt of the given size ("segnext_t", "segnext_s", ...)."""
    config = VARIANTS.get(variant)
    if config is None:
        close = difflib.get_close_matches(variant, VARIANTS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown model {variant!r}{hint} (known: {', '.join(VARIANTS)})")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    model = SegNeXt(
        config=config, num_classes=num_classes, nmf_rank=nmf_rank, variant=variant, drop_path_rate=drop_path_rate
    )
    _init_weights(model)
    return model


def _init_weights(model: nn.Module) -> None:
    """Training-from-scratch init (truncated-normal linear, fan-out normal convs), as mmseg's MSCAN does."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    head = getattr(model, "decode_head", None)
    if head is not None:
        nn.init.normal_(head.conv_seg.weight, 0.0, 0.01)
        nn.init.zeros_(head.conv_seg.bias)


