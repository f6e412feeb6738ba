"""What the use cases need from the outside world; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from typing import Protocol

from tawasul_platform.errors import Unavailable
from tawasul_platform.ports import Inbox, Transaction

from tawasul_notify.domain.model import Delivery, SendOutcome


class GatewayUnavailable(Unavailable):
    """The gateway could not be reached or failed on its side: an outage, waited out.

    The platform consumer retries it until the gateway answers, and never dead-letters it.
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


class UnitOfWork(Transaction, Inbox, Protocol):
    @property
    def deliveries(self) -> DeliveryRepository: ...
