"""``streamseg run --ray``: an archive of video files segmented by Ray actors, each file whole by one worker.

Each actor holds one loaded engine and runs the same :class:`~streamseg.pipeline.Pipeline` as a
local run on one file at a time, so a file's masks, timestamps and video are the local run's. The
driver hands files out as workers free up (longest first), retries a file whose worker died (killed,
node lost, out of memory) on a fresh worker up to ``max_retries`` times, reports a file that fails
by itself and finishes the others. Outputs appear by rename once complete (:mod:`.jobs`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from streamseg.errors import BackendUnavailableError, ConfigError
from streamseg.ray.jobs import Job, discard, finish, new_token, plan_jobs

__all__ = ["run", "ArchiveResult", "actor_class", "connect", "import_ray"]

log = logging.getLogger(__name__)


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise BackendUnavailableError(
            f"Ray is not installed ({exc}): pip install 'streamseg[ray]' (on every node of the cluster)"
        ) from exc
    return ray


@dataclass
class ArchiveResult:
    """What an archive run did: per-file stats or errors, and the merged counts (``--stats-json``)."""

    files: dict[str, dict[str, Any]]
    skipped: list[str]  # complete before the run (--resume)
    failed: dict[str, str]
    retries: int
    workers: int
    startup_s: float
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        done = [s for s in self.files.values() if "error" not in s]
        frames_out = sum(s["frames_out"] for s in done)
        merged = {
            "files_done": len(done), "files_failed": len(self.failed), "files_skipped": len(self.skipped),
            "frames_in": sum(s["frames_in"] for s in done), "frames_out": frames_out,
            "retries": self.retries, "workers": self.workers, "startup_s": round(self.startup_s, 3),
            "wall_s": round(self.wall_s, 3), "fps": round(frames_out / self.wall_s, 2) if self.wall_s else 0.0,
        }  # fmt: skip
        return {"ray": merged, "files": self.files, "failed": self.failed, "skipped": self.skipped}


class Worker:
    """One Ray actor: one engine, one file at a time through the local pipeline."""

    def __init__(self, config: Any, warmup: tuple[int, int] | None = None) -> None:
        """``warmup``: a frame size (w, h) to compile for now, so start-up is not charged to the first file."""
        from streamseg.engine import Segmenter
        from streamseg.pipeline.workers import engine_config_for

        self.config = config
        self.segmenter = Segmenter(config=engine_config_for(config))
        if warmup is not None:
            self.segmenter.warmup(warmup, batch=config.batch_size)

    def pid(self) -> int:
        return os.getpid()

    def segment(self, job: Job, token: str) -> dict[str, Any]:
        from streamseg.pipeline import Pipeline, SinkConfig, SourceConfig

        sources = [SourceConfig(uri=job.path, options=job.source_options)]
        sinks = [SinkConfig(spec=f"{o.kind}:{o.temporary(token)}", options=o.options) for o in job.outputs]
        cfg = replace(self.config, sources=sources, sinks=sinks, stats_json=None, progress=False, ray=None)
        try:
            stats = Pipeline(cfg, segmenter=self.segmenter).run().as_dict()
            finish(job, token)
        except Exception as exc:  # the file's own failure: a value for the driver, not a dead worker
            discard(job, token)
            return {"error": f"{type(exc).__name__}: {exc}"}
        except BaseException:
            discard(job, token)
            raise
        return stats | {"worker_pid": os.getpid()}


def _unreachable(address: str) -> str | None:
    """Why ``host:port`` (or ``ray://host:port``) takes no connection, asked in two seconds (Ray itself
    retries for minutes); None when it does, or for ``auto`` (Ray then looks for a local cluster)."""
    if address == "auto":
        return None
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2.0):
            return None
    except ValueError:
        return f"{address!r} is not HOST:PORT, ray://HOST:PORT or auto"
    except OSError as exc:
        return f"nothing answers at {address} ({exc.strerror or exc})"


def _frame_size(path: str) -> tuple[int, int] | None:
    """(w, h) of a video's first stream, read from its header; None when it has none (it fails later, reported)."""
    import av

    try:
        with av.open(path) as container:
            ctx = container.streams.video[0].codec_context
            return (int(ctx.width), int(ctx.height)) if ctx.width and ctx.height else None
    except (av.FFmpegError, IndexError, OSError):
        return None


def _discard_settled(job: Job, token: str, *, settle: float = 0.5, limit: float = 10.0) -> None:
    """Remove an attempt's temporary outputs and make sure none come back: Ray reports a killed actor dead
    before its process has always stopped writing."""
    deadline = time.monotonic() + limit
    while True:
        discard(job, token)
        time.sleep(settle)
        if not any(os.path.lexists(o.temporary(token)) for o in job.outputs) or time.monotonic() > deadline:
            discard(job, token)
            return


def actor_class(ray: Any, settings: Any, cls: type, engine: Any) -> tuple[Any, Any, float]:
    """``cls`` as a Ray actor class that reserves one worker's share, the engine config its workers load, and
    the GPUs each takes: one where the cluster has GPUs (unless ``gpus_per_worker`` says), else 0 and an engine
    on ``threads_per_worker`` CPU threads."""
    gpus = settings.gpus_per_worker
    if gpus is None:
        gpus = 1 if ray.cluster_resources().get("GPU") else 0
    threads = settings.threads_per_worker
    if not gpus:
        engine = replace(engine, threads=threads, device="cpu")
    return ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=0)(cls), engine, gpus


