"""The scripts in demos/ run as a user would run them, on generated input."""

from __future__ import annotations

import os
import subprocess
import sys

import av
import pytest

from helpers import ROOT, make_video

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
DEMOS = ROOT / "demos"


def _run(script: str, *args: str, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEMOS / script), *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=200)


def test_segment_video(tmp_path):
    from streamseg.synth import write_clip

    write_clip(tmp_path / "clip", frames=12, seed=5, size=(320, 180), fps=30)
    out = _run("segment_video.py", str(tmp_path / "clip" / "video.mp4"), str(tmp_path / "out"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "out" / "masks").glob("*.png"))) == 12
    with av.open(str(tmp_path / "out" / "overlay.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12
    assert "'frames_out': 12" in out.stdout


def test_robot_loop(tmp_path):
    out = _run("robot_loop.py", "4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("step")]
    assert len(lines) == 4 and all("steer" in line for line in lines)


def test_live_camera_on_a_stream_in_a_real_window(tmp_path, xvfb):
    video = make_video(tmp_path / "cam.mp4", 20, size=(96, 64))
    env = {**os.environ, "DISPLAY": xvfb}
    out = _run("live_camera.py", str(video), cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "frames shown" in out.stdout
