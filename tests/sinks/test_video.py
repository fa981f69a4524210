"""VideoSink: real H.264 files written with PyAV and decoded back with PyAV."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import make_video

from streamseg.errors import ConfigError, InputError, SinkError
from streamseg.sinks import open_sink
from streamseg.sinks.base import SinkContext
from streamseg.sinks.encode import nvenc_available
from streamseg.sinks.video import VideoSink

VFR_PTS = [0, 3000, 9000, 12000, 24000, 27000, 30000, 45000, 48000, 60000, 63000, 66000]


def _encode(sink: VideoSink, context: SinkContext, predictions) -> None:
    sink.open(context)
    try:
        for p in predictions:
            sink.write(p)
    finally:
        sink.close()


@pytest.mark.parametrize("fragmented", [True, False], ids=["fragmented", "plain"])
def test_cfr_frame_count_timestamps_and_duration(
    tmp_path: Path, context, video_predictions, probe_video, fragmented: bool
) -> None:
    src = make_video(tmp_path / "in.mp4", 20, fps=25)
    out = tmp_path / "out.mp4"
    sink = VideoSink(out, fragmented=fragmented)
    _encode(sink, context, video_predictions(src))
    a, b = probe_video(src), probe_video(out)
    assert b["frames"] == a["frames"] == 20 == sink.frames
    np.testing.assert_allclose(b["times"], a["times"], atol=1e-3)
    assert abs(b["duration"] - a["duration"]) <= 1 / 25 + 1e-6
    assert abs(b["duration"] - 0.8) < 1e-3  # the last frame lasts one frame, not zero


@pytest.mark.parametrize("fragmented", [True, False], ids=["fragmented", "plain"])
def test_vfr_timestamps_survive(tmp_path: Path, context, video_predictions, probe_video, fragmented: bool) -> None:
    src = make_video(tmp_path / "vfr.mp4", len(VFR_PTS), fps=30, pts=VFR_PTS, time_base=Fraction(1, 90000))
    out = tmp_path / "out.mp4"
    _encode(VideoSink(out, fragmented=fragmented), context, video_predictions(src))
    a, b = probe_video(src), probe_video(out)
    assert b["frames"] == len(VFR_PTS)
    np.testing.assert_allclose(b["times"], [p / 90000 for p in VFR_PTS], atol=1e-3)
    np.testing.assert_allclose(b["times"], a["times"], atol=1e-3)
    # The shortest frame interval is 1/30 s; the output may differ from the input by one frame.
    assert abs(b["duration"] - a["duration"]) <= 1 / 30 + 1e-3


def test_frames_without_pts_use_index_over_fps(tmp_path: Path, context, make_prediction, probe_video) -> None:
    out = tmp_path / "folder.mp4"
    preds = [make_prediction(np.full((48, 64, 3), 90, np.uint8), index=i) for i in range(12)]
    _encode(VideoSink(out, fps=12), context, preds)
    info = probe_video(out)
    np.testing.assert_allclose(info["times"], [i / 12 for i in range(12)], atol=1e-3)
    assert abs(info["duration"] - 1.0) < 1e-3


def test_overlay_colours_visible(tmp_path: Path, context, make_prediction, stripes, probe_video) -> None:
    image = np.full((48, 64, 3), 128, np.uint8)
    mask = stripes(48, 64)  # bands 0..3: black, red, green, blue
    out = tmp_path / "overlay.mp4"
    _encode(VideoSink(out, crf=10), context, [make_prediction(image, mask, index=i) for i in range(5)])
    frame = probe_video(out)["images"][-1].astype(int)
    centres = [frame[10:38, x - 4 : x + 4].reshape(-1, 3).mean(0) for x in (8, 24, 40, 56)]
    expected = [(64, 64, 64), (191, 64, 64), (64, 191, 64), (64, 64, 191)]
    for got, want in zip(centres, expected):
        np.testing.assert_allclose(got, want, atol=16)


@pytest.mark.parametrize("mode, width", [("mask", 64), ("side_by_side", 128)])
def test_modes(tmp_path: Path, context, make_prediction, stripes, probe_video, mode: str, width: int) -> None:
    image = np.full((48, 64, 3), 200, np.uint8)
    out = tmp_path / f"{mode}.mp4"
    _encode(VideoSink(out, mode=mode, crf=10), context, [make_prediction(image, stripes(48, 64), index=0)])
    info = probe_video(out)
    assert info["size"] == (width, 48)
    img = info["images"][0].astype(int)
    np.testing.assert_allclose(img[10:38, width - 12 : width - 4].reshape(-1, 3).mean(0), (0, 0, 255), atol=16)
    if mode == "side_by_side":
        np.testing.assert_allclose(img[10:38, 4:28].mean(), 200, atol=8)


def test_legend_is_drawn(tmp_path: Path, context, make_prediction, stripes, probe_video) -> None:
    image = np.full((120, 160, 3), 128, np.uint8)
    plain, legend = tmp_path / "plain.mp4", tmp_path / "legend.mp4"
    mask = np.zeros((120, 160), np.uint8)
    _encode(VideoSink(plain, crf=10), context, [make_prediction(image, mask)])
    _encode(VideoSink(legend, crf=10, legend=True), context, [make_prediction(image, mask)])
    a, b = probe_video(plain)["images"][0].astype(int), probe_video(legend)["images"][0].astype(int)
    assert np.abs(a[:20, :80] - b[:20, :80]).mean() > 10  # the legend box darkens the top-left corner
    assert np.abs(a[60:, 90:] - b[60:, 90:]).mean() < 3


def test_playable_after_exception_mid_run(tmp_path: Path, context, make_prediction, probe_video) -> None:
    out = tmp_path / "crash.mp4"
    sink = VideoSink(out)
    sink.open(context)
    try:
        with pytest.raises(InputError):
            for i in range(12):
                mask = np.zeros((48, 64) if i < 10 else (10, 10), np.uint8)  # frame 10 is broken
                sink.write(make_prediction(np.full((48, 64, 3), 60, np.uint8), mask, index=i))
    finally:
        sink.close()  # what the pipeline does after the error
    sink.close()  # idempotent
    assert probe_video(out)["frames"] == 10


def test_playable_after_keyboard_interrupt(
    tmp_path: Path, context, make_prediction, probe_video, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamseg.draw as draw_module

    real_render = draw_module.render

    def render(image, mask, palette, **kw):
        if image[0, 0, 0] == 99:  # Ctrl-C lands while frame 6 is being drawn
            raise KeyboardInterrupt
        return real_render(image, mask, palette, **kw)

    monkeypatch.setattr(draw_module, "render", render)
    out = tmp_path / "interrupted.mp4"
    sink = VideoSink(out)
    sink.open(context)
    try:
        with pytest.raises(KeyboardInterrupt):
            for i in range(10):
                sink.write(make_prediction(np.full((48, 64, 3), 99 if i == 6 else 40, np.uint8), index=i))
    finally:
        sink.close()
    assert probe_video(out)["frames"] == 6 and sink.frames == 6


_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from streamseg.sinks.base import SinkContext
    from streamseg.sinks.video import VideoSink
    from streamseg.types import Frame, Prediction

    ctx = SinkContext(classes=("a", "b"), palette=np.array([[0, 0, 0], [255, 0, 0]], np.uint8))
    sink = VideoSink(sys.argv[1], fragmented=sys.argv[2] == "1", fps=30)
    sink.open(ctx)
    rng = np.random.default_rng(0)
    for i in range(60):
        image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        sink.write(Prediction(Frame(image=image, index=i), np.zeros((48, 64), np.uint8)))
    os._exit(0)  # a hard kill: no close(), no flush, no atexit
    """
)


