"""The batcher as a plain object: scripted sources, a fake clock, no threads."""

from __future__ import annotations

import collections

from hypothesis import given, settings
from hypothesis import strategies as st

from streamseg.pipeline.batcher import END, Batcher
from streamseg.types import Frame


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedLane:
    """Frames that become available at given clock times, then END."""

    def __init__(self, sid: str, arrivals: list[float], clock: Clock) -> None:
        self.clock = clock
        self.pending = collections.deque((t, Frame(image=None, source_id=sid, index=i)) for i, t in enumerate(arrivals))
        self.ended = False

    def take(self):
        if self.pending and self.pending[0][0] <= self.clock():
            return self.pending.popleft()[1]
        if not self.pending and not self.ended:
            self.ended = True
            return END
        return None


def _drain(batcher: Batcher, limit: int = 100_000) -> list[list[Frame]]:
    batches = []
    for _ in range(limit):
        if batcher.done:
            return batches
        batches.append(batcher.next_batch())
    raise AssertionError("the batcher never finished")


def test_round_robin_never_lets_one_source_starve_the_others():
    clock = Clock()
    busy = ScriptedLane("busy", [0.0] * 20, clock)
    quiet = ScriptedLane("quiet", [0.0] * 2, clock)
    batcher = Batcher([busy, quiet], batch_size=4, max_wait=0.02, clock=clock, sleep=clock.sleep)
    first = batcher.next_batch()
    assert [f.source_id for f in first] == ["busy", "quiet", "busy", "quiet"]


def test_a_partial_batch_waits_at_most_max_wait():
    clock = Clock()
    lane = ScriptedLane("a", [0.0, 1.0], clock)
    batcher = Batcher([lane], batch_size=4, max_wait=0.05, clock=clock, sleep=clock.sleep)
    batch = batcher.next_batch()
    assert len(batch) == 1 and 0.05 <= clock.now < 0.06
    assert batcher.next_batch() == []  # nothing within `idle`: empty, so the caller can poll the engine
    clock.now = 1.0
    assert [f.index for f in batcher.next_batch()] == [1]


@settings(max_examples=150, deadline=None)
@given(
    arrivals=st.lists(st.lists(st.floats(0, 0.5), max_size=12).map(sorted), min_size=1, max_size=4),
    batch_size=st.integers(1, 5),
    max_wait=st.sampled_from([0.0, 0.002, 0.01, 0.05]),
)
def test_every_frame_once_in_order_and_batches_never_too_big(arrivals, batch_size, max_wait):
    clock = Clock()
    lanes = [ScriptedLane(str(i), times, clock) for i, times in enumerate(arrivals)]
    batcher = Batcher(lanes, batch_size=batch_size, max_wait=max_wait, clock=clock, sleep=clock.sleep)
    batches = _drain(batcher)
    assert all(len(b) <= batch_size for b in batches)
    seen: dict[str, list[int]] = collections.defaultdict(list)
    for batch in batches:
        for frame in batch:
            seen[frame.source_id].append(frame.index)
    for i, times in enumerate(arrivals):
        assert seen.get(str(i), []) == list(range(len(times)))  # every frame once, per-source order kept
