"""Ray's overhead on one machine: the same archive segmented locally and by Ray workers, in one run.

8 short synthetic clips -> masks. ``local``: one process, the files one after the other through the
pipeline, the engine on every core. ``ray``: ``--workers`` actors of ``--threads`` engine threads
each on a local Ray instance (``streamseg.ray.run``). Throughput (frames/s) excludes Ray's start-up
(instance, actors, engines loaded), which is reported on its own; rounds alternate, medians kept.

    python benchmarks/ray_bench.py [--clips 8] [--frames 30] [--size 320x180] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def make_clips(root: Path, clips: int, frames: int, size: tuple[int, int]) -> None:
    from streamseg.synth import write_clip

    (root / "in").mkdir(parents=True)
    for i in range(clips):
        info = write_clip(root / f"c{i}", frames=frames, seed=100 + i, size=size, fps=30)
        os.replace(info["video"], root / "in" / f"clip{i}.mp4")


def local(root: Path, out: Path, engine: object) -> tuple[float, int]:
    from streamseg.engine import Segmenter
    from streamseg.pipeline import Pipeline, PipelineConfig, SinkConfig, SourceConfig

    seg = Segmenter(config=engine)  # loaded once, like a Ray worker's
    seg.warmup((320, 180))
    t0, frames = time.perf_counter(), 0
    for clip in sorted((root / "in").glob("*.mp4")):
        cfg = PipelineConfig(sources=[SourceConfig(uri=str(clip))], sinks=[SinkConfig(spec=f"masks:{out / clip.stem}/")],
                             engine=engine, progress=False)  # fmt: skip
        frames += Pipeline(cfg, segmenter=seg).run().frames_out
    return frames / (time.perf_counter() - t0), frames


def on_ray(root: Path, out: Path, engine: object, workers: int, threads: int) -> tuple[float, float, int]:
    from streamseg.pipeline import PipelineConfig, RayConfig, SinkConfig, SourceConfig
    from streamseg.ray import run

    cfg = PipelineConfig(sources=[SourceConfig(uri=f"{root}/in/*.mp4")], sinks=[SinkConfig(spec=f"masks:{out}/{{stem}}/")],
                         engine=engine, progress=False, ray=RayConfig(workers=workers, threads_per_worker=threads))  # fmt: skip
    result = run(cfg)
    merged = result.as_dict()["ray"]
    return merged["fps"], merged["startup_s"], merged["frames_out"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="engine threads per Ray worker")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    import ray

    from streamseg.engine import EngineConfig

    engine = EngineConfig(backend=args.backend)
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - t0
    local_fps, ray_fps, startups = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_clips(root, args.clips, args.frames, size)
        for r in range(args.rounds):
            fps, frames = local(root, root / f"local{r}", replace(engine))
            local_fps.append(fps)
            fps, startup, ray_frames = on_ray(root, root / f"ray{r}", engine, args.workers, args.threads)
            assert ray_frames == frames, (ray_frames, frames)
            ray_fps.append(fps)
            startups.append(startup)
    ray.shutdown()
    result = {
        "clips": args.clips, "frames": args.clips * args.frames, "size": args.size, "workers": args.workers,
        "threads_per_worker": args.threads, "cores": os.cpu_count(),
        "local_fps": round(statistics.median(local_fps), 2), "ray_fps": round(statistics.median(ray_fps), 2),
        "ray_vs_local": round(statistics.median(ray_fps) / statistics.median(local_fps), 3),
        "ray_init_s": round(ray_init_s, 2), "actors_ready_s": round(statistics.median(startups), 2),
    }  # fmt: skip
    for key, value in result.items():
        print(f"{key:<20} {value}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
