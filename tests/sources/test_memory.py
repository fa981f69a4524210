"""IterableSource and PushSource."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from helpers import decode_index, index_frame
from streamseg.errors import ConfigError, InputError, SourceError
from streamseg.sources import IterableSource, PushSource, Source
from streamseg.types import Frame


def img(i: int = 0) -> np.ndarray:
    return index_frame(i, 64, 48)


# -- IterableSource ----------------------------------------------------------------------------


def test_iterable_of_arrays() -> None:
    source = IterableSource((img(i) for i in range(5)), source_id="gen")
    assert isinstance(source, Source) and source.live is False
    source.open()
    frames = [source.read(0.1) for _ in range(5)]
    assert source.read(0.1) is None
    assert [decode_index(f.image) for f in frames] == list(range(5))
    assert [f.index for f in frames] == list(range(5))
    assert all(f.source_id == "gen" and f.pts is None and f.capture_time > 0 for f in frames)
    assert source.stats.frames == 5


def test_frames_keep_their_clock_and_get_restamped() -> None:
    given = [Frame(img(i), source_id="other", index=100 + i, pts=7 * i, time_base=Fraction(1, 90000)) for i in range(3)]
    source = IterableSource(given, source_id="mine")
    assert source.frame_count == 3
    source.open()
    frames = [source.read(0.1) for _ in range(3)]
    assert [(f.source_id, f.index, f.pts, f.time_base) for f in frames] == [
        ("mine", i, 7 * i, Fraction(1, 90000)) for i in range(3)
    ]
    assert frames[0].image is given[0].image  # already valid: not copied


def test_non_contiguous_arrays_are_made_contiguous() -> None:
    source = IterableSource([img(3)[:, ::-1]])
    source.open()
    assert source.read(0.1).image.flags.c_contiguous


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((48, 64, 3), np.float32), r"item 2 .* dtype float32; expected uint8"),
        (np.zeros((48, 64, 2), np.uint8), r"item 2 .* shape \(48, 64, 2\); expected \(H, W, 3\)"),
        (np.zeros((2, 48, 64, 3), np.uint8), r"item 2 .* shape \(2, 48, 64, 3\)"),
        (np.zeros((0, 64, 3), np.uint8), r"item 2 .* empty"),
        ("a string", r"item 2 .* is a str; expected a numpy"),
        (None, r"item 2 .* is a NoneType"),
    ],
)
def test_bad_item_names_its_index(bad, message: str) -> None:
    source = IterableSource([img(0), img(1), bad, img(3)])
    source.open()
    assert source.read(0.1) is not None and source.read(0.1) is not None
    with pytest.raises(InputError, match=message):
        source.read(0.1)


def test_grey_and_rgba_items_are_converted() -> None:
    grey = np.full((48, 64), 77, np.uint8)
    rgba = np.dstack([img(1), np.full((48, 64), 9, np.uint8)])
    source = IterableSource([grey, rgba])
    source.open()
    a, b = source.read(0.1), source.read(0.1)
    assert a.image.shape == (48, 64, 3) and (a.image == 77).all()
    np.testing.assert_array_equal(b.image, img(1))


def test_close_closes_a_generator() -> None:
    cleaned = []

    def gen():
        try:
            for i in range(100):
                yield img(i)
        finally:
            cleaned.append(True)

    source = IterableSource(gen())
    source.open()
    source.read(0.1)
    source.close()
    assert cleaned == [True]


def test_not_an_iterable() -> None:
    with pytest.raises(ConfigError, match="iterable"):
        IterableSource(42)  # type: ignore[arg-type]


# -- PushSource --------------------------------------------------------------------------------


def test_push_latest_drops_oldest_and_counts() -> None:
    source = PushSource(source_id="robot", maxsize=2)
    assert isinstance(source, Source) and source.live is True
    source.open()
    indices = [source.submit(img(i), timestamp=1.5 + i / 10) for i in range(5)]
    assert indices == [0, 1, 2, 3, 4]
    assert source.stats.dropped == source.dropped == 3 and source.pending == 2
    a, b = source.read(0.1), source.read(0.1)
    assert [a.index, b.index] == [3, 4]  # the freshest two; dropped indices are skipped
    assert [decode_index(a.image), decode_index(b.image)] == [3, 4]
    assert a.time_base == Fraction(1, 1_000_000) and a.pts == 1_800_000
    assert a.source_id == "robot"
    with pytest.raises(TimeoutError):
        source.read(0.05)


def test_push_copies_the_image() -> None:
    source = PushSource()
    buffer = img(1)
    source.submit(buffer)
    buffer[:] = 0  # the caller reuses its buffer
    assert decode_index(source.read(0.1).image) == 1


def test_push_lossless_blocks_then_times_out() -> None:
    source = PushSource(maxsize=1, policy="lossless")
    source.submit(img(0))
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="buffer full"):
        source.submit(img(1), timeout=0.2)
    assert 0.15 < time.monotonic() - t0 < 2
    assert source.stats.dropped == 0


@pytest.mark.timeout(20)
def test_push_lossless_producer_thread_every_frame_in_order() -> None:
    source = PushSource(maxsize=2, policy="lossless")
    source.open()

    def produce() -> None:
        for i in range(50):
            source.submit(img(i), timestamp=i / 30)
        source.end()

    thread = threading.Thread(target=produce)
    thread.start()
    frames = []
    while (frame := source.read(5.0)) is not None:
        frames.append(frame)
        time.sleep(0.001)  # a consumer slower than the producer: submit() must wait, not drop
    thread.join(5)
    assert [decode_index(f.image) for f in frames] == list(range(50))
    assert [f.index for f in frames] == list(range(50))
    assert source.stats.dropped == 0 and source.stats.frames == 50


def test_push_end_delivers_pending_then_none() -> None:
    source = PushSource(maxsize=3)
    source.submit(img(0))
    source.submit(img(1))
    source.end()
    source.end()  # a second end() changes nothing
    assert [source.read(0.1).index, source.read(0.1).index] == [0, 1]
    assert source.read(0.1) is None and source.read(0.1) is None
    with pytest.raises(SourceError, match=r"submit\(\) after end\(\)"):
        source.submit(img(2))


@pytest.mark.timeout(20)
def test_push_end_wakes_a_waiting_reader() -> None:
    source = PushSource()
    threading.Timer(0.1, source.end).start()
    t0 = time.monotonic()
    assert source.read(5.0) is None
    assert time.monotonic() - t0 < 2


@pytest.mark.timeout(20)
def test_push_close_wakes_a_blocked_submitter() -> None:
    source = PushSource(policy="lossless")
    source.submit(img(0))
    threading.Timer(0.1, source.close).start()
    with pytest.raises(SourceError, match="closed"):
        source.submit(img(1), timeout=5.0)


def test_push_rejects_bad_images_and_options() -> None:
    source = PushSource()
    with pytest.raises(InputError, match=r"dtype float64; expected uint8"):
        source.submit(np.zeros((4, 4, 3)))
    with pytest.raises(ConfigError, match="policy"):
        PushSource(policy="newest")
    with pytest.raises(ConfigError, match="maxsize"):
        PushSource(maxsize=0)
