"""Training SegNeXt with the paper's recipe (AdamW, poly schedule, head lr x10) on folders or synthetic scenes."""

from streamseg.training.config import AugmentConfig, DataConfig, EvalConfig, OptimConfig, TrainConfig
from streamseg.training.loop import train

__all__ = ["TrainConfig", "DataConfig", "AugmentConfig", "OptimConfig", "EvalConfig", "train"]
