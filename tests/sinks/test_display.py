"""DisplaySink in a real OpenCV window on a real X server (Xvfb), driven with xdotool and ImageMagick.

The window lives in a child process (see the ``xvfb`` fixture for why); the
test takes a screenshot of the root window and sends key presses from outside,
as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamseg.draw import overlay
from streamseg.errors import SinkError
from streamseg.sinks import open_sink
from streamseg.sinks.display import DisplaySink, _lock_owner_alive, display_problem, gui_backend

CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from streamseg.sinks.base import SinkContext
    from streamseg.sinks.display import DisplaySink
    from streamseg.types import Frame, Prediction

    title, sources = sys.argv[1], sys.argv[2].split(",")
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    ctx = SinkContext(classes=("bg", "red", "green", "blue"), palette=palette)
    image = np.full((120, 160, 3), 128, np.uint8)
    mask = (np.arange(160)[None, :] * 4 // 160).repeat(120, 0).astype(np.uint8)
    sink = DisplaySink(title)
    sink.open(ctx)
    deadline, i = time.monotonic() + 15, 0
    while not sink.stop_requested.is_set() and time.monotonic() < deadline:
        for sid in sources:
            sink.write(Prediction(Frame(image=image, source_id=sid, index=i), mask))
        i += 1
        if i == 5:
            print("SHOWN", json.dumps(sink.windows), flush=True)
        time.sleep(0.03)
    print(json.dumps({"stop": sink.stop_requested.is_set(), "frames": sink.frames}), flush=True)
    sink.close()
    """
)


def _start_child(display: str, title: str, sources: str, log: Path) -> tuple[subprocess.Popen, dict]:
    env = {**os.environ, "DISPLAY": display}
    env.pop("WAYLAND_DISPLAY", None)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, title, sources],
        stdout=subprocess.PIPE,
        stderr=open(log, "wb"),  # Qt's font warnings; kept for failures
        text=True,
        env=env,
    )
    line = child.stdout.readline()
    assert line.startswith("SHOWN"), f"the child never showed a window; see {log}"
    return child, json.loads(line.split(" ", 1)[1])


def _window_id(display: str, title: str) -> str:
    out = subprocess.run(
        ["xdotool", "search", "--sync", "--onlyvisible", "--name", f"^{title}$"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=10,
    )
    ids = out.stdout.split()
    assert ids, f"no window titled {title!r}: {out.stderr}"
    return ids[0]


def _overlay_pixels(shot: Path) -> list[int]:
    """How many screen pixels show each of the four overlay colours the child draws."""
    screen = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    expected = overlay(np.full((1, 4, 3), 128, np.uint8), np.array([[0, 1, 2, 3]], np.uint8), palette)[0]
    return [int((screen == colour).all(-1).sum()) for colour in expected]


@pytest.mark.display
@pytest.mark.timeout(60)
def test_window_shows_overlay_and_q_requests_stop(xvfb: str, tmp_path: Path) -> None:
    child, windows = _start_child(xvfb, "streamseg-test", "0", tmp_path / "child.log")
    env = {**os.environ, "DISPLAY": xvfb}
    try:
        assert windows == {"0": "streamseg-test"}
        wid = _window_id(xvfb, "streamseg-test")
        shot, counts = tmp_path / "shot.png", [0]
        start = time.monotonic()
        remapped = False
        while time.monotonic() < start + 10:  # the window is mapped before Qt paints it: poll the screen
            subprocess.run(["import", "-window", "root", str(shot)], env=env, check=True, timeout=20)
            counts = _overlay_pixels(shot)
            if min(counts) >= 40 * 120 * 0.9:  # each of the four bands is 40 x 120 pixels
                break
            if not remapped and time.monotonic() > start + 1.5:
                # Without a window manager, Qt sometimes misses the first Expose and never
                # flushes (measured: ~1 run in 4 on a bare Xvfb); re-mapping the window, as
                # any window manager would, makes it paint. The frames are shown either way.
                subprocess.run(["xdotool", "windowunmap", "--sync", wid], env=env, timeout=10)
                subprocess.run(["xdotool", "windowmap", "--sync", wid], env=env, timeout=10)
                remapped = True
            time.sleep(0.2)
        subprocess.run(["xdotool", "key", "--window", wid, "q"], env=env, check=True, timeout=10)
        out, _ = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert min(counts) >= 40 * 120 * 0.9, f"overlay colours cover {counts} pixels on screen, see {shot}"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["stop"] is True and result["frames"] >= 5


@pytest.mark.display
@pytest.mark.timeout(60)
def test_one_window_per_source(xvfb: str, tmp_path: Path) -> None:
    child, windows = _start_child(xvfb, "seg", "a,b", tmp_path / "child.log")
    try:
        assert windows == {"a": "seg [a]", "b": "seg [b]"}
        _window_id(xvfb, r"seg \[a\]")
        wid = _window_id(xvfb, r"seg \[b\]")
        env = {**os.environ, "DISPLAY": xvfb}
        subprocess.run(["xdotool", "key", "--window", wid, "Escape"], env=env, check=True, timeout=10)
        out, _ = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert json.loads(out.strip().splitlines()[-1])["stop"] is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY matters on Linux only")
def test_no_display_is_a_sink_error(monkeypatch: pytest.MonkeyPatch, context) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    sink = open_sink("display:My window")
    assert isinstance(sink, DisplaySink) and sink.title == "My window"
    with pytest.raises(SinkError) as info:
        sink.open(context)
    message = str(info.value)
    assert "DISPLAY" in message and "video:out.mp4" in message and "xvfb" in message.lower()
    sink.close()  # safe after a failed open
    assert not sink.stop_requested.is_set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X display probing is Linux-only")
def test_dead_x_display_is_caught_before_qt_aborts(monkeypatch: pytest.MonkeyPatch, context) -> None:
    # OpenCV's Qt would abort this very process on an unreachable display; the probe must catch it first.
    monkeypatch.setenv("DISPLAY", ":4242")
    with pytest.raises(SinkError, match="no X server answers at DISPLAY=:4242"):
        DisplaySink().open(context)


def test_headless_opencv_is_detected() -> None:
    assert gui_backend("  Video I/O:\n  GUI:                           NONE\n") is None
    assert gui_backend("  GUI:                           QT5\n") == "QT5"
    problem = display_problem({"DISPLAY": ":0"}, build_info="  GUI: NONE\n")
    assert problem is not None and "opencv-python" in problem
    assert display_problem({}, build_info="  GUI: GTK3\n") == (
        "no display: neither DISPLAY nor WAYLAND_DISPLAY is set" if sys.platform.startswith("linux") else None
    )


def test_x_lock_file_is_read_without_connecting(tmp_path: Path) -> None:
    # Connecting to a bare Xvfb and leaving resets it (measured: 1 in 10 windows then failed to open).
    (tmp_path / ".X7-lock").write_text(f"{os.getpid():>10}\n")
    assert _lock_owner_alive("7", tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".X8-lock").write_text(f"{dead.pid:>10}\n")
    assert not _lock_owner_alive("8", tmp_path)
    assert not _lock_owner_alive("9", tmp_path)
