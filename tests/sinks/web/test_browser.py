"""The page in a real browser: Debian's chromium, headless, loads the page of a pipeline running the
bundled model on a generated clip, and what it shows is checked in its screenshot."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamseg.pipeline import Pipeline, PipelineConfig, SinkConfig, SourceConfig
from streamseg.synth import PALETTE, write_clip

from helpers import ROOT
from webtools import Chromium, chromium_path, get, read_mjpeg

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FRAMES, FPS = 120, 15  # eight seconds of clip, played at its own pace
READY = """(() => {
  const img = document.querySelector('.tile img');
  const fps = document.querySelector('[data-field=fps] b');
  const frames = document.querySelector('[data-field=frames_out] b');
  return !!img && img.complete && img.naturalWidth > 0 && Number(fps.textContent) > 0 && Number(frames.textContent) >= 40;
})()"""
PROBE = """JSON.stringify((() => {
  const r = document.querySelector('.tile img').getBoundingClientRect();
  const cell = (k) => document.querySelector(`[data-field=${k}] b`).textContent;
  return {rect: [r.left, r.top, r.width, r.height], dpr: window.devicePixelRatio, fps: cell('fps'),
          frames_in: cell('frames_in'), frames_out: cell('frames_out'), p95: cell('p95'),
          state: document.querySelector('.tile .state').textContent,
          legend: [...document.querySelectorAll('#legend .class')].map(e => e.textContent)};
})())"""


def _class_pixels(tile: np.ndarray) -> dict[int, float]:
    """Share of the tile's pixels within reach of each object class's colour (overlay at alpha 0.85)."""
    rgb = tile[..., :3].astype(np.int16)
    shares = {}
    for k, colour in enumerate(PALETTE[1:], start=1):
        near = np.abs(rgb - colour.astype(np.int16)).max(axis=-1) <= 50
        shares[k] = float(near.mean())
    return shares


@pytest.mark.skipif(chromium_path() is None, reason="chromium not installed (.ci/run installs it)")
def test_the_live_page_in_a_real_browser(tmp_path):
    write_clip(tmp_path / "clip", frames=FRAMES, seed=4242, size=(320, 180), fps=FPS)
    browser = Chromium(tmp_path / "profile")
    try:
        cfg = PipelineConfig(
            sources=[SourceConfig(uri=str(tmp_path / "clip" / "video.mp4"), options={"realtime": True})],
            sinks=[SinkConfig(spec="web:127.0.0.1:0", options={"alpha": 0.85, "fps": 10})],
            progress=False,
        )
        pipe = Pipeline(cfg)
        pipe.start()
        web = pipe.sinks[0]
        png, probe = browser.page(web.url, READY, PROBE, timeout=120)
        probe = json.loads(probe)
        base = web.url.rstrip("/")
        parts = read_mjpeg(base + "/stream/0", 6)
        first = _metric(get(base + "/metrics")[2], "streamseg_frames_in_total")
        time.sleep(1.5)
        second = _metric(get(base + "/metrics")[2], "streamseg_frames_in_total")
        stats = pipe.join(timeout=120).as_dict()
    finally:
        browser.close()

    # the live numbers, as the page shows them
    assert float(probe["fps"]) > 0 and int(probe["frames_out"]) > 0 and int(probe["frames_in"]) >= int(probe["frames_out"])
    assert probe["state"] == "running" and float(probe["p95"]) > 0
    assert probe["legend"] == ["background", "disc", "box", "triangle", "star", "ring", "bar", "blob"]
    # the overlay: the model's class colours inside the image tile of the screenshot
    shot = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    x, y, w, h = (round(v * probe["dpr"]) for v in probe["rect"])
    assert w >= 300 and h >= 160, probe["rect"]
    inside = _class_pixels(shot[y : y + h, x : x + w])
    outside = _class_pixels(shot[: max(1, y - 10)])  # the header above: text and swatches only
    assert sum(share > 0.005 for share in inside.values()) >= 2, inside
    assert sum(inside.values()) > 3 * sum(outside.values()), (inside, outside)
    # the stream parses into JPEG frames of increasing index
    indices = [int(headers["x-frame-index"]) for headers, _ in parts]
    assert indices == sorted(indices) and indices[-1] > indices[0], indices
    assert all(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR) is not None for _, body in parts)
    # /metrics parses with prometheus-client's parser and its counters grow
    assert second > first > 0
    # and nothing was lost on the way
    assert stats["frames_in"] == stats["frames_out"] == FRAMES
    if os.environ.get("STREAMSEG_UPDATE_SCREENSHOT"):
        small = cv2.resize(shot, (shot.shape[1] * 3 // 4, shot.shape[0] * 3 // 4), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(ROOT / "docs" / "web.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def _metric(text: bytes, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not in /metrics")
