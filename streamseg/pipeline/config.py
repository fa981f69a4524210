"""The pipeline's configuration records, loaded from YAML by :func:`streamseg.config.from_dict`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamseg.config import apply_overrides, from_dict
from streamseg.engine.config import EngineConfig
from streamseg.errors import ConfigError

__all__ = ["PipelineConfig", "RayConfig", "SinkConfig", "SourceConfig"]


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise ConfigError(f"{name} must be {' or '.join(map(repr, allowed))}, got {value!r}")


def _at_least(name: str, value: float | None, low: float) -> None:
    if value is not None and value < low:
        raise ConfigError(f"{name} must be >= {low}, got {value}")


class _Checked:
    """Records that check themselves when built (from YAML or in Python), not later in a worker thread."""

    def __post_init__(self) -> None:
        self.validate()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SourceConfig(_Checked):
    """One input. ``policy``: ``lossless`` (producer blocks) or ``latest`` (drop the oldest; live default)."""

    uri: str
    id: str | None = None
    policy: str | None = None  # lossless | latest; None: latest for live sources, lossless otherwise
    max_age_ms: float | None = 1000.0  # latest: frames older than this are dropped when a newer one waits
    queue_size: int | None = None  # None: 1 for latest, 2 x batch for lossless
    on_error: str = "fail"  # fail: the first error stops the run; skip: this source ends alone, the others go on
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _one_of("sources[].policy", self.policy, ("lossless", "latest"))
        _one_of("sources[].on_error", self.on_error, ("fail", "skip"))
        _at_least("sources[].queue_size", self.queue_size, 1)


@dataclass(frozen=True)
class SinkConfig(_Checked):
    """One output, ``KIND:TARGET`` (``video:out.mp4``, ``masks:dir/``, ``rtsp://…``, ``display``)."""

    spec: str
    policy: str | None = None  # block (lossless) | drop (this sink only); None: drop for live sinks
    queue_size: int = 8
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _one_of("sinks[].policy", self.policy, ("block", "drop"))
        _at_least("sinks[].queue_size", self.queue_size, 1)


@dataclass(frozen=True)
class RayConfig(_Checked):
    """``ray:`` — segment an archive of files on a Ray cluster (:mod:`streamseg.ray`), one file per worker at a time."""

    address: str | None = None  # None: a local Ray instance; auto: the running cluster; ray://host:10001
    workers: int | None = None  # None: as many as the cluster's GPUs (or CPUs / threads_per_worker) allow
    threads_per_worker: int = 1  # CPU workers: engine threads, and the CPUs each actor reserves
    gpus_per_worker: float | None = None  # None: 1 where the cluster has GPUs, else 0
    max_retries: int = 2  # a file whose worker dies is retried on a new worker this many times
    resume: bool = False  # skip files whose outputs are all in place
    streams_per_worker: int = 1  # live sources: how many one actor's pipeline serves

    def validate(self) -> None:
        _at_least("ray.workers", self.workers, 1)
        _at_least("ray.threads_per_worker", self.threads_per_worker, 1)
        _at_least("ray.gpus_per_worker", self.gpus_per_worker, 0)
        _at_least("ray.max_retries", self.max_retries, 0)
        _at_least("ray.streams_per_worker", self.streams_per_worker, 1)


@dataclass(frozen=True)
class PipelineConfig(_Checked):
    sources: list[SourceConfig] = field(default_factory=list)
    sinks: list[SinkConfig] = field(default_factory=list)
    engine: EngineConfig = field(default_factory=EngineConfig)
    batch_size: int = 4
    max_wait_ms: float = 20.0
    stats_json: str | None = None
    progress: bool = True
    ray: RayConfig | None = None  # set: the sources' files are segmented on Ray workers

    def validate(self) -> None:
        _at_least("batch_size", self.batch_size, 1)
        _at_least("max_wait_ms", self.max_wait_ms, 0)
        ids = [s.id for s in self.sources if s.id is not None]
        if len(ids) != len(set(ids)):
            raise ConfigError(f"sources[].id must be unique, got {ids}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], overrides: dict[str, Any] | None = None) -> "PipelineConfig":
        """From YAML data (``sources``/``sinks`` items may be plain strings), then ``overrides`` (``--set``)."""
        return from_dict(cls, apply_overrides(cls.expand_shorthand(data), overrides or {}))

    @staticmethod
    def expand_shorthand(data: dict[str, Any]) -> dict[str, Any]:
        """A copy where ``sources``/``sinks`` are lists of mappings (a plain string is the ``uri``/``spec``)."""
        data = dict(data)
        for key, field_name in (("sources", "uri"), ("sinks", "spec")):
            items = data.get(key)
            if items is None:
                continue
            if isinstance(items, (str, dict)):
                items = [items]
            if not isinstance(items, list):
                raise ConfigError(f"{key} must be a list, got {items!r}")
            data[key] = [{field_name: item} if isinstance(item, str) else item for item in items]
        return data
