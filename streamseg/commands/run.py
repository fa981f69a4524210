"""``streamseg run [CONFIG.yaml] --source URI ... --sink KIND:TARGET ...``: run a pipeline.

Exit codes: 0 done, 1 runtime failure (or a source skipped under --on-source-error skip),
2 bad configuration or weights, 130 SIGINT, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from streamseg.config import load_yaml, parse_set
from streamseg.errors import ConfigError, StageError, StreamsegError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="pipeline config (YAML); see configs/")
    parser.add_argument("--source", action="append", default=[], metavar="URI",
                        help="file, folder/glob, camera index or /dev/video*, rtsp:// or http(s):// URL (repeatable)")
    parser.add_argument("--sink", action="append", default=[], metavar="KIND:TARGET",
                        help="video:out.mp4, masks:dir/, rtsp://host/path, display, callback:mod:fn (repeatable)")
    parser.add_argument("--model", help="SegNeXt size (segnext_t/s/b/l); inferred from the weights by default")
    parser.add_argument("--weights", help="registered name, checkpoint path or URL (default: the bundled demo model)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set batch_size=8 --set engine.precision=fp32")
    parser.add_argument("--on-source-error", choices=("fail", "skip"),
                        help="fail (default): a broken source stops the run; skip: the other sources finish, "
                        "the broken ones are reported and the exit code is 1")
    parser.add_argument("--stats-json", metavar="PATH", help="write run statistics as JSON")
    parser.add_argument("--json", action="store_true", help="print the statistics as one JSON line at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or status line")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="segment the sources' files on Ray workers, one file per worker at a time "
                        "(ADDRESS: auto, ray://host:10001; none: a local Ray instance); see docs/scale-out.md")
    parser.add_argument("--resume", action="store_true", help="with --ray: skip files whose outputs are all in place")


def build_config(args: argparse.Namespace) -> Any:
    """YAML file, then --source/--sink/--model/--weights, then --set: later wins."""
    from dataclasses import replace

    from streamseg.pipeline import PipelineConfig

    data: dict[str, Any] = load_yaml(args.config) if args.config else {}
    if args.source:
        data["sources"] = list(args.source)
    if args.sink:
        data["sinks"] = list(args.sink)
    engine = dict(data.get("engine") or {})
    if args.model:
        engine["model"] = args.model
    if args.weights:
        engine["weights"] = args.weights
    if engine:
        data["engine"] = engine
    if args.stats_json:
        data["stats_json"] = args.stats_json
    if args.ray is not None or args.resume:
        ray = dict(data.get("ray") or {})
        if args.ray:
            ray["address"] = args.ray
        if args.resume:
            ray["resume"] = True
        data["ray"] = ray
    cfg = PipelineConfig.from_dict(data, overrides=parse_set(args.set))
    if args.on_source_error:
        cfg = replace(cfg, sources=[replace(s, on_error=args.on_source_error) for s in cfg.sources])
    if not cfg.sources:
        raise ConfigError("no sources: pass --source FILE|DIR|CAMERA|URL or list sources: in the config")
    return cfg


def check_inputs(sources: list[Any]) -> None:
    """Missing input files are configuration errors (exit 2), found before anything starts."""
    from streamseg.sources.file import VideoFileSource

    for source in sources:
        if isinstance(source, VideoFileSource) and not source.path.exists():
            raise ConfigError(f"source file not found: {source.path} (check the path; for a camera pass its index)")


def run(args: argparse.Namespace) -> int:
    from streamseg.pipeline import Pipeline

    cfg = build_config(args)
    if cfg.ray is not None:
        return run_on_ray(cfg, args)
    bar = _Progress() if cfg.progress and not args.no_progress else None
    pipeline = Pipeline(cfg, on_progress=bar.update if bar else None)
    check_inputs(pipeline.sources)
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if received:  # second signal: the user insists
            os._exit(128 + signum)
        received.append(signum)
        log.warning("stopping on %s", signal.Signals(signum).name)
        pipeline.stop(drain=False)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    error: StageError | None = None
    try:
        stats = pipeline.run()
    except StageError as exc:
        error, stats = exc, pipeline.stats  # the counts of what was done still get reported
    finally:
        if bar:
            bar.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    cause = error.__cause__ if error is not None else None
    if isinstance(cause, StreamsegError) and cause.exit_code == 2 and not received:  # fix the command, not the world
        raise cause from None
    summary = stats.as_dict()
    if error is not None and not received:
        summary["error"] = str(error)
    if cfg.stats_json:
        Path(cfg.stats_json).write_text(json.dumps(summary, indent=2))
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary))
    if "error" in summary:
        print(f"streamseg run: error in {error}", file=sys.stderr)
        return 1
    if received:
        return 128 + received[0]
    if summary["source_errors"]:
        for sid, message in summary["source_errors"].items():
            print(f"streamseg run: source {sid} failed and was skipped: {message}", file=sys.stderr)
        return 1
    return 0


def run_on_ray(cfg: Any, args: argparse.Namespace) -> int:
    """The sources' files on Ray workers (one bar over files and frames, per-file and merged stats), or its
    live sources in supervised actor pipelines until Ctrl-C (a status line of the merged counters)."""
    from streamseg.ray.archive import run as run_archive
    from streamseg.ray.jobs import is_live

    if all(is_live(s.uri) for s in cfg.sources):
        return _serve_on_ray(cfg, args)

    bar = None
    if cfg.progress and not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="file", dynamic_ncols=True, file=sys.stderr, desc="segment (ray)")

    def progress(done: int, total: int, frames: int) -> None:
        assert bar is not None
        bar.total = total
        bar.n = done
        bar.set_postfix(frames=frames)

    try:
        result = run_archive(cfg, on_progress=progress if bar else None)
    except KeyboardInterrupt:
        print("streamseg run: interrupted; only complete outputs were kept (--resume goes on)", file=sys.stderr)
        return 130
    finally:
        if bar:
            bar.close()
    summary = result.as_dict()
    if cfg.stats_json:
        Path(cfg.stats_json).write_text(json.dumps(summary, indent=2))
    merged = summary["ray"]
    print(f"streamseg: {merged['files_done']} files ({merged['frames_out']} frames) on {merged['workers']} Ray workers "
          f"in {merged['wall_s']:.1f} s, {merged['fps']:.1f} fps; {merged['files_skipped']} already complete, "
          f"{merged['files_failed']} failed, {merged['retries']} retried", file=sys.stderr)  # fmt: skip
    if args.json:
        print(json.dumps(summary))
    for path, message in result.failed.items():
        print(f"streamseg run: {path} failed: {message}", file=sys.stderr)
    return 1 if result.failed else 0


def _serve_on_ray(cfg: Any, args: argparse.Namespace) -> int:
    import threading

    from streamseg.ray.live import serve

    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    def status(stats: dict[str, Any]) -> None:
        dropped = sum(stats.get("dropped", {}).values())
        print(f"\rstreamseg (ray): {stats.get('frames_out', 0)} frames out, {dropped} dropped, "
              f"{stats['restarts']} restarts on {stats['workers']} workers", end="", file=sys.stderr, flush=True)  # fmt: skip

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = serve(cfg, stop=stop, on_stats=None if args.no_progress else status)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(file=sys.stderr)
    if cfg.stats_json:
        Path(cfg.stats_json).write_text(json.dumps(result.stats, indent=2))
    if args.json:
        print(json.dumps(result.stats))
    return 128 + received[0] if received else 0


class _Progress:
    """A tqdm bar over the frames segmented; it learns the total (and shows an ETA) once the sources know theirs."""

    def __init__(self) -> None:
        self.bar: Any = None  # created on the first update: nothing is printed for a run that never starts
        self.seen = 0

    def update(self, stats: Any) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=None, unit="frame", dynamic_ncols=True, file=sys.stderr, desc="segment")
        if self.bar.total is None and stats.expected_frames:
            self.bar.total = stats.expected_frames
            self.bar.refresh()
        n = stats.frames_out
        if n > self.seen:
            self.bar.update(n - self.seen)
            self.seen = n

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_summary(s: dict[str, Any]) -> None:
    dropped = sum(s["dropped"].values())
    lat = s["latency_ms"]
    startup = f" (start-up {s['startup_s']:.1f} s)" if (s.get("startup_s") or 0) >= 1 else ""
    print(
        f"streamseg: {s['frames_out']} frames segmented of {s['frames_in']} read "
        f"({dropped} dropped by policy) in {s['wall_s']:.1f} s{startup}, {s['fps']:.1f} fps, "
        f"latency p50 {lat['p50']} ms p95 {lat['p95']} ms",
        file=sys.stderr,
    )
