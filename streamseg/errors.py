"""streamseg's error hierarchy.

Every error is a :class:`StreamsegError` and also the builtin a caller would
naturally catch (``ValueError`` for bad input, ``OSError`` for I/O, ...), the
way PyAV's errors are both ``av.FFmpegError`` and ``OSError``. Each class carries
the exit code the command line gives it (``exit_code``): 2 where what the user
asked for is wrong (fix the command), 1 where the run failed.
"""

from __future__ import annotations

__all__ = [
    "StreamsegError",
    "EngineError",
    "ConfigError",
    "InputError",
    "CheckpointError",
    "WeightsNotFoundError",
    "DownloadError",
    "SourceError",
    "SinkError",
    "NumericalError",
    "OutOfMemoryError",
    "StageError",
    "BackendUnavailableError",
    "QuantizationError",
]


class StreamsegError(Exception):
    """Base class of every error raised on purpose by streamseg."""

    exit_code: int = 1


class ConfigError(StreamsegError, ValueError):
    """A configuration value, key or command-line argument is wrong (exit code 2)."""

    exit_code = 2


class InputError(StreamsegError, ValueError):
    """A frame or tensor handed to the engine cannot be segmented as given."""


class CheckpointError(StreamsegError, ValueError):
    """A checkpoint file does not fit the model, or is not a checkpoint at all."""

    exit_code = 2


class WeightsNotFoundError(StreamsegError, FileNotFoundError):
    """Named weights are unknown, or their file is missing and cannot be fetched."""

    exit_code = 2


class DownloadError(StreamsegError, ConnectionError):
    """A weights download failed (offline, bad HTTP status, hash mismatch)."""


class SourceError(StreamsegError, OSError):
    """A source cannot be opened or read (missing file, bad stream, no camera)."""


class SinkError(StreamsegError, OSError):
    """A sink cannot be opened or written (unwritable directory, disk full)."""


class NumericalError(StreamsegError, FloatingPointError):
    """The model produced NaN or Inf: the weights or the input are broken."""


class OutOfMemoryError(StreamsegError, MemoryError):
    """Even one frame does not fit in the device's memory at the model's test scale."""


class QuantizationError(StreamsegError, ValueError):
    """An int8 model would be measurably worse than the float one: it was refused (exit code 2)."""

    exit_code = 2


class EngineError(StreamsegError, RuntimeError):
    """The engine cannot run as configured on this device (e.g. CUDA graphs required but not capturable)."""


class BackendUnavailableError(StreamsegError, ImportError):
    """An optional backend (e.g. OpenVINO) was asked for but is not installed."""


class StageError(StreamsegError, RuntimeError):
    """A pipeline stage failed; ``stage`` names it and ``__cause__`` is the original error."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self._message = message

    def __reduce__(self) -> tuple:  # picklable (process pools, Ray), with its two arguments
        return (type(self), (self.stage, self._message))
