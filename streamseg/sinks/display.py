"""``display[:TITLE]`` — the drawn predictions in an OpenCV window.

Pressing ``q`` or Esc in the window sets :attr:`DisplaySink.stop_requested`
(a :class:`threading.Event`); the pipeline polls it and stops the run. The
sink itself never stops anything, so it stays a plain sink.

Without a display (no ``DISPLAY``/``WAYLAND_DISPLAY`` on Linux, an X server
that does not answer, or an OpenCV built without GUI) ``open()`` raises a
SinkError. The X server is probed *before* any window call because OpenCV's
Qt backend aborts the whole process when it cannot connect.

With several sources every source gets its own window, ``TITLE [source_id]``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Mapping

import cv2

from streamseg import draw
from streamseg.errors import SinkError
from streamseg.sinks.base import BaseSink, SinkContext
from streamseg.types import Prediction

__all__ = ["DisplaySink", "display_problem", "gui_backend"]

log = logging.getLogger(__name__)

_STOP_KEYS = {ord("q"), ord("Q"), 27}  # 27 = Esc


def gui_backend(build_info: str | None = None) -> str | None:
    """The HighGUI backend OpenCV was built with (``"QT5"``, ``"GTK3"``, ...), or ``None`` for headless builds."""
    info = cv2.getBuildInformation() if build_info is None else build_info
    for line in info.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key.strip() == "GUI":
            value = value.strip()
            return None if value.upper() in ("", "NONE") else value
    return None


def _lock_owner_alive(number: str, lock_dir: Path = Path("/tmp")) -> bool:
    """Whether the process in the X server's lock file ``/tmp/.X<n>-lock`` is running."""
    try:
        pid = int((lock_dir / f".X{number}-lock").read_text().strip())
        os.kill(pid, 0)
    except PermissionError:
        return True  # it exists, it is just not ours
    except (OSError, ValueError):
        return False
    return True


def _x_server_answers(display: str, timeout: float = 1.0) -> bool:
    """Whether an X server listens at ``display`` (``[host]:N[.screen]``); unknown forms count as yes.

    A local server is recognised by its lock file without connecting: a client
    that connects and leaves can make a server with no other clients (a bare
    Xvfb, ``xvfb-run``) reset, and a window opened during that reset fails.
    Only without a live lock file (another PID namespace, a remote host) does
    the probe connect.
    """
    host, sep, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not sep or not number.isdigit() or host.startswith("/"):
        return True  # e.g. macOS launchd sockets: let the toolkit decide
    if host in ("", "unix"):
        if _lock_owner_alive(number):
            return True
        candidates = [f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"]  # abstract, then path
        for address in candidates:
            if address.startswith("\0") and not sys.platform.startswith("linux"):
                continue
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                try:
                    sock.connect(address)
                    return True
                except OSError:
                    continue
        if host == "unix":
            return False
        host = "localhost"  # ":N" may also mean TCP on the local host
    try:
        with socket.create_connection((host, 6000 + int(number)), timeout=timeout):
            return True
    except OSError:
        return False


def display_problem(environ: Mapping[str, str] | None = None, build_info: str | None = None) -> str | None:
    """Why a window cannot be shown here, or ``None`` when it can."""
    env = os.environ if environ is None else environ
    backend = gui_backend(build_info)
    if backend is None:
        return "this OpenCV has no GUI support (opencv-python-headless?); install opencv-python"
    if not sys.platform.startswith("linux"):
        return None
    display, wayland = env.get("DISPLAY"), env.get("WAYLAND_DISPLAY")
    if display:
        if not _x_server_answers(display):
            return f"no X server answers at DISPLAY={display}"
        return None
    if wayland:
        if backend.upper().startswith("QT"):
            plugins = Path(cv2.__file__).parent / "qt" / "plugins" / "platforms"
            if plugins.is_dir() and not any("wayland" in p.name for p in plugins.iterdir()):
                return "WAYLAND_DISPLAY is set but this OpenCV's Qt only speaks X11; set DISPLAY (XWayland)"
        return None
    return "no display: neither DISPLAY nor WAYLAND_DISPLAY is set"


class DisplaySink(BaseSink):
    """Shows each prediction in a window; ``q``/Esc sets :attr:`stop_requested`."""

    kind = "display"
    live = True

    def __init__(
        self, title: str = "streamseg", *, mode: str = "overlay", alpha: float = 0.5, legend: bool = False
    ) -> None:
        super().__init__(f"display:{title}")
        self.title = title or "streamseg"
        self.mode, self.alpha = draw.check_drawing(mode, alpha)
        self.legend = bool(legend)
        #: Set when the user pressed q or Esc; the pipeline polls it and ends the run.
        self.stop_requested = threading.Event()
        self._windows: dict[str, str] = {}

    @property
    def windows(self) -> dict[str, str]:
        """Window title per source id."""
        return dict(self._windows)

    def _open(self, context: SinkContext) -> None:
        problem = display_problem()
        if problem:
            raise SinkError(
                f"{self.name}: cannot open a window: {problem}. Write a video instead (--sink video:out.mp4) "
                "or run under a virtual display (xvfb-run streamseg run ...)"
            )

    def _window(self, source_id: str) -> str:
        window = self._windows.get(source_id)
        if window is not None:
            return window
        if len(self._windows) == 1:  # a second source: every source gets a titled window
            (first_id, first), = self._windows.items()
            self._destroy(first)
            self._windows[first_id] = self._create(f"{self.title} [{first_id}]")
        window = self._create(f"{self.title} [{source_id}]" if self._windows else self.title)
        self._windows[source_id] = window
        return window

    @staticmethod
    def _create(window: str) -> str:
        cv2.namedWindow(window, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        return window

    @staticmethod
    def _destroy(window: str) -> None:
        try:
            cv2.destroyWindow(window)
        except cv2.error:  # already gone (closed by the user)
            pass

    def _write(self, prediction: Prediction) -> bool:
        assert self.context is not None
        window = self._window(prediction.frame.source_id)
        image = draw.render(prediction.frame.image, prediction.mask, self.context.palette, mode=self.mode,
                       alpha=self.alpha, classes=self.context.classes, legend=self.legend)  # fmt: skip
        cv2.imshow(window, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1)
        if key != -1 and (key & 0xFF) in _STOP_KEYS and not self.stop_requested.is_set():
            log.info("%s: stop requested from the keyboard", self.name)
            self.stop_requested.set()
        return True

    def _close(self) -> None:
        if not self._windows:
            return
        for window in self._windows.values():
            self._destroy(window)
        self._windows.clear()
        cv2.waitKey(1)  # let the GUI process the destroy events
