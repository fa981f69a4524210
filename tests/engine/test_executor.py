"""The executors' shared pieces: the in-flight queue, frame checks, size groups."""

from __future__ import annotations

import numpy as np
import pytest

from streamseg.engine.executor import InFlight, checked_images, size_groups
from streamseg.errors import InputError
from streamseg.types import Frame


class _Done:
    def __init__(self, ready: bool) -> None:
        self.ready = ready

    def query(self) -> bool:
        return self.ready


class _Batch:
    def __init__(self, name: str, ready: bool) -> None:
        self.name, self.done = name, _Done(ready)


def test_in_flight_hands_out_done_batches_in_order():
    q: InFlight[_Batch] = InFlight(2)
    a, b, c = _Batch("a", False), _Batch("b", True), _Batch("c", True)
    q.add(a)
    q.add(b)
    assert q.due(wait=False) == []  # b is done but a is older: order is kept
    assert q.make_room() == [a] and len(q) == 1  # one more fits under the limit once a is collected
    q.add(c)
    assert [x.name for x in q.due(wait=False)] == ["b", "c"]
    q.add(_Batch("d", False))
    assert [x.name for x in q.due(wait=True)] == ["d"]  # wait: the oldest, done or not
    q.add(_Batch("e", False))
    assert [x.name for x in q.drain()] == ["e"] and len(q) == 0


def test_frames_from_sources_pass_untouched_and_others_are_checked():
    good = np.zeros((4, 6, 3), np.uint8)
    grey = np.zeros((4, 6), np.uint8)
    out = checked_images([Frame(image=good), Frame(image=grey)])
    assert out[0] is good and out[1].shape == (4, 6, 3)
    with pytest.raises(InputError, match="float"):
        checked_images([Frame(image=np.zeros((4, 6, 3), np.float32))])
    assert size_groups([good, out[1], np.zeros((8, 8, 3), np.uint8)]) == {(4, 6): [0, 1], (8, 8): [2]}