@pytest.mark.timeout(60)
def test_fragmented_mp4_survives_a_hard_kill(tmp_path: Path, probe_video) -> None:
    """Why fragmented MP4 is the default: killed without close(), only it stays readable."""
    results = {}
    for fragmented in ("1", "0"):
        out = tmp_path / f"killed{fragmented}.mp4"
        subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(out), fragmented], check=True, timeout=50)
        try:
            results[fragmented] = probe_video(out)["frames"]
        except av.FFmpegError:
            results[fragmented] = None
    assert results["0"] is None  # a plain MP4 without its moov box is lost
    assert results["1"] is not None and results["1"] >= 30  # at least the first 1 s fragment


def test_odd_size_is_padded_to_even(tmp_path: Path, context, make_prediction, probe_video) -> None:
    image = np.full((49, 65, 3), 100, np.uint8)
    image[:, -1] = 220  # the last real column must survive, next to a copy of itself
    out = tmp_path / "odd.mp4"
    mask = np.zeros((49, 65), np.uint8)
    _encode(VideoSink(out, alpha=0.0, crf=5), context, [make_prediction(image, mask, index=i) for i in range(3)])
    info = probe_video(out)
    assert info["size"] == (66, 50)
    img = info["images"][0].astype(int)
    assert abs(img[20, 30].mean() - 100) < 6
    assert abs(img[20, 64].mean() - 220) < 10 and abs(img[20, 65].mean() - 220) < 10


