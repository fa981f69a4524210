"""Pipeline mechanics on real encoded files: every frame once and in order, routing, errors, shutdown."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

import streamseg
from streamseg.errors import ConfigError, StageError
from streamseg.pipeline import Pipeline, PipelineConfig, SinkConfig, SourceConfig
from streamseg.sinks.callback import CallbackSink

from helpers import decode_index, index_frame, make_video

pytestmark = pytest.mark.timeout(120)


def _no_pipeline_threads(timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t.name.startswith("streamseg-")]:
            return True
        time.sleep(0.05)
    return False


def _collect() -> tuple[list, CallbackSink]:
    seen: list = []
    return seen, CallbackSink(seen.append)


def test_lossless_file_every_frame_once_in_order(tmp_path, tiny_segmenter):
    video = make_video(tmp_path / "in.mp4", 40, size=(64, 48))
    seen, sink = _collect()
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(video))], batch_size=3, progress=False)
    stats = Pipeline(cfg, sinks=[sink], segmenter=tiny_segmenter).run()
    assert [p.frame.index for p in seen] == list(range(40))
    assert [decode_index(p.frame.image) for p in seen] == list(range(40))
    assert all(p.mask.shape == (48, 64) for p in seen)
    s = stats.as_dict()
    assert s["frames_in"] == s["frames_out"] == 40 and s["dropped"] == {"0": 0}
    assert s["stages"]["engine"]["frames"] == 40 and s["stages"]["decode"]["frames"] == 40
    assert _no_pipeline_threads()


def _duration(path) -> float:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
    last = frames[-1]
    step = (frames[-1].pts - frames[-2].pts) * last.time_base
    return float(last.pts * last.time_base + step), len(frames), [f.pts * f.time_base for f in frames]


@pytest.mark.parametrize("vfr", [False, True])
def test_video_sink_keeps_duration_and_timestamps(tmp_path, tiny_segmenter, vfr):
    n = 30
    pts = [int(i * 40 + (15 * (i % 3) if vfr else 0)) for i in range(n)] if vfr else None
    video = make_video(tmp_path / "in.mp4", n, size=(64, 48), pts=pts, time_base=Fraction(1, 1000) if vfr else None)
    out = tmp_path / "out.mp4"
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(video))], sinks=[SinkConfig(spec=f"video:{out}")], progress=False)
    Pipeline(cfg, segmenter=tiny_segmenter).run()
    d_in, n_in, t_in = _duration(video)
    d_out, n_out, t_out = _duration(out)
    assert n_out == n_in == n
    frame = t_in[1] - t_in[0]
    assert abs(d_out - d_in) <= frame + 1e-3
    np.testing.assert_allclose([float(t) for t in t_out], [float(t) for t in t_in], atol=2e-3)


def test_image_folder_and_iterable_sources(tmp_path, tiny_segmenter):
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.png"), index_frame(i, 40, 32))
    frames = [index_frame(i, 40, 32) for i in range(7)]
    seen, sink = _collect()
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(folder), id="dir")], progress=False)
    stats = Pipeline(cfg, sources=[streamseg.sources.IterableSource(frames, source_id="mem")], sinks=[sink],
                     segmenter=tiny_segmenter).run()
    by_source: dict[str, list[int]] = {}
    for p in seen:
        by_source.setdefault(p.frame.source_id, []).append(decode_index(p.frame.image))
    assert by_source == {"dir": list(range(5)), "mem": list(range(7))}
    assert stats.as_dict()["frames_out"] == 12


def test_a_segmenter_passed_in_is_reused_and_stats_count_this_run_only(tiny_segmenter):
    from streamseg.sources import IterableSource

    frames = [index_frame(i, 40, 32) for i in range(5)]
    tiny_segmenter.segment(frames[:3])  # warmed up by its owner before the pipeline starts
    for _ in range(2):
        seen, sink = _collect()
        stats = Pipeline(PipelineConfig(progress=False), sources=[IterableSource(frames)],
                         sinks=[sink], segmenter=tiny_segmenter).run().as_dict()
        assert [decode_index(p.frame.image) for p in seen] == list(range(5))
        assert stats["stages"]["engine"]["frames"] == 5
    assert tiny_segmenter.stats.frames == 13  # still usable: the pipeline did not release it


def test_several_sources_batched_and_routed(tmp_path, tiny_segmenter):
    a = make_video(tmp_path / "a.mp4", 12, size=(64, 48))
    b = make_video(tmp_path / "b.mp4", 9, size=(48, 64))
    seen, sink = _collect()
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=str(a), id="cam_a"), SourceConfig(uri=str(b), id="cam_b")],
        batch_size=4,
        progress=False,
    )
    Pipeline(cfg, sinks=[sink], segmenter=tiny_segmenter).run()
    for sid, n, shape in (("cam_a", 12, (48, 64)), ("cam_b", 9, (64, 48))):
        mine = [p for p in seen if p.frame.source_id == sid]
        assert [p.frame.index for p in mine] == list(range(n))
        assert all(p.mask.shape == shape for p in mine)
    assert max(p.timings["batch_size"] for p in seen) > 1  # frames of both cameras shared batches


def test_callback_exception_reaches_caller_with_stage(tmp_path, tiny_segmenter):
    video = make_video(tmp_path / "in.mp4", 30, size=(64, 48))

    def boom(pred):
        if pred.frame.index == 5:
            raise ValueError("callback exploded")

    cfg = PipelineConfig(sources=[SourceConfig(uri=str(video))], progress=False)
    with pytest.raises(StageError, match="sink callback.*callback exploded") as err:
        Pipeline(cfg, sinks=[CallbackSink(boom)], segmenter=tiny_segmenter).run()
    assert isinstance(err.value.__cause__, ValueError)
    assert _no_pipeline_threads()


def test_source_error_names_the_source(tmp_path, tiny_segmenter):
    bad = tmp_path / "notvideo.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(bad), id="broken")], progress=False)
    with pytest.raises(StageError, match="source broken"):
        Pipeline(cfg, segmenter=tiny_segmenter).run()
    assert _no_pipeline_threads()


def _folder_broken_at(folder, good: int, after: int = 2):
    """Images 0..good-1 decodable, then one that is not, then ``after`` more good ones."""
    import cv2

    folder.mkdir()
    for i in range(good + 1 + after):
        if i == good:
            (folder / f"{i:03d}.png").write_bytes(b"\x89PNG truncated")
        else:
            cv2.imwrite(str(folder / f"{i:03d}.png"), index_frame(i, 40, 32))
    return folder


def test_on_error_skip_finishes_the_other_sources_and_reports_the_broken_one(tmp_path, tiny_segmenter):
    video = make_video(tmp_path / "a.mp4", 15, size=(64, 48))
    notvideo = tmp_path / "notvideo.mp4"
    notvideo.write_bytes(b"this is not a video" * 100)
    folder = _folder_broken_at(tmp_path / "imgs", good=3)
    seen, sink = _collect()
    cfg = PipelineConfig(
        sources=[
            SourceConfig(uri=str(video), id="good"),
            SourceConfig(uri=str(notvideo), id="unreadable", on_error="skip"),
            SourceConfig(uri=str(folder), id="midway", on_error="skip"),
        ],
        batch_size=2,
        progress=False,
    )
    stats = Pipeline(cfg, sinks=[sink], segmenter=tiny_segmenter).run().as_dict()
    by_source: dict[str, list[int]] = {}
    for p in seen:
        by_source.setdefault(p.frame.source_id, []).append(p.frame.index)
    assert by_source == {"good": list(range(15)), "midway": [0, 1, 2]}  # what was read before the error is kept
    assert set(stats["source_errors"]) == {"unreadable", "midway"}
    assert "not a video" in stats["source_errors"]["unreadable"]
    assert "cannot decode image" in stats["source_errors"]["midway"] and "003.png" in stats["source_errors"]["midway"]
    assert stats["frames_in_per_source"] == {"good": 15, "unreadable": 0, "midway": 3}
    assert stats["frames_in"] == stats["frames_out"] == 18
    assert _no_pipeline_threads()


def test_on_error_fail_is_the_default_and_stops_at_a_midway_error(tmp_path, tiny_segmenter):
    folder = _folder_broken_at(tmp_path / "imgs", good=3)
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(folder), id="midway")], progress=False)
    with pytest.raises(StageError, match="source midway.*003.png"):
        Pipeline(cfg, segmenter=tiny_segmenter).run()
    with pytest.raises(ConfigError, match="on_error must be 'fail' or 'skip'"):
        PipelineConfig.from_dict({"sources": [{"uri": str(folder), "on_error": "ignore"}]})
    assert _no_pipeline_threads()


def test_stop_from_another_thread(tmp_path, tiny_segmenter):
    video = make_video(tmp_path / "in.mp4", 300, size=(64, 48))
    seen, sink = _collect()
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(video))], progress=False)
    pipe = Pipeline(cfg, sinks=[sink], segmenter=tiny_segmenter)
    pipe.start()
    while len(seen) < 5:
        time.sleep(0.01)
    threading.Thread(target=pipe.stop).start()
    stats = pipe.join(timeout=10)
    s = stats.as_dict()
    assert 5 <= s["frames_out"] < 300
    assert s["frames_in"] == s["frames_out"] + s["dropped"]["0"]  # counts add up
    assert [p.frame.index for p in seen] == list(range(len(seen)))
    assert _no_pipeline_threads()


def test_latest_policy_drops_are_counted_never_reordered(tiny_segmenter):
    from streamseg.sources import PushSource

    push = PushSource(source_id="robot", maxsize=1, policy="latest")
    seen, sink = _collect()
    slow = CallbackSink(lambda p: (seen.append(p), time.sleep(0.02)))
    cfg = PipelineConfig(progress=False, batch_size=1)
    pipe = Pipeline(cfg, sources=[push], sinks=[slow], segmenter=tiny_segmenter)
    pipe.start()
    for i in range(120):
        push.submit(index_frame(i, 40, 32))
        time.sleep(0.002)
    push.end()
    stats = pipe.join(timeout=30).as_dict()
    indices = [p.frame.index for p in seen]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert all(decode_index(p.frame.image) == p.frame.index for p in seen)
    dropped = stats["dropped"]["robot"]
    assert dropped > 0 and stats["frames_out"] + dropped == 120


def test_latest_result_for_control_loops(tiny_segmenter):
    from streamseg.sources import PushSource

    push = PushSource(source_id="arm")
    with Pipeline(PipelineConfig(progress=False), sources=[push], segmenter=tiny_segmenter) as pipe:
        assert pipe.latest_result("arm") is None
        push.submit(index_frame(3, 40, 32))
        deadline = time.monotonic() + 10
        while pipe.latest_result("arm") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        pred, age = pipe.latest_result("arm")
        assert pred.mask.shape == (32, 40) and 0 <= age < 10
        push.end()
    assert _no_pipeline_threads()


def test_stream_generator_and_early_break(tmp_path, tiny_segmenter, monkeypatch):
    video = make_video(tmp_path / "in.mp4", 50, size=(64, 48))
    import streamseg.pipeline as pl

    real = pl.Pipeline

    def with_tiny(*a, **k):
        k.setdefault("segmenter", tiny_segmenter)
        return real(*a, **k)

    monkeypatch.setattr(pl, "Pipeline", with_tiny)
    got = []
    for pred in streamseg.stream(str(video)):
        got.append(pred.frame.index)
        if len(got) == 7:
            break
    assert got == list(range(7))
    assert _no_pipeline_threads()
    assert [p.frame.index for p in streamseg.stream(str(video))] == list(range(50))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown key 'batch_sise'; did you mean 'batch_size'"):
        PipelineConfig.from_dict({"sources": ["a.mp4"], "batch_sise": 3})
    with pytest.raises(ConfigError, match="engine.precision|unknown key 'engine.precison'"):
        PipelineConfig.from_dict({"sources": ["a.mp4"], "engine": {"precison": "fp32"}})
    with pytest.raises(ConfigError, match="batch_size: expected an integer"):
        PipelineConfig.from_dict({"sources": ["a.mp4"], "batch_size": "many"})
    with pytest.raises(ConfigError, match="policy"):
        PipelineConfig.from_dict({"sources": [{"uri": "a.mp4", "policy": "fastest"}]})


def test_a_slow_sink_drops_by_its_policy_and_never_holds_back_the_others(tmp_path, tiny_segmenter, monkeypatch):
    (tmp_path / "slow_hook_for_test.py").write_text(
        "import time\nSEEN = []\ndef write(pred):\n    time.sleep(0.05)\n    SEEN.append(pred.frame.index)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    video = make_video(tmp_path / "in.mp4", 80, size=(64, 48))
    fast, fast_sink = _collect()
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=str(video))],
        sinks=[
            SinkConfig(spec="callback:slow_hook_for_test:write", policy="drop", queue_size=2),
            SinkConfig(spec=f"masks:{tmp_path / 'masks'}"),  # block: lossless
        ],
        progress=False,
    )
    stats = Pipeline(cfg, sinks=[fast_sink], segmenter=tiny_segmenter).run().as_dict()
    import slow_hook_for_test

    slow = slow_hook_for_test.SEEN
    assert [p.frame.index for p in fast] == list(range(80))  # the other sinks got every frame ...
    assert len(list((tmp_path / "masks").iterdir())) == 80
    dropped = stats["sink_dropped"]["callback:slow_hook_for_test:write"]
    assert dropped > 0 and len(slow) + dropped == 80  # ... the slow one dropped by its policy, counted
    assert slow == sorted(slow) and len(set(slow)) == len(slow)  # what it got is in order, never repeated
    assert stats["stages"]["sink callback:slow_hook_for_test:write"]["frames"] == len(slow)


def test_a_stalled_live_source_never_slows_the_others(tiny_segmenter):
    """Four live cameras at 20 fps; one freezes after half a second. The other three keep rate and latency.

    Their rate is only owed while the engine has time to spare: on a shared 2-core machine the random
    segnext_t (~20 ms a batch of one at 32x32) may not keep up with 60 fps, and then the ``latest``
    policy drops (counted) however the sources behave. A stall that held the others back would leave
    the engine idle instead.
    """
    from streamseg.sources import PushSource

    fps, run_s, stall_at, late = 20, 3.0, 0.5, 1.5
    cams = [PushSource(source_id=f"cam{i}") for i in range(4)]
    arrivals: dict[str, list[tuple[float, float]]] = {c.source_id: [] for c in cams}

    def record(pred):
        now = time.monotonic()
        arrivals[pred.frame.source_id].append((now, now - pred.frame.capture_time))

    pipe = Pipeline(PipelineConfig(progress=False, batch_size=4, max_wait_ms=10), sources=cams,
                    sinks=[CallbackSink(record)], segmenter=tiny_segmenter)
    pipe.start()
    start = time.monotonic()
    i = 0
    while (now := time.monotonic()) < start + run_s:
        for cam in cams[1:] if now > start + stall_at else cams:  # cam0 freezes: no frames, no end
            cam.submit(index_frame(i, 32, 32))
        i += 1
        time.sleep(max(0.0, start + i / fps - time.monotonic()))
    for cam in cams:
        cam.end()
    stats = pipe.join(timeout=20).as_dict()
    engine_busy = stats["stages"]["engine"]["busy_s"] / (time.monotonic() - start)
    assert max(t for t, _ in arrivals["cam0"]) < start + stall_at + 0.5  # it really stalled
    for sid in ("cam1", "cam2", "cam3"):
        recent = [lat for t, lat in arrivals[sid] if start + late <= t < start + run_s]
        kept_rate = len(recent) >= 0.7 * fps * (run_s - late)
        assert kept_rate or engine_busy > 0.75, (sid, len(recent), round(engine_busy, 2))
        assert sorted(recent)[int(0.95 * (len(recent) - 1))] < 0.3, sid  # and its latency
    assert stats["frames_in"] == stats["frames_out"] + sum(stats["dropped"].values())


def test_a_held_sink_does_not_stop_the_engine_launching(tmp_path, tiny_segmenter):
    """The fan-out thread, not the engine, waits for a lossless sink that lags: the engine goes on launching
    until the finished-batch queue (2 x in_flight) is full, and nothing is lost once the sink moves again."""
    gate, got = threading.Event(), []

    def held(pred):
        gate.wait(30)
        got.append(pred.frame.index)

    video = make_video(tmp_path / "in.mp4", 30, size=(32, 32))
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(video))], sinks=[], batch_size=1, max_wait_ms=0, progress=False)
    pipe = Pipeline(cfg, sinks=[CallbackSink(held)], segmenter=tiny_segmenter)
    pipe._sinks[0].queue.maxsize = 1  # the sink holds one frame in write() and one in its queue
    before = tiny_segmenter.stats.batches
    pipe.start()
    launched, deadline = -1, time.monotonic() + 20
    while time.monotonic() < deadline:  # until the engine stops launching
        time.sleep(0.5)
        now = tiny_segmenter.stats.batches - before
        if now == launched:
            break
        launched = now
    assert got == []
    # held: 1 in write, 1 in the sink queue, 1 in the fan-out's hand, 4 queued for it, 1 being handed on
    in_flight = cfg.engine.in_flight
    assert launched >= 3 + 2 * in_flight, launched  # a fan-out in the engine thread would stop it at 3
    gate.set()
    stats = pipe.join(timeout=60)
    assert got == list(range(30)) and stats.frames_out == 30
