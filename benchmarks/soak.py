"""Load and soak runs (scripts, not CI: they take minutes to hours).

  lossless  a file of N frames (default 10,000) through the pipeline, lossless policy:
            frames out == frames in, every frame once and in order (each frame carries its
            index in its pixels), and one mask PNG per frame.
  soak      live RTSP sources at 30 fps through a real RTSP server on 127.0.0.1 (the shared
            relay), ``latest`` policy, for ``--minutes``: p95 capture -> sink latency in the
            first and the last minute, RSS growth after a warm-up (2 min), leaked threads.
            ``--sources 4 --stall 1``: one publisher goes silent after the first minute; the
            others must keep their frame rate and latency.

    python benchmarks/soak.py lossless [--frames 10000] [--json]
    python benchmarks/soak.py soak [--minutes 10] [--sources 1] [--stall 0] [--json]

Needs what the tests need (``../shared/tools/rtsp_relay.py`` under Debian's python3 with
gst-rtsp-server for ``soak``); reuses the test helpers for the publisher and the relay.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import RtspPublisher, RtspRelay, decode_index, make_video  # noqa: E402

from streamseg.engine import EngineConfig  # noqa: E402
from streamseg.pipeline import Pipeline, PipelineConfig, SinkConfig, SourceConfig  # noqa: E402
from streamseg.sinks.callback import CallbackSink  # noqa: E402


def rss_mb(*, trim: bool = False) -> float:
    """Resident memory; ``trim`` first hands glibc's cached free heap back to the OS (what is really held)."""
    if trim:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def pipeline_threads() -> int:
    return sum(t.name.startswith("streamseg-") for t in threading.enumerate())


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
    """Per source: (arrival time, capture -> sink latency) of every delivered prediction."""

    def __init__(self) -> None:
        self.items: dict[str, list[tuple[float, float]]] = {}
        self.last_index: dict[str, int] = {}
        self.order_errors = 0

    def __call__(self, pred) -> None:
        now = time.monotonic()
        sid = pred.frame.source_id
        self.items.setdefault(sid, []).append((now, now - pred.frame.capture_time))
        if pred.frame.index <= self.last_index.get(sid, -1):
            self.order_errors += 1
        self.last_index[sid] = pred.frame.index

    def window(self, sid: str, start: float, end: float) -> dict:
        lat = [lat for t, lat in self.items.get(sid, []) if start <= t < end]
        if not lat:
            return {"frames": 0, "fps": 0.0, "p50_ms": None, "p95_ms": None}
        return {
            "frames": len(lat),
            "fps": round(len(lat) / (end - start), 2),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1),
            "p95_ms": round(float(np.percentile(lat, 95)) * 1000, 1),
        }


def soak(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        relay = RtspRelay(tmp_path / "relay.log").start()
        w, h = (int(v) for v in args.size.split("x"))
        pubs = [RtspPublisher(relay.url(f"cam{i}"), fps=30, size=(w, h), persist=True) for i in range(args.sources)]
        for pub in pubs:
            pub.start()
            if not pub.connected.wait(20):
                raise RuntimeError(f"publisher did not connect: {pub.errors}")
        rec = Recorder()
        cfg = PipelineConfig(
            sources=[
                SourceConfig(uri=relay.url(f"cam{i}"), id=f"cam{i}", options={"read_timeout": 2, "backoff": [0.5, 2.0]})
                for i in range(args.sources)
            ],
            sinks=[SinkConfig(spec=f"video:{tmp_path / 'out.{source}.mp4'}")],
            engine=engine_config(args),
            batch_size=args.batch,
            progress=False,
        )
        samples: list[dict] = []
        pipe = Pipeline(cfg, sinks=[CallbackSink(rec)])
        pipe.start()
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        stalled = False
        try:
            while time.monotonic() < end and not pipe.failed:
                time.sleep(5)
                now = time.monotonic()
                raw = rss_mb()
                samples.append(
                    {
                        "t_s": round(now - t0),
                        "rss_mb": round(raw, 1),
                        "rss_trimmed_mb": round(rss_mb(trim=True), 1),
                        "threads": threading.active_count(),
                    }
                )
                if args.stall and not stalled and now - t0 >= 60:
                    for pub in pubs[: args.stall]:
                        pub.stall(args.minutes * 60)  # silent for the rest of the run
                    stalled = True
        finally:
            pipe.stop()
            stats = pipe.join(timeout=60).as_dict()
            for pub in pubs:
                pub.stop()
            relay.stop()
        threads_after = pipeline_threads()
    first = (t0 + 0, t0 + 60)
    last = (end - 60, end)
    per_source = {
        sid: {"first_minute": rec.window(sid, *first), "last_minute": rec.window(sid, *last)}
        for sid in sorted(rec.items)
    }
    # the baseline is taken once the pipeline has reached its full concurrency (measured: OpenVINO's
    # buffers for 4 frames in flight add ~26 MB the first time a burst fills a batch), by default 2 min
    base = next((s for s in samples if s["t_s"] >= args.warmup_minutes * 60), samples[0])
    growth = (samples[-1]["rss_mb"] - base["rss_mb"]) / base["rss_mb"] * 100
    live = [f"cam{i}" for i in range(args.stall, args.sources)]
    worse = [
        sid
        for sid in live
        if (per_source[sid]["last_minute"]["p95_ms"] or 1e9) > 1.25 * (per_source[sid]["first_minute"]["p95_ms"] or 0) + 20
    ]
    return {
        "test": "soak",
        "minutes": args.minutes,
        "sources": args.sources,
        "stalled": args.stall,
        "size": args.size,
        "test_scale": args.test_scale,
        "per_source": per_source,
        "frames_in": stats["frames_in"],
        "frames_out": stats["frames_out"],
        "dropped": stats["dropped"],
        "reconnects": stats["reconnects"],
        "order_errors": rec.order_errors,
        "rss_mb_after_warmup": base["rss_mb"],
        "rss_mb_end": samples[-1]["rss_mb"],
        "rss_growth_pct": round(growth, 2),
        "threads_left": threads_after,
        "latency_grew": worse,
        "counts_add_up": stats["frames_in"] == stats["frames_out"] + sum(stats["dropped"].values()),
        "ok": not worse and growth < 5 and threads_after == 0 and rec.order_errors == 0,
        "rss_samples": samples,
    }


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
    args = parser.parse_args()
    result = lossless(args) if args.test == "lossless" else soak(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps({k: v for k, v in result.items() if k != "rss_samples"}, indent=2))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
