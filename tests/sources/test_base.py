"""What every source shares: frame numbering and counting, and timestamps that survive reconnects."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamseg.errors import SourceError
from streamseg.sources.base import BaseSource, StreamClock


def test_emit_numbers_stamps_and_counts():
    source = BaseSource("cam")
    with pytest.raises(SourceError, match="read\\(\\) before open"):
        source._check_open()
    img = np.zeros((2, 2, 3), np.uint8)
    a = source._emit(img, pts=5, time_base=Fraction(1, 10))
    b = source._emit(img, index=7, capture_time=12.5)  # a skipped index (a dropped frame) continues from there
    c = source._emit(img)
    assert [f.index for f in (a, b, c)] == [0, 7, 8] and source.stats.frames == 3
    assert a.source_id == "cam" and a.timestamp == 0.5 and b.capture_time == 12.5 and c.capture_time > 0


@settings(max_examples=200, deadline=None)
@given(
    sessions=st.lists(
        st.tuples(
            st.sampled_from([Fraction(1, 90000), Fraction(1, 1000), Fraction(1, 30)]),
            st.lists(st.one_of(st.none(), st.integers(-10**6, 10**9)), min_size=1, max_size=15),
        ),
        min_size=1,
        max_size=5,
    ),
    wall_step=st.floats(0.0, 2.0),
)
def test_pts_strictly_increase_across_sessions_for_any_stream_clock(sessions, wall_step):
    """Reconnects, time bases that change, clocks that wrap or jump back, frames without pts."""
    clock, now, out = StreamClock(), 100.0, []
    for time_base, raws in sessions:
        clock.new_session(time_base)
        for raw in raws:
            now += wall_step
            out.append(clock.pts(raw, now))
    assert clock.time_base == sessions[0][0]  # one time base for the whole life of the source
    assert all(b > a for a, b in zip(out, out[1:]))


def test_a_well_behaved_first_session_keeps_its_own_pts():
    clock = StreamClock()
    clock.new_session(Fraction(1, 90000))
    assert [clock.pts(p, 1.0 + i / 30) for i, p in enumerate([3000, 6000, 9000])] == [3000, 6000, 9000]
    clock.new_session(Fraction(1, 90000))  # reconnect: the stream restarts at 0, 2 s later
    after = clock.pts(0, 1.0 + 2 / 30 + 2.0)
    assert abs(after - (9000 + 180000)) <= 1  # one wall-clock gap after the last frame
