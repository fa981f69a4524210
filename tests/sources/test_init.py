"""open_source(): URI parsing, kinds, and third-party sources found through entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import make_video
from streamseg.errors import ConfigError
from streamseg.sources import (
    SOURCES,
    CameraSource,
    ImageFolderSource,
    IterableSource,
    NetworkSource,
    PushSource,
    VideoFileSource,
    open_source,
    resolve_uri,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("rtsp://user:pw@cam:8554/live", ("url", "rtsp://user:pw@cam:8554/live")),
        ("http://host/video.mp4", ("url", "http://host/video.mp4")),
        ("https://host/live.m3u8", ("url", "https://host/live.m3u8")),
        ("srt://host:9000", ("url", "srt://host:9000")),
        ("udp://@239.0.0.1:1234", ("url", "udp://@239.0.0.1:1234")),
        ("0", ("camera", "0")),
        ("/dev/video2", ("camera", "/dev/video2")),
        ("frames/*.png", ("images", "frames/*.png")),
        ("movie.mp4", ("file", "movie.mp4")),
        ("file:movie.mp4", ("file", "movie.mp4")),
        ("file:///abs/movie.mp4", ("file", "/abs/movie.mp4")),
        ("camera:/dev/video0", ("camera", "/dev/video0")),
        ("images:dir/*.jpg", ("images", "dir/*.jpg")),
        ("url:rtsp://cam/1", ("url", "rtsp://cam/1")),
        ("push:", ("push", "")),
        ("C:\\videos\\a.mp4", ("file", "C:\\videos\\a.mp4")),
    ],
)
def test_resolve_uri(uri: str, expected: tuple[str, str]) -> None:
    assert resolve_uri(uri) == expected


def test_resolve_existing_paths(tmp_path: Path) -> None:
    (tmp_path / "pic.JPG").write_bytes(b"x")
    (tmp_path / "clip.mkv").write_bytes(b"x")
    odd = tmp_path / "take:2.mp4"  # a colon in a real file name is not a kind
    odd.write_bytes(b"x")
    assert resolve_uri(tmp_path) == ("images", str(tmp_path))
    assert resolve_uri(tmp_path / "pic.JPG") == ("images", str(tmp_path / "pic.JPG"))
    assert resolve_uri(tmp_path / "clip.mkv") == ("file", str(tmp_path / "clip.mkv"))
    assert resolve_uri(str(odd)) == ("file", str(odd))


def test_open_source_builds_each_kind(tmp_path: Path) -> None:
    video = make_video(tmp_path / "a.mp4", 3)
    assert isinstance(open_source(str(video), source_id="v"), VideoFileSource)
    assert open_source(str(video), source_id="v").source_id == "v"
    assert isinstance(open_source("rtsp://127.0.0.1:1/x", transport="udp"), NetworkSource)
    assert isinstance(open_source(0), CameraSource)
    assert isinstance(open_source("2"), CameraSource) and open_source("2").device == 2
    assert isinstance(open_source(str(tmp_path)), ImageFolderSource)
    assert isinstance(open_source("push:", maxsize=3), PushSource)
    frames = open_source([np.zeros((4, 4, 3), np.uint8)])
    assert isinstance(frames, IterableSource)
    source = PushSource()
    assert open_source(source) is source
    # the file source really opens and reads
    src = open_source(f"file:{video}")
    src.open()
    assert src.read(1.0).image.shape == (48, 64, 3)
    src.close()


def test_unknown_kind_names_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown source kind 'imgs'; did you mean 'images'\?"):
        open_source("imgs:frames/")


def test_bad_option_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bad options for file source .*fps"):
        open_source(str(tmp_path / "a.mp4"), fps=30)


def test_iterable_kind_needs_python_objects() -> None:
    with pytest.raises(ConfigError, match="cannot be given as a string"):
        open_source("iterable:things")


def test_third_party_source_from_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake installed distribution: a module plus a ``*.dist-info`` declaring the entry point."""
    (tmp_path / "fancy_source.py").write_text(
        textwrap.dedent(
            """
            class FancySource:
                live = False

                def __init__(self, target, *, source_id="0", gain=1):
                    self.target, self.source_id, self.gain = target, source_id, gain
            """
        )
    )
    info = tmp_path / "fancy_source-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fancy-source\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[streamseg.sources]\nfancy = fancy_source:FancySource\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "fancy" in SOURCES.names()
    source = open_source("fancy:some/target", source_id="f", gain=3)
    assert type(source).__name__ == "FancySource"
    assert (source.target, source.source_id, source.gain) == ("some/target", "f", 3)
    with pytest.raises(ConfigError, match=r"did you mean 'fancy'"):
        open_source("fancyy:x")
    monkeypatch.delitem(SOURCES._factories, "fancy")  # leave the shared registry as it was


def test_importing_sources_loads_no_heavy_modules() -> None:
    code = "import sys, streamseg.sources; print([m for m in ('av', 'cv2', 'torch') if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"
