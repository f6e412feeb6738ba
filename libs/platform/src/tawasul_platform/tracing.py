"""W3C trace context carried from gRPC metadata into outbox rows and Kafka headers."""

from __future__ import annotations

import secrets
from contextvars import ContextVar

TRACEPARENT = "traceparent"

_current: ContextVar[str | None] = ContextVar("traceparent", default=None)


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def current_traceparent() -> str:
    """The trace of the work in progress; starts a new trace when there is none."""
    value = _current.get()
    if value is None:
        value = new_traceparent()
        _current.set(value)
    return value


def set_traceparent(value: str | None) -> None:
    _current.set(value if value and value.count("-") == 3 else None)