def test_yuv444_keeps_odd_size(tmp_path: Path, context, make_prediction, probe_video) -> None:
    out = tmp_path / "odd444.mp4"
    image = np.full((49, 65, 3), 100, np.uint8)
    _encode(VideoSink(out, pix_fmt="yuv444p"), context, [make_prediction(image, np.zeros((49, 65), np.uint8))])
    assert probe_video(out)["size"] == (65, 49)


def test_pictures_drawn_by_the_engine_are_encoded_as_they_are(tmp_path: Path, context, make_prediction, probe_video) -> None:
    """A GPU engine hands over finished I420 planes for the sink's view: the sink encodes them and draws
    nothing; a frame without them (or with planes for another size) is drawn on the host."""
    import cv2
    from dataclasses import replace

    sink = VideoSink(tmp_path / "engine.mp4", crf=5)
    assert sink.view is not None and sink.view.pix_fmt == "yuv420p"
    assert VideoSink(tmp_path / "x.mp4", legend=True).view.legend
    assert VideoSink(tmp_path / "x.mp4", pix_fmt="yuv444p").view is None
    magenta = cv2.cvtColor(np.full((50, 66, 3), (255, 0, 255), np.uint8), cv2.COLOR_RGB2YUV_I420)
    grey = np.full((49, 65, 3), 90, np.uint8)
    preds = [replace(make_prediction(grey, index=i), rendered={sink.view: magenta}) for i in range(3)]
    preds.append(make_prediction(grey, index=3))  # nothing rendered: drawn here (overlay of class 0 = darker grey)
    preds.append(replace(make_prediction(grey, index=4), rendered={sink.view: magenta[:30]}))  # not this size
    _encode(sink, context, preds)
    info = probe_video(tmp_path / "engine.mp4")
    assert info["frames"] == 5 and info["size"] == (66, 50)
    for img in info["images"][:3]:
        np.testing.assert_allclose(img[5:45, 5:60].reshape(-1, 3).mean(0), (255, 0, 255), atol=12)
    for img in info["images"][3:]:
        np.testing.assert_allclose(img[5:45, 5:60].reshape(-1, 3).mean(0), (45, 45, 45), atol=6)


def test_size_change_is_rescaled_to_first_size(tmp_path: Path, context, make_prediction, probe_video) -> None:
    preds = [make_prediction(np.full((48, 64, 3), 50, np.uint8), index=i) for i in range(5)]
    preds += [make_prediction(np.full((72, 96, 3), 200, np.uint8), index=i) for i in range(5, 10)]
    out = tmp_path / "resize.mp4"
    _encode(VideoSink(out, alpha=0.0), context, preds)
    info = probe_video(out)
    assert info["frames"] == 10 and info["size"] == (64, 48)
    assert all(img.shape == (48, 64, 3) for img in info["images"])
    assert abs(info["images"][-1].mean() - 200) < 8


