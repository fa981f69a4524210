"""The one backoff policy of network sources and the RTSP sink."""

from __future__ import annotations

import time

import pytest

from streamseg.backoff import Backoff
from streamseg.errors import ConfigError


def test_delays_double_up_to_the_cap_and_reset():
    backoff = Backoff(0.5, 3.0)
    assert [backoff.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.failures == 5 and 2.5 < backoff.wait() <= 3.0
    backoff.reset()
    assert backoff.failures == 0 and backoff.wait() == 0.0 and backoff.failed() == 0.5


def test_hours_of_failures_stay_at_the_cap():
    """A camera that stays away: the soak's stalled source failed ~1,000 times in 50 minutes and 2 ** 1024
    overflowed a float, ending the source with OverflowError."""
    backoff = Backoff(0.5, 2.0, jitter=0.1)
    delays = [backoff.failed() for _ in range(5000)]
    assert max(delays) <= 2.2 and 1.8 <= delays[-1]


def test_jitter_stays_within_its_fraction():
    delays = [Backoff(1.0, 1.0, jitter=0.1).failed() for _ in range(200)]
    assert 0.9 <= min(delays) < 1.0 < max(delays) <= 1.1


def test_next_attempt_is_in_the_future():
    backoff = Backoff(0.2, 1.0)
    backoff.failed()
    assert backoff.next_attempt > time.monotonic() and backoff.wait() > 0.1


@pytest.mark.parametrize("first, longest", [(2.0, 1.0), (-1.0, 1.0), ("soon", 1.0)])
def test_bad_values(first, longest):
    with pytest.raises(ConfigError, match="backoff"):
        Backoff(first, longest)
