"""Test helpers: real encoded videos made with PyAV and a real RTSP server on 127.0.0.1.

Imported as ``helpers`` (pytest puts ``tests/`` on ``sys.path``); ``conftest`` re-exports them."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STREAMSEG_SHARED", ROOT.parent / "shared"))
RELAY = Path(os.environ.get("STREAMSEG_RTSP_RELAY", SHARED / "tools" / "rtsp_relay.py"))
SYSTEM_PY = "/usr/bin/python3"  # Debian's python, where python3-gi lives
PARITY = SHARED / "parity"


def index_frame(i: int, width: int, height: int) -> np.ndarray:
    """A frame whose index survives H.264: flat grey levels encode i (top half i % 64, bottom half i // 64)."""
    img = np.empty((height, width, 3), np.uint8)
    img[: height // 2] = 16 + 3 * (i % 64)
    img[height // 2 :] = 16 + 3 * ((i // 64) % 64)
    return img


def decode_index(img: np.ndarray) -> int:
    """Inverse of :func:`index_frame` (robust to compression noise)."""
    h = img.shape[0]
    top = float(img[h // 8 : h // 2 - h // 8].mean())
    bottom = float(img[h // 2 + h // 8 : h - h // 8].mean())
    return int(round((top - 16) / 3)) + 64 * int(round((bottom - 16) / 3))


def make_video(
    path: Path,
    frames: int | Sequence[np.ndarray] = 10,
    *,
    size: tuple[int, int] = (64, 48),
    fps: int = 25,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
) -> Path:
    """Encode a real video file. ``frames`` is a count (index-coded frames) or RGB arrays.

    ``pts`` (with ``time_base``) gives variable frame rate; ``rotation`` writes display-matrix metadata.
    """
    import av

    if isinstance(frames, int):
        images = [index_frame(i, *size) for i in range(frames)]
    else:
        images = list(frames)
    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "18"}
        stream.codec_context.time_base = time_base or Fraction(1, fps)
        if rotation is not None:
            stream.set_display_rotation(rotation)  # display-matrix side data (counter-clockwise degrees)
        for i, img in enumerate(images):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = pts[i] if pts is not None else i
            vf.time_base = stream.codec_context.time_base
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class RtspRelay:
    """The shared relay (``../shared/tools/rtsp_relay.py``) as a child process; restartable on its port."""

    def __init__(self, log_path: Path, port: int = 0, idle_timeout: float = 3) -> None:
        self.port, self.log_path, self.proc, self.idle_timeout = port, log_path, None, idle_timeout

    def start(self, timeout: float = 10.0) -> "RtspRelay":
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [SYSTEM_PY, str(RELAY), "--port", str(self.port), "--idle-timeout", str(self.idle_timeout), "-v"],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and sel.select(left):
            line = self.proc.stdout.readline()
            if line.startswith("READY "):
                self.port = int(line.split()[1])
                return self
            if not line:
                break
        self.stop()
        raise RuntimeError(f"RTSP relay did not start, see {self.log_path}")

    def stop(self, timeout: float = 5.0) -> None:
        stop_process(self.proc, timeout)

    def url(self, path: str = "live") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"


class HttpServer:
    """A real HTTP server on 127.0.0.1 in its own thread, with any request handler class.

    ``HttpServer.folder(root)`` serves the files of a folder (quietly); ``stop()`` takes it offline.
    """

    def __init__(self, handler: Any) -> None:
        from http.server import ThreadingHTTPServer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @classmethod
    def folder(cls, root: Path) -> "HttpServer":
        import functools
        from http.server import SimpleHTTPRequestHandler

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

        return cls(functools.partial(Quiet, directory=str(root)))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str = "") -> str:
        return f"{self.base}/{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def relay_unavailable_reason() -> str | None:
    if not RELAY.exists():
        return f"RTSP relay not found at {RELAY}"
    probe = subprocess.run(
        [SYSTEM_PY, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"],
        capture_output=True,
    )
    if probe.returncode:
        return "gst-rtsp-server introspection missing: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0"
    return None


class RtspPublisher(threading.Thread):
    """Publishes index-coded frames ``first, first+1, ...`` to an RTSP URL in real time (like a camera).

    ``count=None`` publishes until :meth:`stop`. With ``persist=True`` a lost
    connection (server restart) is retried, continuing the indices.
    """

    def __init__(
        self,
        url: str,
        *,
        first: int = 0,
        count: int | None = None,
        fps: int = 25,
        size: tuple[int, int] = (64, 48),
        persist: bool = False,
    ) -> None:
        super().__init__(daemon=True, name=f"publisher-{url}")
        self.url, self.first, self.count, self.fps, self.size, self.persist = url, first, count, fps, size, persist
        self.connected = threading.Event()
        self.sent: list[int] = []
        self.next_index = first
        self.errors: list[BaseException] = []
        self._halt = threading.Event()
        self._stall_s = 0.0
        self._burst = False
        self._restart = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def stall(self, seconds: float, *, burst: bool = False) -> None:
        """Send nothing for ``seconds``. A frozen camera (default): pts jump over the gap. ``burst``: a
        stalled network; the frames captured meanwhile arrive at once afterwards."""
        self._burst = burst
        self._stall_s = seconds

    def resize(self, size: tuple[int, int]) -> None:
        """Go on at another resolution: the session ends and a new one (new stream parameters) starts."""
        self.size = size
        self._restart.set()

    def run(self) -> None:
        while not self._halt.is_set() and not self._done():
            try:
                self._session()
            except Exception as exc:  # BrokenPipe / ConnectionRefused while the server is away
                self.errors.append(exc)
                if not self.persist:
                    return
                self._halt.wait(0.2)

    def _done(self) -> bool:
        return self.count is not None and self.next_index >= self.first + self.count

    def _session(self) -> None:
        import av

        with av.open(self.url, "w", format="rtsp", options={"rtsp_transport": "tcp"}, timeout=(5, 5)) as out:
            stream = out.add_stream("libx264", rate=self.fps)
            stream.width, stream.height, stream.pix_fmt = *self.size, "yuv420p"
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "18"}
            stream.codec_context.gop_size = 15
            stream.codec_context.time_base = Fraction(1, self.fps)
            t0, n = time.monotonic(), 0
            while not self._halt.is_set() and not self._done() and not self._restart.is_set():
                if self._stall_s:
                    stalled, self._stall_s = self._stall_s, 0.0
                    self._halt.wait(stalled)
                    if not self._burst:
                        n += round(stalled * self.fps)  # the clock went on; the next frame is due now
                frame = av.VideoFrame.from_ndarray(index_frame(self.next_index, *self.size), format="rgb24")
                frame.pts = n
                for packet in stream.encode(frame):
                    out.mux(packet)  # connects on the first mux
                self.connected.set()
                self.sent.append(self.next_index)
                self.next_index, n = self.next_index + 1, n + 1
                self._halt.wait(max(0.0, t0 + n / self.fps - time.monotonic()))
            for packet in stream.encode():
                out.mux(packet)
        self._restart.clear()


class PublisherProcess:
    """:class:`RtspPublisher` in a child process (``tests/publish.py``): its memory and CPU stay out of ours."""

    def __init__(self, url: str, *, fps: int = 30, size: tuple[int, int] = (320, 180)) -> None:
        self.url, self.fps, self.size = url, fps, size
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 25.0) -> "PublisherProcess":
        import sys

        cmd = [sys.executable, str(ROOT / "tests" / "publish.py"), self.url, "--fps", str(self.fps)]
        self.proc = subprocess.Popen(
            cmd + ["--size", f"{self.size[0]}x{self.size[1]}"], stdout=subprocess.PIPE, text=True
        )
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = self.proc.stdout.readline() if sel.select(timeout) else ""
        if line.strip() != "CONNECTED":
            self.stop()
            raise RuntimeError(f"publisher for {self.url} did not connect: {line.strip() or 'no answer'}")
        return self

    def stall(self) -> None:
        """Freeze the camera: nothing more is sent (the server drops it after its idle timeout)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.proc, timeout)


def stop_process(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; closes its stdout pipe."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc and proc.stdout:
        proc.stdout.close()


_LIBC: list = []


def process_sample() -> dict[str, float]:
    """This process's footprint now: RSS (raw, and after glibc hands its cached free heap back: what is
    really held), the Python heap tracemalloc traces (when it is on), Python and OS threads, open files."""
    import ctypes
    import tracemalloc

    if not _LIBC:
        _LIBC.append(ctypes.CDLL("libc.so.6"))
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        raw = int(f.read().split()[1]) * page / 2**20
    _LIBC[0].malloc_trim(0)
    with open("/proc/self/statm") as f:
        trimmed = int(f.read().split()[1]) * page / 2**20
    return {
        "rss_mb": raw,
        "rss_trimmed_mb": trimmed,
        "heap_mb": tracemalloc.get_traced_memory()[0] / 2**20 if tracemalloc.is_tracing() else float("nan"),
        "py_threads": float(threading.active_count()),
        "os_threads": float(len(os.listdir("/proc/self/task"))),
        "fds": float(len(os.listdir("/proc/self/fd"))),
    }


def slope_per_minute(times_s: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against time, per minute."""
    t = np.asarray(times_s, float) / 60.0
    v = np.asarray(values, float)
    if len(t) < 2 or np.ptp(t) == 0:
        return 0.0
    return float(np.polyfit(t, v, 1)[0])


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, real-looking RGB image (gradients + blobs), not noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        img[..., c] = 128 + 60 * np.sin(xx / (w / rng.uniform(1, 4)) + c) * np.cos(yy / (h / rng.uniform(1, 4)))
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.05, 0.3) * min(h, w)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def tiny_segmenter(model=None):
    """Random-weight segnext_t (4 classes) at the frames' own size (no upscaling), fp32 on the CPU:
    fast and deterministic, for pipeline mechanics (the mIoU tests use the bundled model)."""
    import torch

    from streamseg.engine import ModelInfo, Segmenter
    from streamseg.model import build_segnext

    if model is None:
        torch.manual_seed(0)
        model = build_segnext("segnext_t", num_classes=4).eval()
    info = ModelInfo(
        variant="segnext_t",
        classes=("a", "b", "c", "d"),
        palette=np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8),
        test_scale=None,
    )
    return Segmenter(None, model=model, info=info, precision="fp32", device="cpu", backend="torch")
