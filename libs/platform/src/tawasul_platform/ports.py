"""The unit-of-work port every service's use cases share; services extend it with repositories.

Pure typing, so application layers depend on it without depending on SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self, TypeVar

T = TypeVar("T")


class Transaction(Protocol):
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None:
        """Commits the changes with the events they raised, atomically."""
        ...


class Inbox(Protocol):
    async def seen_event(self, consumer: str, event_id: str) -> bool:
        """True when `consumer` already applied the event; changes nothing."""
        ...

    async def claim_event(self, consumer: str, event_id: str) -> bool:
        """Records the event as applied in this transaction; False when it already was."""
        ...

    async def claim_events(self, consumer: str, event_ids: list[str]) -> set[str]:
        """claim_event for a batch in one statement: the ones not applied before."""
        ...


async def claim_each(inbox: Inbox, consumer: str, events: Sequence[tuple[str, T]]) -> list[T]:
    """What each of a batch's events (event id, what it says) brings that `consumer` had not
    applied, claimed in one statement, in the batch's order: an event the batch holds twice
    (a redelivery within one poll) counts once."""
    claimed = await inbox.claim_events(consumer, [event_id for event_id, _ in events])
    fresh = []
    for event_id, value in events:
        if event_id in claimed:
            claimed.discard(event_id)
            fresh.append(value)
    return fresh
