"""When to try a lost connection again: one exponential backoff for network sources and the RTSP sink."""

from __future__ import annotations

import random
import time

from streamseg.errors import ConfigError

__all__ = ["Backoff"]


class Backoff:
    """The n-th failure in a row waits ``first * 2**(n-1)`` seconds, at most ``longest``, give or take ``jitter``
    (a fraction), so that many clients of one server do not retry in step."""

    def __init__(self, first: float, longest: float, *, jitter: float = 0.0, what: str = "backoff") -> None:
        try:
            first, longest = float(first), float(longest)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{what} must be (first, max) seconds, got {(first, longest)!r}") from exc
        if not 0 <= first <= longest:
            raise ConfigError(f"{what} must be (first, max) seconds with 0 <= first <= max, not {(first, longest)!r}")
        self.first, self.longest, self.jitter = first, longest, jitter
        self.failures = 0  # in a row
        self.next_attempt = 0.0  # time.monotonic() of the next try

    def failed(self) -> float:
        """Count a failure and schedule the next try; returns the delay."""
        self.failures += 1
        # the exponent is capped: a source retried for hours (~1,000 failures) would overflow a float
        delay = min(self.longest, self.first * 2.0 ** min(self.failures - 1, 60))
        if self.jitter:
            delay *= 1 + random.uniform(-self.jitter, self.jitter)
        self.next_attempt = time.monotonic() + delay
        return delay

    def reset(self) -> None:
        """A success (or a fresh start): the next failure waits ``first`` again, and the next try is now."""
        self.failures = 0
        self.next_attempt = 0.0

    def wait(self) -> float:
        """Seconds until the next try (0 when it is due)."""
        return max(0.0, self.next_attempt - time.monotonic())
