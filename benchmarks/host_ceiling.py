"""The host's ceiling: what the pipeline costs on the CPU when the model costs nothing.

On a GPU machine the model is fast; what is left on the host (decode, colour conversion,
drawing, encoding, PNG writing, the threads between them) decides the frame rate. This runs the
real sources and sinks around an engine stub that hands out masks prepared before timing (and,
where the engine renders on its device, the rendered encoder planes too), so that host work is
measured on any CPU. Rounds interleave every row, so a machine that slows down for a while slows
each row alike; medians are reported.

Per row: wall ``fps``; ``core_ms_per_frame`` (process CPU time, every thread including FFmpeg's,
per frame); ``max_thread_ms_per_frame`` (the busiest thread's CPU time per frame: the stage that
caps the rate once the cores are not the limit).

    python benchmarks/host_ceiling.py --size 1280x720 --sinks video,masks
    python benchmarks/host_ceiling.py --size 1280x720,1920x1080 --sinks none,masks,video,video+masks --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

_TICK = os.sysconf("SC_CLK_TCK")


class StubSegmenter:
    """Quacks like :class:`streamseg.Segmenter` for the pipeline, charging no model work.

    ``masks`` are the ground truth of the clip (read before timing); ``render_views`` are the
    views the sinks ask for, rendered before timing when ``device_render`` (what a GPU engine does).
    """

    def __init__(self, masks: list[np.ndarray], frames: list[np.ndarray] | None, views: tuple[Any, ...]) -> None:
        from streamseg.engine import EngineConfig
        from streamseg.engine.results import EngineStats
        from streamseg.synth import CLASSES, PALETTE

        self.masks = masks
        self.config = EngineConfig(backend="torch", device="cpu")
        self.precision, self.device = "stub", "stub"
        self.stats = EngineStats()
        self.info = None
        self.classes = tuple(CLASSES)
        self.palette = np.asarray(PALETTE, np.uint8)
        self.rendered: list[dict[Any, np.ndarray]] = [{} for _ in masks]
        if frames is not None and views:
            from streamseg.render import render_views

            for i, (image, mask) in enumerate(zip(frames, masks)):
                self.rendered[i] = render_views(image, mask, self.palette, views, classes=self.classes)
        self._done: list[list[Any]] = []

    def submit(self, batch: Any, **_: Any) -> None:
        from streamseg.types import Prediction

        preds = []
        for frame in batch.frames:
            i = frame.index % len(self.masks)
            extra = {"rendered": self.rendered[i]} if self.rendered[i] else {}  # older Predictions have no field
            preds.append(Prediction(frame=frame, mask=self.masks[i], **extra))
        self.stats.frames += len(preds)
        self.stats.batches += 1
        self._done.append(preds)

    def poll(self, *, wait: bool = False) -> list[list[Any]]:
        done, self._done = self._done, []
        return done

    def flush(self) -> list[list[Any]]:
        return self.poll()

    def reset_stream(self, stream_id: str | None = None) -> None:
        pass

    def draw_views(self, views: Any) -> bool:
        return bool(self.rendered[0])  # rendered before timing, for the views views_for() chose


class ThreadClock:
    """CPU time of every thread of this process, sampled so threads that end mid-run still count."""

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self.seen: dict[int, tuple[str, float]] = {}
        self._start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="host-ceiling-clock", daemon=True)

    @staticmethod
    def _read() -> dict[int, tuple[str, float]]:
        out = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / _TICK)
        return out

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def _sample(self) -> None:
        python_names = {t.native_id: t.name for t in threading.enumerate()}  # OS names are all "python" here
        for tid, (name, cpu) in self._read().items():
            self.seen[tid] = (python_names.get(tid, name), cpu)

    def __enter__(self) -> "ThreadClock":
        self._start = {tid: cpu for tid, (_, cpu) in self._read().items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def busiest(self) -> tuple[str, float]:
        """(thread name, CPU seconds during the run) of the busiest thread, this clock's own excluded."""
        own = self._thread.native_id
        used = [(name, cpu - self._start.get(tid, 0.0)) for tid, (name, cpu) in self.seen.items() if tid != own]
        return max(used, key=lambda item: item[1], default=("-", 0.0))


