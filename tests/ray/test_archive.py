"""Archives on a local Ray instance: identical to a local run, dead workers retried, bad files reported, resume."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import make_video

from streamseg.engine import EngineConfig
from streamseg.pipeline import Pipeline, PipelineConfig, RayConfig, SinkConfig, SourceConfig
from streamseg.ray.archive import run

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, engine: dict, **ray: object) -> PipelineConfig:
    return PipelineConfig(
        sources=[SourceConfig(uri=f"{tmp_path}/in/*.mp4")],
        sinks=[SinkConfig(spec=f"masks:{tmp_path}/out/{{stem}}/"), SinkConfig(spec=f"video:{tmp_path}/out/{{stem}}.mp4")],
        engine=EngineConfig(**engine), progress=False, ray=RayConfig(workers=2, **ray),
    )  # fmt: skip


def _clips(tmp_path: Path, counts: list[int]) -> list[Path]:
    return [make_video(tmp_path / "in" / f"clip{i}.mp4", n, size=(64, 48)) for i, n in enumerate(counts)]


def _masks(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]


def _no_leftovers(root: Path) -> None:
    assert not [p for p in root.rglob("*") if ".part-" in p.name]


def _video(path: Path) -> tuple[int, list[float]]:
    import av

    with av.open(str(path)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    return len(times), times


def test_archive_equals_the_local_run_file_by_file(tmp_path, local_ray, engine_options):
    (tmp_path / "in").mkdir()
    clips = _clips(tmp_path, [12, 20, 7])
    result = run(_config(tmp_path, engine_options))
    assert not result.failed and result.workers == 2 and len(result.files) == 3
    for clip in clips:
        local = tmp_path / "local" / clip.stem
        cfg = PipelineConfig(sources=[SourceConfig(uri=str(clip))], engine=EngineConfig(**engine_options),
                             sinks=[SinkConfig(spec=f"masks:{local}/"), SinkConfig(spec=f"video:{local}.mp4")],
                             progress=False)  # fmt: skip
        stats = Pipeline(cfg).run()
        remote = _masks(tmp_path / "out" / clip.stem)
        assert len(remote) == stats.frames_out == result.files[str(clip)]["frames_out"]
        assert all(np.array_equal(a, b) for a, b in zip(remote, _masks(local)))
        (ours, our_times), (theirs, their_times) = _video(tmp_path / "out" / f"{clip.stem}.mp4"), _video(Path(f"{local}.mp4"))
        assert ours == theirs == stats.frames_out
        np.testing.assert_allclose(our_times, their_times)
    _no_leftovers(tmp_path / "out")


def test_a_killed_worker_has_its_file_retried_and_every_file_is_done_once(tmp_path, local_ray, engine_options, actor_named):
    (tmp_path / "in").mkdir()
    counts = [150, 140, 130, 120]
    clips = _clips(tmp_path, counts)
    done: dict = {}
    runner = threading.Thread(target=lambda: done.setdefault("result", run(_config(tmp_path, engine_options))))
    runner.start()
    deadline = time.monotonic() + 120
    while not any(".part-" in p.name for p in (tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else True:
        assert time.monotonic() < deadline, "no worker started writing"
        time.sleep(0.05)
    local_ray.kill(actor_named("streamseg-worker-0-"), no_restart=True)
    runner.join(300)
    result = done["result"]
    assert not result.failed and result.retries >= 1
    for clip, n in zip(clips, counts):
        assert len(_masks(tmp_path / "out" / clip.stem)) == n == result.files[str(clip)]["frames_out"]
    _no_leftovers(tmp_path / "out")


def test_a_broken_file_is_reported_and_the_others_finish(tmp_path, local_ray, engine_options):
    (tmp_path / "in").mkdir()
    good = _clips(tmp_path, [9, 11])
    (tmp_path / "in" / "broken.mp4").write_bytes(b"this is not a video" * 100)
    result = run(_config(tmp_path, engine_options))
    assert list(result.failed) == [str(tmp_path / "in" / "broken.mp4")]
    assert "not a video" in result.failed[str(tmp_path / "in" / "broken.mp4")]
    for clip, n in zip(good, [9, 11]):
        assert len(_masks(tmp_path / "out" / clip.stem)) == n
    assert not (tmp_path / "out" / "broken").exists() and not (tmp_path / "out" / "broken.mp4").exists()
    _no_leftovers(tmp_path / "out")
    assert result.as_dict()["ray"]["files_failed"] == 1


def test_resume_skips_complete_files(tmp_path, local_ray, engine_options):
    (tmp_path / "in").mkdir()
    first = _clips(tmp_path, [6, 8])
    run(_config(tmp_path, engine_options))
    stamp = {c: (tmp_path / "out" / f"{c.stem}.mp4").stat().st_mtime_ns for c in first}
    extra = make_video(tmp_path / "in" / "late.mp4", 5, size=(64, 48))
    result = run(_config(tmp_path, engine_options, resume=True))
    assert sorted(result.skipped) == sorted(str(c) for c in first) and list(result.files) == [str(extra)]
    assert {c: (tmp_path / "out" / f"{c.stem}.mp4").stat().st_mtime_ns for c in first} == stamp
    assert len(_masks(tmp_path / "out" / "late")) == 5
