"""The encoder helpers both video sinks share: output timestamps and the RGB -> 4:2:0 conversion."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamseg.sinks.encode import Timeline, encoder_frame, fit_frame, parse_fps
from streamseg.types import Frame


def test_encoder_frame_matches_ffmpegs_own_conversion() -> None:
    """The sinks' OpenCV RGB -> 4:2:0 conversion gives the colours FFmpeg's swscale would."""
    ramp = np.linspace(0, 255, 96, dtype=np.float32)
    clean = np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[::-1], (64, 1)), np.full((64, 96), 200.0)], -1)
    clean[20:40, 30:70] = (230, 25, 75)  # a saturated block: chroma edges
    noisy = np.clip(clean + np.random.default_rng(7).normal(0, 6, clean.shape), 0, 255).astype(np.uint8)
    for image in (clean.astype(np.uint8), noisy):
        ours = encoder_frame(image, "yuv420p")
        assert ours.format.name == "yuv420p" and (ours.width, ours.height) == (96, 64)
        ffmpeg = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        a, b = ours.to_ndarray().astype(int), ffmpeg.to_ndarray().astype(int)
        assert np.abs(a[:64] - b[:64]).max() <= 1  # luma: the same BT.601 limited-range matrix
        ours_err = np.abs(ours.to_ndarray(format="rgb24").astype(int) - image).mean()
        ffmpeg_err = np.abs(ffmpeg.to_ndarray(format="rgb24").astype(int) - image).mean()
        assert ours_err < ffmpeg_err + 0.5, (ours_err, ffmpeg_err)  # chroma: 2x2 mean vs swscale's filter
        assert np.abs(a[64:] - b[64:]).mean() < 4
    # odd sizes and other formats are left to FFmpeg
    assert encoder_frame(noisy[:63], "yuv420p").format.name == "rgb24"
    assert encoder_frame(noisy, "yuv444p").format.name == "rgb24"


def test_timeline_keeps_the_source_clock_and_starts_at_zero():
    timeline = Timeline(Fraction(30))
    tb = Fraction(1, 90000)
    pts = [timeline.pts(Frame(image=None, index=i, pts=1000 + p, time_base=tb)) for i, p in enumerate([0, 3000, 9000])]
    assert pts == [0, 3000, 9000] and timeline.time_base == tb
    no_clock = Timeline(Fraction(25))
    assert [no_clock.pts(Frame(image=None, index=i)) for i in range(3)] == [0, 1, 2]  # index / fps


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.integers(-5000, 9000), min_size=1, max_size=40),
    gaps=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_output_timestamps_always_increase_for_any_gap_pattern(steps, gaps):
    """Clocks that jump back, stand still or skip, and reconnects (discontinuity): the muxer sees strictly
    increasing pts, and after each step that went forward the output moves by that step exactly."""
    timeline = Timeline(Fraction(30))
    tb = Fraction(1, 1000)
    raw, out = 0, []
    for i, step in enumerate(steps):
        raw += step
        out.append(timeline.pts(Frame(image=None, index=i, pts=raw, time_base=tb, discontinuity=gaps[i] and i > 0)))
    assert out[0] == 0 and all(b > a for a, b in zip(out, out[1:]))
    for i in range(1, len(steps)):
        if steps[i] > 0 and not gaps[i]:
            assert out[i] - out[i - 1] == steps[i]


def test_fit_frame_pads_to_the_chroma_grid_and_rescales_to_the_first_size():
    img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    padded = fit_frame(img, (7, 5), (2, 2))
    assert padded.shape == (6, 8, 3) and np.array_equal(padded[:5, :7], img) and np.array_equal(padded[5, :7], img[4])
    assert fit_frame(np.zeros((10, 14, 3), np.uint8), (7, 5), (1, 1)).shape == (5, 7, 3)
    assert parse_fps("29.97") == Fraction(2997, 100)


def test_encoder_choice_threads_and_options() -> None:
    from streamseg.errors import ConfigError
    from streamseg.sinks.encode import encoder_options, encoder_threads, nvenc_available

    assert encoder_threads("auto", what="video") == (os.cpu_count() or 1) + 1
    assert encoder_threads(3, what="video") == 3
    for bad in (0, -1, "many"):
        with pytest.raises(ConfigError, match="threads"):
            encoder_threads(bad, what="video")
    assert encoder_options("libx264", 23, "veryfast") == {"crf": "23", "preset": "veryfast"}
    assert encoder_options("h264_nvenc", 23, "veryfast") == {"rc": "vbr", "cq": "23", "preset": "p4"}
    assert encoder_options("h264_nvenc", 30, "p6")["preset"] == "p6"
    assert isinstance(nvenc_available(), bool)  # no GPU encoder here: False, without raising
