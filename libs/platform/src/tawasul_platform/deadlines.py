"""The deadline of the call being served, so that calls made on its behalf end no later.

A caller that gives up after one second gains nothing from this service waiting five on a
dependency: the work would be thrown away, and under load it is what turns slowness into an
outage. The interceptor records each call's deadline; adapters ask for their timeout here.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

# Every outbound call gets one; a caller may pass a shorter one.
DEFAULT_DEADLINE_SECONDS = 5.0

# Absolute, on the monotonic clock; None when the call being served has no deadline (or
# when no call is being served: consumers, periodic jobs).
_deadline: ContextVar[float | None] = ContextVar("tawasul_deadline", default=None)


def enter(remaining: float | None) -> Token[float | None]:
    """Records the served call's remaining time; reset with the token when the call ends."""
    return _deadline.set(None if remaining is None else time.monotonic() + remaining)


def leave(token: Token[float | None]) -> None:
    _deadline.reset(token)


def call_timeout(default: float = DEFAULT_DEADLINE_SECONDS) -> float:
    """The timeout for a downstream call now: `default`, or less when the caller's deadline
    comes sooner. Never negative; zero makes the call fail at once as DEADLINE_EXCEEDED."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(0.0, min(default, deadline - time.monotonic()))
