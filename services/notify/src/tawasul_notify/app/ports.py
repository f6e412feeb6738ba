"""What the use cases need from the outside world; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Protocol, Self

from tawasul_notify.domain.model import Delivery, SendOutcome


class GatewayUnavailable(Exception):
    """The gateway could not be reached or failed on its side: worth retrying.

    Not a DomainError, so the platform consumer retries with backoff, then dead-letters.
    """


class SmsGateway(Protocol):
    async def send(self, *, to: str, text: str, reference: str) -> SendOutcome:
        """Hands one SMS to the provider; a refusal is an outcome, GatewayUnavailable is not."""
        ...


class DeliveryRepository(Protocol):
    async def add(self, delivery: Delivery) -> None: ...
    async def list_for_request(self, request_id: uuid.UUID) -> list[Delivery]:
        """Oldest first."""
        ...


class UnitOfWork(Protocol):
    @property
    def deliveries(self) -> DeliveryRepository: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def seen_event(self, consumer: str, event_id: str) -> bool:
        """True when `consumer` already applied the event; changes nothing."""
        ...

    async def claim_event(self, consumer: str, event_id: str) -> bool:
        """False when `consumer` already applied the event (a redelivery)."""
        ...

    async def commit(self) -> None:
        """Commits the deliveries with their NotificationSent events, atomically."""
        ...
