"""What routing's use cases need; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Protocol, Self

from tawasul_routing.domain.model import Decision


class DecisionRepository(Protocol):
    async def add(self, decision: Decision) -> None: ...
    async def get(self, request_id: uuid.UUID) -> Decision | None: ...


class UnitOfWork(Protocol):
    @property
    def decisions(self) -> DecisionRepository: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def claim_event(self, consumer: str, event_id: str) -> bool:
        """False when `consumer` already applied the event (a redelivery)."""
        ...

    async def commit(self) -> None:
        """Commits the decisions with their `routed` events, atomically."""
        ...
