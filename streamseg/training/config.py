"""Typed training configuration (loaded from YAML by ``streamseg train CONFIG.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamseg.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """``synthetic``: scenes generated on the fly; ``folder``: ``images/`` + ``masks/`` with matching names."""

    kind: str = "synthetic"
    path: str | None = None
    size: tuple[int, int] = (640, 360)  # synthetic scene size (width, height)
    seed: int = 0
    jpeg_quality: tuple[int, int] = (60, 95)  # synthetic: compression artefacts like a video's

    def validate(self) -> None:
        if self.kind not in ("synthetic", "folder"):
            raise ConfigError(f"data.kind must be 'synthetic' or 'folder', got {self.kind!r}")
        if self.kind == "folder" and not self.path:
            raise ConfigError("data.path is required for data.kind 'folder' (a folder with images/ and masks/)")


@dataclass(frozen=True)
class AugmentConfig:
    """mmseg's train pipeline: RandomResize(scale, ratio) -> RandomCrop -> RandomFlip -> PhotoMetricDistortion."""

    scale: tuple[int, int] = (2048, 512)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    crop_size: tuple[int, int] = (512, 512)  # (height, width)
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    photometric: bool = True
    hue_delta: int = 18  # OpenCV hue units (2 degrees), as mmseg; lower it where hue is a class cue
    pad_divisor: int = 32  # the engine pads to this multiple at test time; crops include that band


@dataclass(frozen=True)
class OptimConfig:
    """AdamW + linear warm-up + poly decay; head lr x ``head_lr_mult``; no decay on norms and ``pos_block``."""

    lr: float = 6e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    head_lr_mult: float = 10.0
    warmup_iters: int | None = None  # None: 1500 of 160k iterations, scaled to this run's length
    warmup_ratio: float = 1e-6
    power: float = 1.0
    min_lr: float = 0.0


@dataclass(frozen=True)
class EvalConfig:
    """Held-out data scored every ``interval`` iterations: a synthetic clip or a folder."""

    interval: int = 1000
    kind: str = "synthetic"
    path: str | None = None
    seed: int = 1_000_000  # never a training seed
    frames: int = 24
    size: tuple[int, int] = (640, 360)


@dataclass(frozen=True)
class TrainConfig:
    model: str = "segnext_t"
    num_classes: int | None = None  # synthetic: 8; folder: from classes.json or required
    nmf_rank: int = 16
    pretrained: str | None = None  # backbone (ImageNet MSCAN) or full weights to start from
    frozen_stages: int = 0  # fine-tuning: the first N encoder stages keep their weights (mmseg's frozen_stages)
    test_scale: tuple[int, int] = (2048, 512)  # stored with the checkpoint for inference
    iters: int = 160_000
    batch_size: int = 16
    workers: int = 1
    seed: int = 0
    precision: str = "auto"  # auto (bf16 where the CPU/GPU has it) | fp32 | bf16
    device: str = "auto"
    work_dir: str = "work_dirs/segnext"
    checkpoint_interval: int = 1000
    log_interval: int = 10
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        if self.iters < 1 or self.batch_size < 1:
            raise ConfigError("iters and batch_size must be >= 1")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
