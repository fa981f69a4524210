"""VideoFileSource against real files encoded with PyAV."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from helpers import decode_index, index_frame, make_video
from streamseg.errors import SourceError
from streamseg.sources import Source, VideoFileSource
from streamseg.types import Frame


def read_all(source: VideoFileSource) -> list[Frame]:
    source.open()
    try:
        frames = []
        while (frame := source.read(1.0)) is not None:
            frames.append(frame)
        return frames
    finally:
        source.close()


def check_rgb(frame: Frame, width: int, height: int) -> None:
    assert frame.image.shape == (height, width, 3)
    assert frame.image.dtype == np.uint8
    assert frame.image.flags.c_contiguous


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_every_frame_once_in_order(tmp_path: Path, ext: str) -> None:
    path = make_video(tmp_path / f"clip.{ext}", 40)
    source = VideoFileSource(path, source_id="cam")
    assert isinstance(source, Source) and source.live is False
    frames = read_all(source)
    assert [decode_index(f.image) for f in frames] == list(range(40))
    assert [f.index for f in frames] == list(range(40))
    assert all(f.source_id == "cam" and not f.discontinuity for f in frames)
    check_rgb(frames[0], 64, 48)
    # CFR 25 fps: timestamps are i/25 s in the stream's own time base
    assert [f.pts * f.time_base for f in frames] == [Fraction(i, 25) for i in range(40)]
    assert frames[0].time_base == source.time_base
    assert source.stats.frames == 40 and source.stats.decode_errors == 0
    assert source.fps == pytest.approx(25)
    assert source.frame_count is not None and abs(source.frame_count - 40) <= 1


def test_reads_after_end_keep_returning_none(tmp_path: Path) -> None:
    source = VideoFileSource(make_video(tmp_path / "a.mp4", 3))
    source.open()
    assert [source.read(0.1) is not None for _ in range(3)] == [True] * 3
    assert source.read(0.1) is None and source.read(0.1) is None
    source.close()
    source.close()  # idempotent


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_frame_rate_pts_kept_exactly(tmp_path: Path, ext: str) -> None:
    ms = [0, 40, 50, 120, 130, 400, 410, 1000, 1001, 1002]
    path = make_video(tmp_path / f"vfr.{ext}", len(ms), pts=ms, time_base=Fraction(1, 1000))
    frames = read_all(VideoFileSource(path))
    assert [decode_index(f.image) for f in frames] == list(range(len(ms)))
    assert [f.pts * f.time_base for f in frames] == [Fraction(t, 1000) for t in ms]
    assert [f.timestamp for f in frames] == pytest.approx([t / 1000 for t in ms])


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "size"),
    [
        ("odd_ffv1.mkv", "ffv1", "yuv420p", (63, 47)),
        ("odd_x264.mp4", "libx264", "yuv444p", (63, 47)),
        ("ten_bit.mkv", "libx264", "yuv420p10le", (64, 48)),
        ("gray.mkv", "ffv1", "gray", (64, 48)),
        ("gray10.mkv", "ffv1", "gray10le", (64, 48)),
        ("jpeg_range.avi", "mjpeg", "yuvj420p", (64, 48)),
        ("bgr0.mkv", "ffv1", "bgr0", (64, 48)),
    ],
)
def test_pixel_formats_become_rgb8(tmp_path: Path, name: str, codec: str, pix_fmt: str, size: tuple[int, int]) -> None:
    path = make_video(tmp_path / name, 8, size=size, codec=codec, pix_fmt=pix_fmt)
    frames = read_all(VideoFileSource(path))
    assert len(frames) == 8
    for i, frame in enumerate(frames):
        check_rgb(frame, *size)
        assert decode_index(frame.image) == i
        expected = index_frame(i, *size).astype(int)
        assert np.abs(frame.image.astype(int) - expected).mean() < 1.5, f"{pix_fmt} levels off in frame {i}"


def _marker_image() -> np.ndarray:
    img = np.full((48, 64, 3), 40, np.uint8)
    img[:12, :16] = (250, 40, 40)  # red block in the top-left corner
    img[-12:, -16:] = (40, 40, 250)  # blue block in the bottom-right corner
    return img


@pytest.mark.parametrize(
    ("degrees", "hflip", "vflip", "expected"),
    [
        (90, False, False, lambda a: np.rot90(a, 1)),  # counter-clockwise
        (-90, False, False, lambda a: np.rot90(a, -1)),
        (180, False, False, lambda a: np.rot90(a, 2)),
        (0, True, False, lambda a: a[:, ::-1]),
        (0, False, True, lambda a: a[::-1]),
        (90, True, False, lambda a: np.rot90(a, 1)[:, ::-1]),
    ],
)
def test_display_matrix_is_applied(tmp_path: Path, rotated_video, degrees, hflip, vflip, expected) -> None:
    img = _marker_image()
    path = rotated_video(tmp_path / "rot.mp4", [img] * 3, degrees=degrees, hflip=hflip, vflip=vflip)
    frames = read_all(VideoFileSource(path))
    assert len(frames) == 3
    want = expected(img)
    assert frames[0].image.shape == want.shape
    assert frames[0].image.flags.c_contiguous
    assert np.abs(frames[0].image.astype(int) - want.astype(int)).mean() < 4


@pytest.mark.parametrize("threads", ["auto", 1, 3])
def test_thread_settings_keep_order(tmp_path: Path, threads) -> None:
    path = make_video(tmp_path / "t.mp4", 30)
    frames = read_all(VideoFileSource(path, threads=threads))
    assert [decode_index(f.image) for f in frames] == list(range(30))


def _h264_with_gop(path: Path, count: int, gop: int) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        stream.codec_context.gop_size = gop
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(index_frame(i, 64, 48), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_corrupt_packets_mid_stream_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import av

    path = _h264_with_gop(tmp_path / "good.mp4", 60, gop=10)
    data = bytearray(path.read_bytes())
    lo, hi = len(data) // 2 - 200, len(data) // 2 + 200
    for offset in range(lo, hi, 7):
        data[offset] ^= 0xFF
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with av.open(str(path)) as container:  # which frames' packets did we damage?
        damaged = {
            round(p.pts * p.time_base * 25)
            for p in container.demux(video=0)
            if p.pts is not None and p.pos is not None and p.pos < hi and p.pos + p.size > lo
        }
    assert damaged and max(damaged) < 50

    source = VideoFileSource(bad)
    with caplog.at_level(logging.WARNING, logger="streamseg.sources"):
        frames = read_all(source)
    by_pts = [round(f.pts * f.time_base * 25) for f in frames]
    assert 0 < len(frames) < 60
    assert by_pts == sorted(set(by_pts)) and set(by_pts) <= set(range(60))  # a subset, in order
    assert [f.index for f in frames] == list(range(len(frames)))
    for i, frame in zip(by_pts, frames, strict=True):  # undamaged frames are the real pictures, nothing concealed
        assert i in damaged or decode_index(frame.image) == i, (i, decode_index(frame.image))
    next_gop = (max(damaged) // 10 + 1) * 10
    assert set(range(next_gop, 60)) <= set(by_pts)  # decoding resumed at the next keyframe
    assert set(range(min(damaged) // 10 * 10)) <= set(by_pts)  # and nothing before the damage was lost
    assert source.stats.decode_errors > 0
    assert any("skipped" in r.getMessage() for r in caplog.records)


def test_truncated_streamable_file_gives_its_first_frames(tmp_path: Path) -> None:
    path = make_video(tmp_path / "full.mkv", 60)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    frames = read_all(VideoFileSource(cut))
    indices = [decode_index(f.image) for f in frames]
    assert 5 < len(frames) < 60
    assert indices == list(range(len(frames)))


def test_truncated_mp4_without_index_is_a_clear_error(tmp_path: Path) -> None:
    path = make_video(tmp_path / "full.mp4", 30)  # moov (the index) is written at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SourceError, match="truncated"):
        VideoFileSource(cut).open()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"not found: .*nope\.mp4.*check the path"):
        VideoFileSource(tmp_path / "nope.mp4").open()


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"is a directory.*images:"):
        VideoFileSource(tmp_path).open()


def test_zero_length(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty \(0 bytes\)"):
        VideoFileSource(tmp_path / "empty.mp4").open()


def test_not_a_video(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("these are my notes, not a video\n" * 50)
    with pytest.raises(SourceError, match=r"not a video FFmpeg can read.*re-export"):
        VideoFileSource(tmp_path / "notes.mp4").open()


def _open_error_as(uid: int | None, path: Path) -> str:
    """The SourceError message of opening ``path``, as user ``uid`` (a forked child) when given."""
    if uid is None:
        with pytest.raises(SourceError) as info:
            VideoFileSource(path).open()
        return str(info.value)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root, try, report through the pipe, never return into pytest
        try:
            os.setgid(uid)
            os.setuid(uid)
            VideoFileSource(path).open()
            message = "opened without error"
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            message = f"{type(exc).__name__}: {exc}"
        os.write(write_fd, message.encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    assert message.startswith("SourceError: "), message
    return message


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_permission_denied() -> None:
    folder = Path(tempfile.mkdtemp(prefix="streamseg-perm-"))  # outside pytest's private (0700) tmp dir
    try:
        folder.chmod(0o755)
        path = make_video(folder / "locked.mp4", 2)
        path.chmod(0)
        uid = 65534 if os.geteuid() == 0 else None  # root reads anything: check as 'nobody' instead
        message = _open_error_as(uid, path)
        assert "locked.mp4: permission denied" in message and "chmod" in message
    finally:
        shutil.rmtree(folder)


def test_no_video_stream(tmp_path: Path) -> None:
    import av

    path = tmp_path / "audio.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    with pytest.raises(SourceError, match=r"no video stream \(streams: audio\)"):
        VideoFileSource(path).open()


def test_unsupported_codec(tmp_path: Path) -> None:
    path = make_video(tmp_path / "clip.avi", 3, codec="mpeg4")
    data = path.read_bytes()
    for tag in (b"FMP4", b"XVID", b"DIVX", b"mp4v"):  # make the FourCC one no decoder knows
        data = data.replace(tag, b"QQQQ")
    bad = tmp_path / "unknown.avi"
    bad.write_bytes(data)
    with pytest.raises(SourceError, match=r"no decoder for its video codec.*re-encode"):
        VideoFileSource(bad).open()


def test_read_before_open_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="call open"):
        VideoFileSource(make_video(tmp_path / "a.mp4", 2)).read(0.1)


def test_missing_pts_are_synthesized_from_frame_durations(tmp_path: Path) -> None:
    path = make_video(tmp_path / "raw.h264", 12)  # an elementary stream: no container clock, no pts
    source = VideoFileSource(path)
    frames = read_all(source)
    assert [decode_index(f.image) for f in frames] == list(range(12))
    assert [f.timestamp for f in frames] == pytest.approx([i / 25 for i in range(12)])
    assert source.fps == pytest.approx(25)


def test_realtime_plays_the_file_at_its_own_pace(tmp_path: Path) -> None:
    import time

    path = make_video(tmp_path / "a.mp4", 10, fps=25)
    source = VideoFileSource(path, realtime=True)
    source.open()
    try:
        first = source.read(timeout=1.0)
        assert first is not None
        with pytest.raises(TimeoutError, match="realtime"):
            source.read(timeout=0.0)  # the next one is due in 40 ms, not now
        frames, start = [first], time.monotonic()
        while (frame := source.read(timeout=0.25)) is not None:
            frames.append(frame)
        elapsed = time.monotonic() - start
    finally:
        source.close()
    assert [decode_index(f.image) for f in frames] == list(range(10))  # every frame once, the held one too
    assert [f.index for f in frames] == list(range(10))
    gaps = [b.capture_time - a.capture_time for a, b in zip(frames, frames[1:])]
    assert min(gaps) > 0.03 and 0.33 < elapsed < 0.8, (gaps, elapsed)  # 9 intervals of 40 ms
    assert source.stats.frames == 10
