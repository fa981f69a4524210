"""open_sink / parse_sink_spec and the registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamseg.errors import ConfigError
from streamseg.sinks import SINKS, open_sink, parse_sink_spec
from streamseg.sinks.base import Sink


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("video:out.mp4", ("video", "out.mp4")),
        ("masks:out/", ("masks", "out/")),
        ("rtsp:rtsp://127.0.0.1:8554/seg", ("rtsp", "rtsp://127.0.0.1:8554/seg")),
        ("rtsp://127.0.0.1:8554/seg", ("rtsp", "rtsp://127.0.0.1:8554/seg")),
        ("RTSPS://cam/x", ("rtsp", "RTSPS://cam/x")),
        ("display", ("display", None)),
        ("display:My Title", ("display", "My Title")),
        ("Video:C:/clips/out.mp4", ("video", "C:/clips/out.mp4")),
        ("callback:pkg.mod:fn", ("callback", "pkg.mod:fn")),
    ],
)
def test_parse_sink_spec(spec: str, expected: tuple[str, str | None]) -> None:
    assert parse_sink_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "  ", ":out.mp4"])
def test_parse_rejects_empty(spec: str) -> None:
    with pytest.raises(ConfigError, match="KIND:TARGET"):
        parse_sink_spec(spec)


def test_builtin_kinds_registered() -> None:
    assert {"masks", "video", "rtsp", "display", "callback"} <= set(SINKS.names())


def test_open_sink_builds_each_kind(tmp_path: Path) -> None:
    for spec, cls in [
        (f"video:{tmp_path}/o.mp4", "VideoSink"),
        (f"masks:{tmp_path}/m", "MaskSink"),
        ("rtsp://127.0.0.1:1/x", "RtspSink"),
        ("display", "DisplaySink"),
    ]:
        sink = open_sink(spec)
        assert type(sink).__name__ == cls
        assert isinstance(sink, Sink)
        assert sink.frames == 0 and sink.busy_s == 0.0
    assert open_sink(f"video:{tmp_path}/o.mp4", mode="mask", crf="18").crf == 18  # CLI strings are fine
    assert open_sink("display").name == "display:streamseg"


def test_unknown_kind_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'video'"):
        open_sink("vidoe:out.mp4")


def test_missing_target_and_unknown_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="video:out.mp4"):
        open_sink("video")
    with pytest.raises(ConfigError, match="colour"):
        open_sink(f"masks:{tmp_path}", colour=True)
    with pytest.raises(ConfigError, match="mode"):
        open_sink(f"video:{tmp_path}/x.mp4", mode="heatmap")


def test_importing_the_package_loads_no_cv2_or_av() -> None:
    code = "import sys, streamseg.sinks; print('cv2' in sys.modules, 'av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
