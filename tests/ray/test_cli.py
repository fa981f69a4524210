"""``streamseg run --ray``: the command line, its exit codes and its errors (each run starts its own local Ray)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_video

pytestmark = pytest.mark.slow


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamseg", "run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240)  # fmt: skip


def _engine(engine_options: dict) -> list[str]:
    sets = []
    for key, value in engine_options.items():
        value = f"[{value[0]},{value[1]}]" if isinstance(value, tuple) else value
        sets += ["--set", f"engine.{key}={value}"]
    return sets


def test_ray_run_reports_a_broken_file_and_exits_1(tmp_path: Path, engine_options: dict) -> None:
    (tmp_path / "in").mkdir()
    make_video(tmp_path / "in" / "a.mp4", 8, size=(64, 48))
    make_video(tmp_path / "in" / "b.mp4", 5, size=(64, 48))
    (tmp_path / "in" / "c.mp4").write_bytes(b"not a video")
    done = _run("--ray", "--source", "in/*.mp4", "--sink", "masks:out/{stem}/", "--stats-json", "s.json",
                "--no-progress", "--set", "ray.workers=1", *_engine(engine_options), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert "in/c.mp4 failed" in done.stderr and "2 files (13 frames)" in done.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["ray"]["files_done"] == 2 and stats["ray"]["frames_out"] == 13 and list(stats["failed"]) == ["in/c.mp4"]
    assert stats["files"]["in/a.mp4"]["frames_out"] == 8
    assert len(list((tmp_path / "out" / "a").glob("*.png"))) == 8


def test_clear_errors_before_anything_runs(tmp_path: Path) -> None:
    make_video(tmp_path / "a.mp4", 2, size=(64, 48))
    make_video(tmp_path / "b.mp4", 2, size=(64, 48))
    collide = _run("--ray", "--source", "*.mp4", "--sink", "masks:out/", "--no-progress", cwd=tmp_path)
    assert collide.returncode == 2 and "same output" in collide.stderr and "{stem}" in collide.stderr
    nothing = _run("--ray", "--source", "videos/**/*.mp4", "--sink", "masks:out/{stem}/", "--no-progress", cwd=tmp_path)
    assert nothing.returncode == 2 and "no file matches" in nothing.stderr
    away = _run("--ray", "127.0.0.1:9", "--source", "*.mp4", "--sink", "masks:out/{stem}/", "--no-progress", cwd=tmp_path)
    assert away.returncode == 2 and "ray start --head" in away.stderr


def test_without_ray_installed_the_error_names_the_extra() -> None:
    code = ("import sys; sys.modules['ray'] = None\n"
            "from streamseg.ray.archive import import_ray\n"
            "try:\n    import_ray()\nexcept ImportError as e:\n    print(e)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'streamseg[ray]'" in out


def test_ctrl_c_leaves_only_complete_outputs(tmp_path: Path, engine_options: dict) -> None:
    import signal
    import time

    (tmp_path / "in").mkdir()
    for i in range(4):
        make_video(tmp_path / "in" / f"c{i}.mp4", 150, size=(64, 48))
    cmd = [sys.executable, "-m", "streamseg", "run", "--ray", "--source", "in/*.mp4", "--sink", "masks:out/{stem}/",
           "--sink", "video:out/{stem}.mp4", "--no-progress", "--set", "ray.workers=2", *_engine(engine_options)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(".part-" in p.name for p in (tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "only complete outputs" in err
    assert not [p for p in (tmp_path / "out").rglob("*") if ".part-" in p.name]
    for video in (tmp_path / "out").glob("*.mp4"):  # whatever finished before the signal is whole
        assert len(list((tmp_path / "out" / video.stem).glob("*.png"))) == 150