def run_once(video: Path, out: Path, sinks: str, seg: StubSegmenter, batch: int) -> dict[str, Any]:
    from streamseg.pipeline import Pipeline, PipelineConfig, SinkConfig, SourceConfig

    specs = {"video": f"video:{out / 'overlay.mp4'}", "masks": f"masks:{out / 'masks'}"}
    chosen = [] if sinks == "none" else [SinkConfig(spec=specs[s]) for s in sinks.split(",")]
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(video))], sinks=chosen, batch_size=batch, progress=False)
    pipeline = Pipeline(cfg, segmenter=seg)
    cpu0, t0 = time.process_time(), time.perf_counter()
    with ThreadClock() as clock:
        stats = pipeline.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = stats.frames_out
    name, busiest = clock.busiest()
    return {"fps": n / wall, "core_ms_per_frame": 1000 * cpu / n, "max_thread_ms_per_frame": 1000 * busiest / n,
            "busiest_thread": name, "frames": n}  # fmt: skip


def prepare(size: tuple[int, int], frames: int, tmp: Path) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    """A synthetic H.264 clip of ``size`` with its class masks, and its decoded frames (for device rendering)."""
    import cv2

    from pipeline_bench import decode_all  # beside this script
    from streamseg.synth import write_clip

    info = write_clip(tmp / f"clip{size[0]}x{size[1]}", frames=frames, seed=4242, size=size, fps=30)
    masks = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(Path(info["masks_dir"]).glob("*.png"))]
    masks = [np.where(m == 255, 0, m).astype(np.uint8) for m in masks]
    return Path(info["video"]), masks, decode_all(Path(info["video"]))


def views_for(sinks: str, device_render: bool) -> tuple[Any, ...]:
    """The views the sinks would ask a rendering engine for (none when rendering stays in the sinks)."""
    if not device_render or "video" not in sinks.split(","):
        return ()
    from streamseg.sinks.video import VideoSink

    return (VideoSink("x.mp4").view,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720,1920x1080", help="comma-separated WxH")
    parser.add_argument("--sinks", action="append",
                        help="one row's sinks joined by ',' or '+' (none, masks, video, video,masks); repeat for "
                             "more rows (default: all four)")  # fmt: skip
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--host-render", action="store_true",
                        help="draw in the sinks (a CPU engine) instead of taking frames rendered by the engine")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.size.split(",")]
    rows_wanted = [r.replace("+", ",") for r in args.sinks or ("none", "masks", "video", "video,masks")]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {size: prepare(size, args.frames, tmp) for size in sizes}
        stubs = {
            (size, sinks): StubSegmenter(clips[size][1], clips[size][2], views_for(sinks, not args.host_render))
            for size in sizes for sinks in rows_wanted
        }  # fmt: skip
        for r in range(max(1, args.rounds)):
            for size in sizes:
                for sinks in rows_wanted:
                    out = tmp / f"out{r}_{size[0]}_{sinks.replace(',', '_')}"
                    row = run_once(clips[size][0], out, sinks, stubs[(size, sinks)], args.batch)
                    results.setdefault((f"{size[0]}x{size[1]}", sinks), []).append(row)
    rows = []
    for (size, sinks), runs in results.items():
        med = {k: round(statistics.median(r[k] for r in runs), 2) for k in ("fps", "core_ms_per_frame", "max_thread_ms_per_frame")}
        busiest = statistics.mode(r["busiest_thread"] for r in runs)
        rows.append({"size": size, "sinks": sinks, **med, "busiest_thread": busiest, "frames": runs[0]["frames"],
                     "rounds": len(runs)})  # fmt: skip
    report = {"cores": os.cpu_count(), "device_render": not args.host_render, "rows": rows}
    print(f"{'size':<10} {'sinks':<12} {'fps':>7} {'core-ms/f':>10} {'max-thread-ms/f':>16}  busiest")
    for row in rows:
        print(f"{row['size']:<10} {row['sinks']:<12} {row['fps']:>7.1f} {row['core_ms_per_frame']:>10.1f} "
              f"{row['max_thread_ms_per_frame']:>16.1f}  {row['busiest_thread']}")  # fmt: skip
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
