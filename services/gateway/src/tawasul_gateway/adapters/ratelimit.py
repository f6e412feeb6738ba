"""Token buckets per key (a subject, an address, an establishment), in this process."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """`rate` tokens a second per key, at most `burst` saved up. `take` answers 0 when the
    call may go ahead, else the seconds until it could. Keys unseen the longest are forgotten
    past `max_keys` (a forgotten key starts with a full bucket)."""

    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @classmethod
    def per_minute(
        cls, calls: float, *, clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        """`calls` a minute, all of them at once if saved up."""
        return cls(rate=calls / 60.0, burst=max(1.0, calls), clock=clock)

    @classmethod
    def per_hour(cls, calls: float, *, clock: Callable[[], float] = time.monotonic) -> RateLimiter:
        return cls(rate=calls / 3600.0, burst=max(1.0, calls), clock=clock)

    def take(self, key: str) -> float:
        now = self._clock()
        tokens, since = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - since) * self._rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / self._rate
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait

    def give_back(self, key: str) -> None:
        """Returns the call `take` counted (one the caller did not really make: its token
        was forged), up to a full bucket."""
        if key in self._buckets:
            tokens, since = self._buckets[key]
            self._buckets[key] = (min(self._burst, tokens + 1), since)


def retry_after(wait: float) -> str:
    """The Retry-After header for a wait: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))
