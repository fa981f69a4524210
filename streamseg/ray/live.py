"""Live streams on Ray: each group of ``streams_per_worker`` sources in a long-lived actor pipeline, supervised.

The driver's supervisor asks every actor for its statistics twice a second. An actor that died
(killed, node lost, out of memory) is started again after a backoff, with the same sources and
sinks; the counters its pipeline had reached (frames, drops, reconnects) are carried over, so the
merged statistics the CLI status line shows never go backwards and say how often each group
restarted. Stopping (Ctrl-C, ``stop``) asks each pipeline to finish and close its outputs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from streamseg.backoff import Backoff
from streamseg.ray.archive import actor_class, connect, import_ray
from streamseg.ray.jobs import new_token

__all__ = ["LiveWorker", "LiveResult", "serve"]

log = logging.getLogger(__name__)

_COUNTERS = ("frames_in", "frames_out")
_PER_SOURCE = ("dropped", "reconnects", "frames_in_per_source", "frames_out_per_source")


class LiveWorker:
    """One Ray actor: a pipeline over its group of live sources, started at once and running until stopped."""

    def __init__(self, config: Any) -> None:
        from streamseg.pipeline import Pipeline

        self.pipeline = Pipeline(config).start()

    def snapshot(self) -> dict[str, Any]:
        return self.pipeline.snapshot()

    def stop(self) -> dict[str, Any]:
        self.pipeline.stop()
        return self.pipeline.join(timeout=60).as_dict()


@dataclass
class _Group:
    index: int
    config: Any
    actor: Any = None
    restarts: int = 0
    backoff: Backoff = field(default_factory=lambda: Backoff(0.5, 8.0))
    last: dict[str, Any] = field(default_factory=dict)  # the running actor's newest statistics
    carried: dict[str, Any] = field(default_factory=dict)  # what dead actors of this group had counted


@dataclass
class LiveResult:
    stats: dict[str, Any]
    restarts: int


def _add(total: dict[str, Any], stats: dict[str, Any]) -> None:
    for key in _COUNTERS:
        total[key] = total.get(key, 0) + int(stats.get(key, 0))
    for key in _PER_SOURCE:
        into = total.setdefault(key, {})
        for sid, value in (stats.get(key) or {}).items():
            into[sid] = into.get(sid, 0) + int(value)


def merged(groups: list[_Group]) -> dict[str, Any]:
    """Counters over every group and every restart: what the status line and ``--stats-json`` show."""
    total: dict[str, Any] = {"restarts": sum(g.restarts for g in groups), "workers": len(groups)}
    for group in groups:
        _add(total, group.carried)
        _add(total, group.last)
    total["restarts_per_worker"] = {f"streamseg-live-{g.index}": g.restarts for g in groups}
    return total


def serve(
    config: Any, address: str | None = None, *, stop: threading.Event | None = None,
    on_stats: Callable[[dict[str, Any]], None] | None = None,
) -> LiveResult:  # fmt: skip
    """Run ``config``'s live sources on Ray until ``stop`` is set (or Ctrl-C); returns the merged statistics."""
    from streamseg.pipeline.config import RayConfig

    ray = import_ray()
    settings = config.ray or RayConfig()
    connect(ray, address or settings.address)
    stop = stop or threading.Event()
    per = settings.streams_per_worker
    actor_cls, engine, _ = actor_class(ray, settings, LiveWorker, config.engine)
    groups = [
        _Group(i, replace(config, sources=config.sources[k : k + per], engine=engine, ray=None, progress=False, stats_json=None))
        for i, k in enumerate(range(0, len(config.sources), per))
    ]

    run_id = new_token()  # actor names unique per run: several runs may share a cluster

    def start(group: _Group) -> None:
        name = f"streamseg-live-{group.index}-{run_id}"
        group.actor = actor_cls.options(name=name, namespace="streamseg").remote(group.config)

    for group in groups:
        start(group)
    try:
        while not stop.wait(0.5):
            for group in groups:
                if group.actor is None:  # waiting out the backoff
                    if group.backoff.wait() == 0:
                        start(group)
                    continue
                try:
                    group.last = ray.get(group.actor.snapshot.remote(), timeout=10)
                    group.backoff.reset()
                except (ray.exceptions.RayActorError, ray.exceptions.OutOfMemoryError) as exc:
                    _add(group.carried, group.last)
                    group.last, group.actor = {}, None
                    group.restarts += 1
                    delay = group.backoff.failed()
                    log.warning("live worker %d died (%s); restarting in %.1f s", group.index, type(exc).__name__, delay)
                except ray.exceptions.GetTimeoutError:
                    log.warning("live worker %d did not answer in 10 s", group.index)
            if on_stats is not None:
                on_stats(merged(groups))
    finally:
        for group in groups:
            if group.actor is None:
                continue
            try:
                group.last = ray.get(group.actor.stop.remote(), timeout=90)
            except Exception as exc:  # noqa: BLE001 - a worker that cannot stop is killed; the others still stop
                log.warning("live worker %d did not stop cleanly: %s", group.index, exc)
            ray.kill(group.actor, no_restart=True)
    return LiveResult(merged(groups), sum(g.restarts for g in groups))