def connect(ray: Any, address: str | None) -> None:
    """Join the cluster at ``address`` (None: start or reuse a local instance), failing fast when nobody answers."""
    if ray.is_initialized():
        return
    hint = "start one with `ray start --head` (then --ray auto), or give --ray without an address for a local one"
    why = _unreachable(address) if address else None
    if why is not None:
        raise ConfigError(f"no Ray cluster: {why}; {hint}")
    try:
        ray.init(address=address, log_to_driver=False) if address else ray.init(log_to_driver=False)
    except ConnectionError as exc:
        raise ConfigError(f"no Ray cluster at {address!r} ({exc}): {hint}") from exc


def run(config: Any, address: str | None = None, *, on_progress: Callable[[int, int, int], None] | None = None) -> ArchiveResult:
    """Segment every file of ``config``'s sources on Ray (``address``: None starts or reuses a local instance).

    ``config.ray`` (a :class:`~streamseg.pipeline.config.RayConfig`) sets workers, threads, retries and
    resume. ``on_progress(files_done, files_total, frames_out)`` is called as files finish.
    """
    from streamseg.pipeline.config import RayConfig

    settings = config.ray or RayConfig()
    address = address or settings.address
    jobs = plan_jobs(config.sources, config.sinks)
    if config.engine.precision == "int8" and config.engine.calibration is None:  # one calibration for every file
        config = replace(config, engine=replace(config.engine, calibration=jobs[-1].path if jobs else None))
    skipped = [j.path for j in jobs if settings.resume and j.complete()]
    todo = [j for j in jobs if not (settings.resume and j.complete())]
    ray = import_ray()
    t0 = time.perf_counter()
    connect(ray, address)
    actor_cls, engine, gpus = actor_class(ray, settings, Worker, config.engine)
    per_worker = gpus or settings.threads_per_worker
    count = settings.workers or max(1, int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1) // per_worker))
    count = max(1, min(count, len(todo))) if todo else 0
    worker_cfg = replace(config, engine=engine, ray=None)

    warmup = _frame_size(todo[0].path) if todo else None

    run_id = new_token()  # actor names unique per run: several runs may share a cluster

    def start(i: int) -> Any:
        return actor_cls.options(name=f"streamseg-worker-{i}-{run_id}", namespace="streamseg").remote(worker_cfg, warmup)

    idle = [start(i) for i in range(count)]
    if idle:
        ray.get([a.pid.remote() for a in idle])  # engines loaded: what follows is segmentation
    startup = time.perf_counter() - t0
    attempts: dict[str, int] = {}
    running: dict[Any, tuple[Job, str, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    retries, spawned, queue = 0, count, list(todo)
    launching: tuple[Job, str, Any] | None = None
    t1 = time.perf_counter()
    try:
        while queue or running:
            while queue and idle:
                launching = (queue.pop(0), new_token(), idle.pop())  # known to the cleanup before it starts
                running[launching[2].segment.remote(launching[0], launching[1])] = launching
                launching = None
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                job, token, actor = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                    idle.append(actor)
                    if "error" in outcome:
                        failed[job.path] = outcome["error"]
                        log.error("%s failed: %s", job.path, outcome["error"])
                    else:
                        results[job.path] = outcome
                except (ray.exceptions.RayActorError, ray.exceptions.OutOfMemoryError) as exc:
                    attempts[job.path] = attempts.get(job.path, 0) + 1
                    _discard_settled(job, token)
                    ray.kill(actor, no_restart=True)
                    if attempts[job.path] > settings.max_retries:
                        failed[job.path] = f"its worker died {attempts[job.path]} times (last: {type(exc).__name__})"
                    else:
                        retries += 1
                        log.warning("worker died on %s (%s); retrying on a new worker", job.path, type(exc).__name__)
                        queue.insert(0, job)
                    idle.append(start(spawned))
                    spawned += 1
                if on_progress is not None:
                    on_progress(len(results) + len(failed), len(todo), sum(s["frames_out"] for s in results.values()))
    except BaseException:
        if launching is not None:  # interrupted between starting a job and recording it
            running[None] = launching
        for _, _, actor in running.values():  # Ctrl-C: only complete outputs stay
            ray.kill(actor, no_restart=True)
        for ref, (job, token, _) in running.items():
            try:  # a kill is asynchronous: wait until the worker is gone, or it may still write after the cleanup
                if ref is not None:
                    ray.get(ref, timeout=15)
            except Exception:  # noqa: BLE001 - the actor died, as asked
                pass
            _discard_settled(job, token)
        raise
    finally:
        for actor in idle:
            ray.kill(actor, no_restart=True)
    files = {path: results[path] for path in sorted(results)} | {p: {"error": e} for p, e in sorted(failed.items())}
    return ArchiveResult(files, skipped, failed, retries, count, startup, time.perf_counter() - t1)

