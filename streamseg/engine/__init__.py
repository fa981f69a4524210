"""The inference engine: :class:`Segmenter` turns RGB uint8 frames into class-id masks."""

from streamseg.engine.segmenter import DEFAULT_WEIGHTS, EngineConfig, ModelInfo, Segmenter, load_model

__all__ = ["Segmenter", "EngineConfig", "ModelInfo", "load_model", "DEFAULT_WEIGHTS"]
