"""MaskSink on a real file system: names, bit depths, colour, NPZ robustness, errors and routing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamseg.datasets import make_palette
from streamseg.errors import ConfigError, SinkError
from streamseg.sinks import open_sink
from streamseg.sinks.base import SinkContext
from streamseg.sinks.masks import MaskSink
from streamseg.types import Frame, Prediction


def _stripes(h: int, w: int, classes: int = 4) -> np.ndarray:
    return (np.arange(w)[None, :] * classes // w).repeat(h, 0)


def _prediction(
    image: np.ndarray, mask: np.ndarray | None = None, *, index: int = 0, source_id: str = "0"
) -> Prediction:
    mask = np.zeros(image.shape[:2], np.uint8) if mask is None else mask
    return Prediction(Frame(image=image, source_id=source_id, index=index), mask)


def _write(sink: MaskSink, n: int, *, source_id: str = "0", classes: int = 4) -> None:
    for i in range(n):
        mask = ((_stripes(48, 64, classes) + i) % classes).astype(np.uint8 if classes <= 256 else np.uint16)
        sink.write(_prediction(np.zeros((48, 64, 3), np.uint8), mask, index=i, source_id=source_id))


def _big_context(n: int) -> SinkContext:
    return SinkContext(classes=tuple(f"c{i}" for i in range(n)), palette=make_palette(n))


def test_png_names_and_8bit_round_trip(tmp_path: Path, context: SinkContext) -> None:
    sink = open_sink(f"masks:{tmp_path / 'out'}")
    sink.open(context)
    _write(sink, 3)
    sink.close()
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["000000.png", "000001.png", "000002.png"]
    back = cv2.imread(str(tmp_path / "out" / "000002.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and back.shape == (48, 64)
    np.testing.assert_array_equal(back, (_stripes(48, 64) + 2) % 4)
    assert sink.frames == 3 and sink.busy_s > 0
    assert sink.name == f"masks:{tmp_path / 'out'}"


def test_16bit_png_when_more_than_255_classes(tmp_path: Path) -> None:
    sink = MaskSink(tmp_path)
    sink.open(_big_context(300))
    mask = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) % 300
    sink.write(_prediction(np.zeros((48, 64, 3), np.uint8), mask, index=7))
    sink.close()
    back = cv2.imread(str(tmp_path / "000007.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, mask)
    assert back.max() == 299


def test_8bit_sink_refuses_ids_it_cannot_store(tmp_path: Path, context: SinkContext) -> None:
    sink = MaskSink(tmp_path)
    sink.open(context)
    with pytest.raises(SinkError, match="class id 300"):
        sink.write(_prediction(np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 300, np.uint16)))
    sink.close()


def test_colorized_pngs_in_color_subfolder(tmp_path: Path, context: SinkContext, palette: np.ndarray) -> None:
    sink = MaskSink(tmp_path, colorize=True)
    sink.open(context)
    _write(sink, 2)
    sink.close()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["000000.png", "000001.png"]
    colour = cv2.cvtColor(cv2.imread(str(tmp_path / "color" / "000001.png")), cv2.COLOR_BGR2RGB)
    ids = cv2.imread(str(tmp_path / "000001.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(colour, palette[ids])


def test_no_temp_files_left(tmp_path: Path, context: SinkContext) -> None:
    sink = MaskSink(tmp_path, colorize=True)
    sink.open(context)
    _write(sink, 3)
    sink.close()
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_npz_stream(tmp_path: Path, context: SinkContext) -> None:
    sink = MaskSink(tmp_path, format="npz")
    sink.open(context)
    _write(sink, 5)
    sink.close()
    sink.close()  # idempotent
    with np.load(tmp_path / "masks.npz") as data:
        assert sorted(data.files) == [f"{i:06d}" for i in range(5)]
        np.testing.assert_array_equal(data["000003"], (_stripes(48, 64) + 3) % 4)
    with zipfile.ZipFile(tmp_path / "masks.npz") as zf:
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in zf.infolist())


def test_npz_readable_when_abandoned_without_close(tmp_path: Path, context: SinkContext) -> None:
    sink = MaskSink(tmp_path / "run", format="npz")
    sink.open(context)
    _write(sink, 4)
    # What a killed process leaves on disk: the bytes as they are now, no close().
    snapshot = tmp_path / "snapshot.npz"
    shutil.copyfile(tmp_path / "run" / "masks.npz", snapshot)
    with np.load(snapshot) as data:
        assert sorted(data.files) == ["000000", "000001", "000002", "000003"]
        np.testing.assert_array_equal(data["000002"], (_stripes(48, 64) + 2) % 4)
    sink.write(_prediction(np.zeros((48, 64, 3), np.uint8), np.full((48, 64), 3, np.uint8), index=2))
    sink.close()
    with np.load(tmp_path / "run" / "masks.npz") as data:  # a repeated index: the last write wins, as with PNG
        assert data["000002"].min() == 3


def test_npz_16bit(tmp_path: Path) -> None:
    sink = MaskSink(tmp_path, format="npz")
    sink.open(_big_context(300))
    _write(sink, 2, classes=300)
    sink.close()
    with np.load(tmp_path / "masks.npz") as data:
        assert data["000001"].dtype == np.uint16


def test_unwritable_directory_fails_at_open_naming_the_path(tmp_path: Path, context: SinkContext) -> None:
    (tmp_path / "afile").write_text("not a directory")
    target = tmp_path / "afile" / "sub"
    sink = MaskSink(target)
    with pytest.raises(SinkError) as info:
        sink.open(context)
    assert str(tmp_path / "afile") in str(info.value) and "writable" in str(info.value)
    sink.close()  # safe after a failed open


def test_bad_format_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="png, npz"):
        MaskSink(tmp_path, format="tiff")


def test_two_sources_get_subfolders(tmp_path: Path, context: SinkContext) -> None:
    sink = MaskSink(tmp_path, colorize=True)
    sink.open(context)
    image = np.zeros((48, 64, 3), np.uint8)
    sink.write(_prediction(image, np.full((48, 64), 1, np.uint8), index=0, source_id="cam/a"))
    sink.write(_prediction(image, np.full((48, 64), 1, np.uint8), index=1, source_id="cam/a"))
    sink.write(_prediction(image, np.full((48, 64), 2, np.uint8), index=0, source_id="b"))
    sink.write(_prediction(image, np.full((48, 64), 1, np.uint8), index=2, source_id="cam/a"))
    sink.close()
    # The first source's files moved out of the root when the second source appeared.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "cam_a"]
    assert sorted(p.name for p in (tmp_path / "cam_a").glob("*.png")) == ["000000.png", "000001.png", "000002.png"]
    assert sorted(p.name for p in (tmp_path / "cam_a" / "color").iterdir()) == [
        "000000.png",
        "000001.png",
        "000002.png",
    ]
    assert cv2.imread(str(tmp_path / "b" / "000000.png"), cv2.IMREAD_UNCHANGED).max() == 2
    assert cv2.imread(str(tmp_path / "cam_a" / "000000.png"), cv2.IMREAD_UNCHANGED).max() == 1
    assert sink.outputs == {"cam/a": tmp_path / "cam_a", "b": tmp_path / "b"}


def test_two_sources_npz(tmp_path: Path, context: SinkContext) -> None:
    sink = MaskSink(tmp_path, format="npz")
    sink.open(context)
    _write(sink, 2, source_id="a")
    _write(sink, 3, source_id="b")
    _write(sink, 1, source_id="a")  # index 0 again: a duplicate entry, still loadable
    sink.close()
    assert not (tmp_path / "masks.npz").exists()
    with np.load(tmp_path / "a" / "masks.npz") as a, np.load(tmp_path / "b" / "masks.npz") as b:
        assert len(a.files) == 3 and sorted(set(a.files)) == ["000000", "000001"]
        assert sorted(b.files) == ["000000", "000001", "000002"]


def test_placeholder_gives_per_source_dirs_from_the_start(tmp_path: Path, context: SinkContext) -> None:
    sink = open_sink(f"masks:{tmp_path}/run-{{source}}")
    sink.open(context)
    _write(sink, 1, source_id="x")
    sink.close()
    assert (tmp_path / "run-x" / "000000.png").exists()
    assert not any(tmp_path.glob("*.png"))


def test_large_indices_keep_sorting(tmp_path: Path, context: SinkContext) -> None:
    sink = MaskSink(tmp_path)
    sink.open(context)
    sink.write(_prediction(np.zeros((4, 4, 3), np.uint8), index=1234567))
    sink.close()
    assert os.listdir(tmp_path) == ["1234567.png"]


_DISK_FULL_CHILD = """
import resource, signal, sys
import numpy as np
from streamseg.errors import SinkError
from streamseg.sinks.base import SinkContext
from streamseg.sinks.masks import MaskSink
from streamseg.types import Frame, Prediction

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))  # like a full disk: writes past it fail
sink = MaskSink(sys.argv[1], format=sys.argv[2])
sink.open(SinkContext(classes=tuple("abcdefgh"), palette=np.zeros((8, 3), np.uint8)))
rng = np.random.default_rng(0)
written = 0
try:
    for i in range(200):
        mask = rng.integers(0, 8, (64, 96) if i < 10 else (512, 768), dtype=np.uint8)  # frame 10 does not fit
        sink.write(Prediction(frame=Frame(image=np.zeros((64, 96, 3), np.uint8), index=i), mask=mask))
        written += 1
except SinkError as exc:
    print("ERROR", exc)
sink.close()
print("WRITTEN", written)
"""


@pytest.mark.parametrize("fmt", ["png", "npz"])
def test_disk_full_keeps_every_frame_written_before(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "masks"
    proc = subprocess.run(
        [sys.executable, "-c", _DISK_FULL_CHILD, str(out), fmt], capture_output=True, text=True, timeout=60
    )
    assert "check free space" in proc.stdout, proc.stdout + proc.stderr
    written = int(proc.stdout.split("WRITTEN")[1])
    assert written == 10
    rng = np.random.default_rng(0)
    expected = [rng.integers(0, 8, (64, 96), dtype=np.uint8) for _ in range(written)]
    if fmt == "npz":  # the half-written entry was rolled back: the archive opens and holds frames 0..9
        with np.load(out / "masks.npz") as data:
            assert sorted(data.files) == [f"{i:06d}" for i in range(written)]
            for i in range(written):
                np.testing.assert_array_equal(data[f"{i:06d}"], expected[i])
    else:  # no half-written PNG or temp file left behind
        assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(written)]
        for i in range(written):
            np.testing.assert_array_equal(cv2.imread(str(out / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED), expected[i])
