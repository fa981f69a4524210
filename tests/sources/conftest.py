"""Fixtures for the source tests: rotated videos, a live RTSP publisher thread, a local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from helpers import RtspPublisher


def write_rotated_video(
    path: Path, images: Sequence[np.ndarray], *, degrees: int, hflip: bool = False, vflip: bool = False
) -> Path:
    """An H.264 MP4 whose display matrix says: rotate ``degrees`` counter-clockwise, then flip.

    ``helpers.make_video(rotation=)`` sets the legacy ``rotate`` tag, which FFmpeg 5+
    muxers ignore; PyAV 18's ``set_display_rotation`` writes the real matrix.
    """
    import av

    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        stream.options = {"preset": "ultrafast", "crf": "10"}
        stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture
def rotated_video():
    return write_rotated_video


@pytest.fixture
def publisher() -> Iterator[type[RtspPublisher]]:
    """``publisher(url, first=..., count=...)`` starts a publisher thread; all are stopped after the test."""
    started: list[RtspPublisher] = []

    def start(url: str, **kwargs) -> RtspPublisher:
        pub = RtspPublisher(url, **kwargs)
        pub.start()
        started.append(pub)
        return pub

    yield start  # type: ignore[misc]
    for pub in started:
        pub.stop()


@pytest.fixture
def http_server(http_folder) -> tuple[str, Path]:
    """``(base_url, folder)``: a real HTTP server on 127.0.0.1 serving ``folder``."""
    return http_folder.base, http_folder.root


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