def test_non_monotonic_pts_never_crash(tmp_path: Path, context, make_prediction, probe_video) -> None:
    tb = Fraction(1, 1000)
    pts = [0, 40, 80, 120, 40, 80, 80, 500, 540, 10]  # a reconnect jumps back; a duplicate; a flagged jump
    preds = [
        make_prediction(np.full((48, 64, 3), 80, np.uint8), index=i, pts=p, time_base=tb, discontinuity=(i == 7))
        for i, p in enumerate(pts)
    ]
    out = tmp_path / "jumps.mp4"
    _encode(VideoSink(out), context, preds)
    times = probe_video(out)["times"]
    assert len(times) == len(pts)
    assert all(b > a for a, b in zip(times, times[1:]))
    np.testing.assert_allclose(times[:4], [0, 0.04, 0.08, 0.12], atol=1e-3)
    np.testing.assert_allclose(times[4], 0.16, atol=1e-3)  # continued one frame after the jump back


def test_two_sources_write_two_files(tmp_path: Path, context, make_prediction, probe_video) -> None:
    out = tmp_path / "out.mp4"
    sink = VideoSink(out)
    preds = []
    for i in range(6):
        preds.append(make_prediction(np.full((48, 64, 3), 30, np.uint8), index=i, source_id="left"))
        if i >= 2:  # the second source starts late
            preds.append(make_prediction(np.full((72, 96, 3), 220, np.uint8), index=i, source_id="right"))
    _encode(sink, context, preds)
    assert not out.exists()
    left, right = probe_video(tmp_path / "out.left.mp4"), probe_video(tmp_path / "out.right.mp4")
    assert (left["frames"], left["size"]) == (6, (64, 48))
    assert (right["frames"], right["size"]) == (4, (96, 72))
    assert sink.outputs == {"left": tmp_path / "out.left.mp4", "right": tmp_path / "out.right.mp4"}
    assert sink.frames == 10


def test_placeholder_target(tmp_path: Path, context, make_prediction, probe_video) -> None:
    sink = open_sink(f"video:{tmp_path}/cam-{{source}}.mkv")
    _encode(sink, context, [make_prediction(np.zeros((48, 64, 3), np.uint8), source_id="rtsp://x/1")])
    assert probe_video(tmp_path / "cam-rtsp_x_1.mkv")["frames"] == 1


def test_open_errors(tmp_path: Path, context) -> None:
    (tmp_path / "afile").write_text("")
    bad = [
        (VideoSink(tmp_path / "afile" / "out.mp4"), "writable"),
        (VideoSink(tmp_path / "out.nosuchformat"), ".mp4"),
        (VideoSink(tmp_path / "out.mp4", codec="nosuchcodec"), "libx264"),
    ]
    for sink, hint in bad:
        with pytest.raises(SinkError, match=hint):
            sink.open(context)
        sink.close()  # safe after a failed open


def test_write_before_open(tmp_path: Path, make_prediction) -> None:
    with pytest.raises(SinkError, match="open"):
        VideoSink(tmp_path / "x.mp4").write(make_prediction(np.zeros((4, 4, 3), np.uint8)))


@pytest.mark.parametrize("cut", [0.35, 0.6, 0.9])
def test_trim_keeps_whole_fragments_of_a_cut_file(tmp_path: Path, context, make_prediction, probe_video, cut) -> None:
    from streamseg.sinks.video import trim_fragmented_mp4

    path = tmp_path / "out.mp4"
    sink = VideoSink(path, fps=25)
    sink.open(context)
    rng = np.random.default_rng(0)
    for i in range(100):  # noise: every fragment holds many bytes, so a cut lands inside one
        sink.write(make_prediction(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), index=i, pts=i))
    sink.close()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])  # a write that failed part-way through a fragment
    size = trim_fragmented_mp4(path)
    assert size == path.stat().st_size < len(data) * cut
    frames = probe_video(path)["frames"]
    assert 0 < frames <= 100 * cut and frames % 25 == 0  # whole one-second fragments


def test_auto_codec_is_x264_without_a_gpu_encoder_and_threads_are_frame_threads(
    tmp_path: Path, context, make_prediction, probe_video
) -> None:
    sink = VideoSink(tmp_path / "auto.mp4", threads=2)
    _encode(sink, context, [make_prediction(np.full((48, 64, 3), 90, np.uint8), index=i) for i in range(4)])
    assert sink.codec == ("h264_nvenc" if nvenc_available() else "libx264")
    assert probe_video(tmp_path / "auto.mp4")["frames"] == 4
    with pytest.raises(ConfigError, match="threads"):
        VideoSink(tmp_path / "bad.mp4", threads=0)
