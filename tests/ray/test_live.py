"""Live streams on Ray: a real RTSP camera (the shared relay) served by an actor that is killed and restarted."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from helpers import RtspPublisher

from streamseg.engine import EngineConfig
from streamseg.pipeline import PipelineConfig, RayConfig, SinkConfig, SourceConfig
from streamseg.ray import serve

pytestmark = [pytest.mark.slow, pytest.mark.rtsp, pytest.mark.timeout(240)]


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_killed_live_worker_is_restarted_and_keeps_delivering(rtsp_relay, local_ray, engine_options, actor_named, tmp_path: Path):
    pub = RtspPublisher(rtsp_relay.url("cam"), persist=True, size=(64, 48))
    pub.start()
    assert pub.connected.wait(15), pub.errors
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=rtsp_relay.url("cam"), id="cam",
                              options={"open_timeout": 5, "read_timeout": 2, "backoff": [0.2, 1.0]})],
        sinks=[SinkConfig(spec=f"masks:{tmp_path / 'masks'}")], engine=EngineConfig(**engine_options),
        batch_size=1, max_wait_ms=0, progress=False, ray=RayConfig(),
    )  # fmt: skip
    stop, seen, box = threading.Event(), [], []
    runner = threading.Thread(target=lambda: box.append(serve(cfg, stop=stop, on_stats=seen.append)))
    runner.start()
    try:
        _wait(lambda: seen and seen[-1].get("frames_out", 0) >= 10, 90, "the live worker never delivered")
        before = seen[-1]["frames_out"]
        local_ray.kill(actor_named("streamseg-live-0-"), no_restart=True)
        _wait(lambda: seen[-1]["restarts"] >= 1 and seen[-1].get("frames_out", 0) >= before + 10, 90,
              "the restarted worker did not deliver")  # fmt: skip
    finally:
        stop.set()
        runner.join(150)
        pub.stop()
    result = box[0]
    assert result.restarts == 1 and result.stats["restarts_per_worker"] == {"streamseg-live-0": 1}
    outs = [s.get("frames_out", 0) for s in seen]
    assert outs == sorted(outs)  # carried over a restart: the counters never go backwards
    assert result.stats["frames_out"] >= before + 10 and result.stats["frames_in_per_source"]["cam"] >= result.stats["frames_out"]
