"""CameraSource: the error paths with no camera attached, and the read path through OpenCV on a file."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from helpers import decode_index, make_video
from streamseg.errors import ConfigError, SourceError
from streamseg.sources import CameraSource, Source


def test_reads_through_opencv_in_order_with_driver_clock(tmp_path: Path) -> None:
    path = make_video(tmp_path / "cam.mp4", 20, fps=25)
    source = CameraSource(str(path), source_id="cam", api="ffmpeg")
    assert isinstance(source, Source)
    assert source.live is False  # a file target plays once
    source.open()
    try:
        assert (source.width, source.height) == (64, 48)
        frames = []
        while (frame := source.read(1.0)) is not None:
            frames.append(frame)
    finally:
        source.close()
    assert [decode_index(f.image) for f in frames] == list(range(20))
    assert [f.index for f in frames] == list(range(20))
    first = frames[0]
    assert first.image.shape == (48, 64, 3) and first.image.dtype == np.uint8 and first.image.flags.c_contiguous
    assert first.time_base == Fraction(1, 1000)
    assert [f.pts for f in frames] == [40 * i for i in range(20)]  # CAP_PROP_POS_MSEC of a 25 fps file
    assert source.stats.frames == 20


def test_rgb_channel_order(tmp_path: Path) -> None:
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 200
    path = make_video(tmp_path / "red.mkv", [red] * 2, codec="ffv1", pix_fmt="bgr0")
    source = CameraSource(path)
    source.open()
    frame = source.read(1.0)
    source.close()
    assert tuple(frame.image[10, 10]) == (200, 0, 0)


def test_capture_clock_when_driver_has_none() -> None:
    source = CameraSource(0)
    source._opened_at = 100.0
    assert source._pts(0.0, 100.010) == 0  # a first 0 may be a real clock
    assert source._pts(0.0, 100.050) == 50  # a second 0 is not: capture clock from here on
    assert source._pts(-1.0, 100.050) == 51  # still strictly increasing
    assert source._pts(5000.0, 100.100) == 100  # no switching back


def test_missing_device_path() -> None:
    with pytest.raises(SourceError, match=r"camera /dev/video987 does not exist.*plugged in"):
        CameraSource("/dev/video987").open()


def test_camera_index_that_does_not_open() -> None:
    source = CameraSource("97", source_id="c")
    assert source.device == 97 and source.live is True
    with pytest.raises(SourceError, match=r"cannot open camera 97.*no other program"):
        source.open()


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="fourcc"):
        CameraSource(0, fourcc="MJPEG")
    with pytest.raises(ConfigError, match="width"):
        CameraSource(0, width=0)
    with pytest.raises(ConfigError, match="unknown OpenCV capture api"):
        CameraSource(0, api="quicktime").open()
    with pytest.raises(ConfigError, match=">= 0"):
        CameraSource(-1)


def test_a_device_that_exists_but_cannot_capture() -> None:
    """What a busy or wrong device looks like to OpenCV: the node is there, capture fails."""
    with pytest.raises(SourceError, match=r"cannot open camera /dev/null.*no other program is using it"):
        CameraSource("/dev/null").open()
