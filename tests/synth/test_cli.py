"""``streamseg synth`` through the real command entry point."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from streamseg.cli import main
from streamseg.errors import ConfigError
from streamseg.synth.cli import parse_size


@pytest.mark.timeout(60)
def test_synth_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "clip"
    rc = main(["synth", "--out", str(out), "--frames", "6", "--seed", "2", "--size", "64x48", "--fps", "12"])
    assert rc == 0
    with av.open(str(out / "video.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6
    assert len(list((out / "masks").glob("*.png"))) == 6
    meta = json.loads((out / "classes.json").read_text())
    assert meta["size"] == [64, 48] and meta["frames"] == 6 and meta["seed"] == 2 and meta["fps"] == 12
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "6 frames" in printed[0]


@pytest.mark.timeout(60)
def test_synth_dataset(tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert main(["synth", "--out", str(out), "--frames", "3", "--seed", "1", "--size", "65x49", "--dataset"]) == 0
    assert len(list((out / "images").glob("*.png"))) == 3
    assert len(list((out / "masks").glob("*.png"))) == 3
    assert json.loads((out / "classes.json").read_text())["count"] == 3


@pytest.mark.parametrize("size", ["64by48", "64x", "0x48", "-64x48", "64x48x3"])
def test_bad_size_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], size: str) -> None:
    rc = main(["synth", "--out", str(tmp_path / "x"), "--frames", "2", f"--size={size}"])
    assert rc == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_odd_clip_size_and_bad_frames_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--out", str(tmp_path / "x"), "--frames", "2", "--size", "65x48"]) == 2
    assert "even" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "x"), "--frames", "0"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_parse_size() -> None:
    assert parse_size("640x360") == (640, 360)
    assert parse_size(" 320X240 ") == (320, 240)
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
        parse_size("640,360")
