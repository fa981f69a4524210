"""Load and soak runs (scripts, not CI: they take minutes to hours).

  lossless  a file of N frames (default 10,000) through the pipeline, lossless policy:
            frames out == frames in, every frame once and in order (each frame carries its
            index in its pixels), and one mask PNG per frame.
  soak      live RTSP sources at 30 fps through a real RTSP server on 127.0.0.1 (the shared
            relay), each published by its own process (``tests/publish.py``), so that this
            process holds the pipeline alone; ``latest`` policy, video sink, for ``--minutes``.
            Every ``--every`` seconds it samples its own RSS (raw, and trimmed: after glibc
            returns its cached free heap), the Python heap tracemalloc traces, OS threads and
            open descriptors. Criteria, each printed with its verdict: trimmed-RSS growth from
            the early window (minutes 2-12) to the late one (the last 10 minutes; a run shorter
            than 22 minutes splits what follows the warm-up in halves) under 3 %; every live
            source's fps and p95 capture -> sink latency in the late window within 10 % of the
            early one; counts add up; no frame reordered; no thread or descriptor left after
            the pipeline stopped. With tracemalloc on it also names the lines whose Python
            allocations grew between the two windows. ``--stall 1``: the first publisher
            freezes after a minute (the server then drops it; its source keeps reconnecting).

    python benchmarks/soak.py lossless [--frames 10000] [--json]
    python benchmarks/soak.py soak [--minutes 10] [--sources 4] [--stall 1] [--backend torch] [--json]

Needs what the tests need (``../shared/tools/rtsp_relay.py`` under Debian's python3 with
gst-rtsp-server for ``soak``); reuses the test helpers for the relay and the publishers.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import PublisherProcess, RtspRelay, decode_index, make_video, process_sample, slope_per_minute  # noqa: E402

from streamseg.engine import EngineConfig  # noqa: E402
from streamseg.pipeline import Pipeline, PipelineConfig, SinkConfig, SourceConfig  # noqa: E402
from streamseg.sinks.callback import CallbackSink  # noqa: E402


def engine_config(args: argparse.Namespace) -> EngineConfig:
    w, h = (int(v) for v in args.test_scale.split("x"))
    return EngineConfig(test_scale=(w, h), backend=args.backend)


def lossless(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        video = make_video(tmp_path / "in.mp4", args.frames, size=(128, 96), fps=30)
        encode_s = time.perf_counter() - t0
        wrong: list[tuple[int, int]] = []
        count = [0]

        def check(pred) -> None:  # the pixels say which frame this is: nothing skipped, repeated or reordered
            expected = count[0] % 4096
            if pred.frame.index != count[0] or decode_index(pred.frame.image) != expected:
                wrong.append((count[0], pred.frame.index))
            count[0] += 1

        cfg = PipelineConfig(
            sources=[SourceConfig(uri=str(video))],
            sinks=[SinkConfig(spec=f"masks:{tmp_path / 'masks'}")],
            engine=engine_config(args),
            batch_size=args.batch,
            progress=False,
        )
        stats = Pipeline(cfg, sinks=[CallbackSink(check)]).run().as_dict()
        pngs = len(list((tmp_path / "masks").iterdir()))
    return {
        "test": "lossless",
        "frames": args.frames,
        "frames_in": stats["frames_in"],
        "frames_out": stats["frames_out"],
        "dropped": stats["dropped"],
        "mask_pngs": pngs,
        "order_errors": len(wrong),
        "first_errors": wrong[:5],
        "fps": stats["fps"],
        "wall_s": stats["wall_s"],
        "encode_input_s": round(encode_s, 1),
        "ok": stats["frames_in"] == stats["frames_out"] == pngs == args.frames and not wrong,
    }


class Recorder:
    """Per source: frames per minute and a capture -> sink latency histogram per measuring window.

    Everything is allocated up front: a recorder whose lists grew with every frame would itself be
    the memory growth the soak looks for.
    """

    def __init__(self, ids: list[str], windows: dict[str, tuple[float, float]], minutes: float, t0: float) -> None:
        self.t0, self.windows = t0, windows
        self.per_minute = {sid: np.zeros(int(minutes) + 2, np.int64) for sid in ids}
        self.hist = {(sid, w): np.zeros(_LAT_BINS + 1, np.int64) for sid in ids for w in windows}
        self.last_index = dict.fromkeys(ids, -1)
        self.order_errors = 0

    def __call__(self, pred) -> None:
        t = time.monotonic() - self.t0
        sid = pred.frame.source_id
        self.per_minute[sid][min(int(t // 60), len(self.per_minute[sid]) - 1)] += 1
        ms = min(int((time.monotonic() - pred.frame.capture_time) * 1000), _LAT_BINS)
        for name, (start, end) in self.windows.items():
            if start <= t < end:
                self.hist[(sid, name)][ms] += 1
        if pred.frame.index <= self.last_index[sid]:
            self.order_errors += 1
        self.last_index[sid] = pred.frame.index

    def window(self, sid: str, name: str) -> dict:
        hist = self.hist[(sid, name)]
        n = int(hist.sum())
        start, end = self.windows[name]
        if not n:
            return {"frames": 0, "fps": 0.0, "p50_ms": None, "p95_ms": None}
        cdf = np.cumsum(hist)
        return {
            "frames": n,
            "fps": round(n / (end - start), 2),
            "p50_ms": int(np.searchsorted(cdf, 0.50 * n)),
            "p95_ms": int(np.searchsorted(cdf, 0.95 * n)),
        }


_LAT_BINS = 20_000  # 1 ms bins up to 20 s


def measuring_windows(minutes: float, warmup: float) -> dict[str, tuple[float, float]]:
    """Seconds: ``early`` is minutes warm-up .. warm-up + 10 and ``late`` the last 10 minutes of a run of
    22 minutes or more; a shorter run splits what follows the warm-up in two halves."""
    total, w = minutes * 60, warmup * 60
    span = 600.0 if total - w >= 1200 else (total - w) / 2
    return {"early": (w, w + span), "late": (total - span, total)}


def _floor(times: np.ndarray, values: np.ndarray, window: tuple[float, float]) -> float:
    inside = values[(times >= window[0]) & (times < window[1])]
    return float(inside.min()) if inside.size else float("nan")


def soak(args: argparse.Namespace) -> dict:
    """Live RTSP sources published by other processes; this process runs the pipeline and measures itself."""
    if args.tracemalloc:
        tracemalloc.start(1)
    windows = measuring_windows(args.minutes, args.warmup_minutes)
    ids = [f"cam{i}" for i in range(args.sources)]
    n_samples = int(args.minutes * 60 / args.every) + 4
    samples = np.full((n_samples, 1 + len(SAMPLE_KEYS)), np.nan)  # t_s, then SAMPLE_KEYS
    count, snapshots = 0, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        relay = RtspRelay(tmp_path / "relay.log").start()
        w, h = (int(v) for v in args.size.split("x"))
        pubs = [PublisherProcess(relay.url(sid), fps=30, size=(w, h)) for sid in ids]
        try:
            for pub in pubs:
                pub.start()
            cfg = PipelineConfig(
                sources=[
                    SourceConfig(uri=relay.url(sid), id=sid, options={"read_timeout": 2, "backoff": [0.5, 2.0]})
                    for sid in ids
                ],
                sinks=[SinkConfig(spec=f"video:{tmp_path / 'out.{source}.mp4'}")],
                engine=engine_config(args),
                batch_size=args.batch,
                progress=False,
            )
            warm_up_process(cfg, tmp_path)
            before = process_sample()
            pipe = Pipeline(cfg, sinks=[CallbackSink(rec := Recorder(ids, windows, args.minutes, time.monotonic()))])
            pipe.start()
            t0 = rec.t0
            end = t0 + args.minutes * 60
            stalled = False
            try:
                while (now := time.monotonic()) < end and not pipe.failed:
                    time.sleep(min(args.every, max(0.0, end - now)))
                    t = time.monotonic() - t0
                    if count < n_samples:
                        sample = process_sample()
                        samples[count] = [t, *(sample[k] for k in SAMPLE_KEYS)]
                        count += 1
                    if args.tracemalloc and "warm" not in snapshots and t >= windows["early"][0]:
                        snapshots["warm"] = tracemalloc.take_snapshot()
                    if args.stall and not stalled and t >= 60:
                        for pub in pubs[: args.stall]:
                            pub.stall()  # silent for the rest of the run
                        stalled = True
                if args.tracemalloc:
                    snapshots["end"] = tracemalloc.take_snapshot()
            finally:
                pipe.stop()
                stats = pipe.join(timeout=60).as_dict()
        finally:
            for pub in pubs:
                pub.stop()
            relay.stop()
        del pipe
        gc.collect()
        after = process_sample()
    return summarise(args, windows, rec, stats, samples[:count], before, after, snapshots)


def warm_up_process(cfg: PipelineConfig, tmp: Path, seconds: float = 10.0) -> None:
    """The same pipeline on the same live sources for a few seconds first: process-wide pools (OpenCV's,
    OpenMP's, OpenVINO's, FFmpeg's) are started by a first run of this kind, and stay for the process's
    life; what is counted as left behind is measured after them. (A warm-up on a file missed one native
    thread that the first live run starts: before/after differed by one in 60- and 20-minute soaks,
    while two live runs in a row in one process end with the same count.)"""
    pipe = Pipeline(replace(cfg, sinks=[SinkConfig(spec=f"video:{tmp / 'warm.{source}.mp4'}")]))
    pipe.start()
    time.sleep(seconds)
    pipe.stop()
    pipe.join(timeout=60)
    del pipe
    gc.collect()


SAMPLE_KEYS = ("rss_mb", "rss_trimmed_mb", "heap_mb", "py_threads", "os_threads", "fds")


def summarise(args, windows, rec, stats, samples, before, after, snapshots) -> dict:
    """Each criterion with its verdict, and what a reader needs to see why (small enough for the docs)."""
    t = samples[:, 0]
    col = {k: samples[:, 1 + i] for i, k in enumerate(SAMPLE_KEYS)}
    after_warmup = t >= windows["early"][0]
    floors = {k: {w: round(_floor(t, col[k], span), 1) for w, span in windows.items()} for k in ("rss_trimmed_mb", "heap_mb")}
    rss_growth = (floors["rss_trimmed_mb"]["late"] - floors["rss_trimmed_mb"]["early"]) / floors["rss_trimmed_mb"]["early"]
    step = 120.0 if args.minutes >= 10 else 60.0
    per_window = [
        round(_floor(t, col["rss_trimmed_mb"], (s, s + step)), 1) for s in np.arange(0, args.minutes * 60, step)
    ]
    live = [f"cam{i}" for i in range(args.stall, args.sources)]
    per_source = {sid: {w: rec.window(sid, w) for w in windows} for sid in sorted(rec.per_minute)}
    rate_kept = {
        sid: per_source[sid]["late"]["fps"] >= 0.9 * per_source[sid]["early"]["fps"]
        and (per_source[sid]["late"]["p95_ms"] or 1e9) <= 1.1 * (per_source[sid]["early"]["p95_ms"] or 0)
        for sid in live
    }
    dropped = sum(stats["dropped"].values())
    criteria = {
        "rss_growth_under_3pct": bool(rss_growth < 0.03),
        "live_rate_and_p95_within_10pct": all(rate_kept.values()),
        "counts_add_up": stats["frames_in"] == stats["frames_out"] + dropped,
        "no_frame_reordered": rec.order_errors == 0,
        "no_thread_left": after["py_threads"] <= before["py_threads"] and after["os_threads"] <= before["os_threads"],
        "no_descriptor_left": after["fds"] <= before["fds"],
    }
    out = {
        "test": "soak",
        "minutes": args.minutes,
        "sources": args.sources,
        "stalled": args.stall,
        "backend": stats["engine"].get("backend"),
        "precision": stats["engine"].get("precision"),
        "size": args.size,
        "test_scale": args.test_scale,
        "windows_s": {w: [round(a), round(b)] for w, (a, b) in windows.items()},
        "per_source": per_source,
        "fps_per_minute": [round(float(sum(c[m] for c in rec.per_minute.values())) / 60, 1) for m in range(int(args.minutes))],
        "frames_in": stats["frames_in"],
        "frames_out": stats["frames_out"],
        "dropped": stats["dropped"],
        "reconnects": stats["reconnects"],
        "rss_trimmed_floor_mb": floors["rss_trimmed_mb"],
        "rss_growth_pct": round(100 * rss_growth, 2),
        "rss_trimmed_floor_per_window_mb": per_window,
        "rss_trimmed_slope_mb_per_hour": round(60 * slope_per_minute(t[after_warmup], col["rss_trimmed_mb"][after_warmup]), 2),
        "rss_raw_mb": [round(float(col["rss_mb"][after_warmup][0]), 1), round(float(col["rss_mb"][-1]), 1)],
        "heap_floor_mb": floors["heap_mb"],
        "heap_slope_mb_per_hour": round(60 * slope_per_minute(t[after_warmup], col["heap_mb"][after_warmup]), 3),
        "threads_during": [int(np.nanmin(col["os_threads"][after_warmup])), int(np.nanmax(col["os_threads"][after_warmup]))],
        "fds_during": [int(np.nanmin(col["fds"][after_warmup])), int(np.nanmax(col["fds"][after_warmup]))],
        "before_after": {k: [int(before[k]), int(after[k])] for k in ("py_threads", "os_threads", "fds")},
        "criteria": criteria,
        "ok": all(criteria.values()),
    }
    if "warm" in snapshots and "end" in snapshots:
        diff = snapshots["end"].compare_to(snapshots["warm"], "lineno")
        out["heap_growth_by_line"] = [
            f"{d.traceback[0].filename.split('site-packages/')[-1]}:{d.traceback[0].lineno} "
            f"{d.size_diff / 1024:+.1f} kB ({d.count_diff:+d} blocks)"
            for d in diff[:8]
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="test", required=True)
    for name in ("lossless", "soak"):
        p = sub.add_parser(name)
        p.add_argument("--test-scale", default="320x180", help="engine test scale WxH (default 320x180)")
        p.add_argument("--backend", default="auto", help="torch | openvino | auto")
        p.add_argument("--batch", type=int, default=4)
        p.add_argument("--json", action="store_true")
    sub.choices["lossless"].add_argument("--frames", type=int, default=10_000)
    sub.choices["soak"].add_argument("--minutes", type=float, default=10.0)
    sub.choices["soak"].add_argument("--sources", type=int, default=1)
    sub.choices["soak"].add_argument("--stall", type=int, default=0, help="sources that go silent after 1 minute")
    sub.choices["soak"].add_argument("--size", default="320x180", help="published frame size WxH")
    sub.choices["soak"].add_argument("--warmup-minutes", type=float, default=2.0, help="RSS baseline time")
    sub.choices["soak"].add_argument("--every", type=float, default=5.0, help="seconds between samples")
    sub.choices["soak"].add_argument(
        "--no-tracemalloc", dest="tracemalloc", action="store_false", help="do not trace the Python heap"
    )
    args = parser.parse_args()
    result = lossless(args) if args.test == "lossless" else soak(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
