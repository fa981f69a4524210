"""The streaming pipeline: sources -> batcher/engine -> sinks (threads, queues and shutdown: :mod:`.core`)."""

from streamseg.pipeline.config import PipelineConfig, RayConfig, SinkConfig, SourceConfig
from streamseg.pipeline.core import Pipeline
from streamseg.pipeline.stats import PipelineStats
from streamseg.pipeline.stream import stream

__all__ = ["Pipeline", "PipelineConfig", "RayConfig", "SourceConfig", "SinkConfig", "PipelineStats", "stream"]
