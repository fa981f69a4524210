"""The inference engine: :class:`Segmenter` turns RGB uint8 frames into class-id masks."""

from streamseg.engine.config import DEFAULT_WEIGHTS, EngineConfig
from streamseg.engine.loading import ModelInfo, load_model
from streamseg.engine.segmenter import Segmenter

__all__ = ["Segmenter", "EngineConfig", "ModelInfo", "load_model", "DEFAULT_WEIGHTS"]
