"""What the use cases need from the outside world; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from tawasul_platform.errors import Unavailable
from tawasul_platform.ports import Inbox, Transaction
from tawasul_platform.staff import StaffRecords

from tawasul_notify.domain.model import (
    Audience,
    Channel,
    Delivery,
    InboxMessage,
    Outgoing,
    RequestAccess,
    SendOutcome,
    Told,
)


class ChannelUnavailable(Unavailable):
    """The gateway or mail server could not be reached, or failed on its side.

    Either way the message is tried again, for as long as the service's retry window; past
    it, it is failed only while the channel takes others (one failing for everyone, an
    outage, is waited out).
    """


class Sender(Protocol):
    """One channel's way out: the SMS gateway or the mail server."""

    @property
    def channel(self) -> Channel: ...

    async def send(self, message: Outgoing) -> SendOutcome:
        """A refusal is an outcome; ChannelUnavailable when it cannot answer now."""
        ...

    async def healthy(self) -> bool:
        """Whether the channel works for others: tells a recipient's failure from an outage."""
        ...


# A receipt's final word for a message that reached the handset; any other final word says it
# never will (the provider's: "undelivered", "expired", ...).
DELIVERED = "delivered"


class Receipts(Protocol):
    """Delivery receipts from the SMS provider."""

    async def settled(self, provider_message_ids: list[str]) -> dict[str, str]:
        """The messages whose receipts are final, each with its final word: DELIVERED, or what
        the provider says of one that will never reach the handset."""
        ...


class DeliveryRepository(Protocol):
    async def intend(self, delivery: Delivery) -> Delivery:
        """Records the pending delivery unless it exists; returns the row as it now stands,
        locked for this transaction."""
        ...

    async def add_all(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Records the deliveries not recorded before, in one go; returns those (their events
        go out at commit)."""
        ...

    async def due(self, channel: Channel, limit: int, now: datetime) -> list[Delivery]:
        """Up to `limit` of the channel's pending messages due by `now`, oldest first, locked
        for this transaction; those another transaction holds are skipped. One-time codes
        are not among them: their call sends them."""
        ...

    async def save(self, delivery: Delivery) -> None: ...
    async def save_all(self, deliveries: Sequence[Delivery]) -> None: ...
    async def list_for_request(
        self, request_id: uuid.UUID, audience: Audience | None
    ) -> list[Delivery]:
        """Oldest first; every audience when `audience` is None."""
        ...

    async def awaiting_receipt(
        self, limit: int, *, sent_after: datetime, checked_before: datetime
    ) -> list[Delivery]:
        """SMS taken by the gateway since `sent_after` and not checked since `checked_before`,
        least recently checked first."""
        ...

    async def still_sent(self, delivery_ids: list[uuid.UUID]) -> list[Delivery]:
        """Those of the deliveries still sent (no other pass has marked them), locked for this
        transaction."""
        ...

    async def checked(self, delivery_ids: list[uuid.UUID], at: datetime) -> None: ...


class InboxRepository(Protocol):
    async def add_all(self, messages: Sequence[InboxMessage]) -> None:
        """Each once: one stored before is left as it is."""
        ...

    async def list_for(self, owner_id: str, *, staff: bool, limit: int) -> list[InboxMessage]:
        """Newest first; a staff inbox (reviewers' and supervisors' messages) or a
        beneficiary's."""
        ...

    async def mark_read(
        self, owner_id: str, message_ids: list[uuid.UUID], at: datetime, *, staff: bool
    ) -> int:
        """Marks the owner's unread ones among them; how many were marked."""
        ...


class AccessRepository(Protocol):
    async def record_all(self, accesses: Sequence[RequestAccess]) -> list[RequestAccess]:
        """Each request's applicant and department (a later department replaces it, except a
        submission's routing's: RequestAccess.routed); at most one each. A routing no later
        than one recorded changes nothing (RequestAccess.outdated_by): those are answered."""
        ...

    async def get(self, request_id: uuid.UUID) -> RequestAccess | None: ...

    async def establishments(self, request_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of the requests an establishment filed, as the submission or routing said."""
        ...


class ToldRepository(Protocol):
    async def hold(self, request_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Told]:
        """What each request's beneficiary was told (a request with nothing recorded is left
        out), held until the transaction ends: another poll's telling of the same requests
        waits for it, then reads what it recorded."""
        ...

    async def record(self, told: Mapping[uuid.UUID, Told]) -> None:
        """Records what each request held was told now, in place of what was recorded."""
        ...


class UnitOfWork(Transaction, Inbox, Protocol):
    def on_commit(self, callback: Callable[[], None]) -> None:
        """Calls `callback` once this unit of work's changes are committed."""
        ...

    @property
    def staff(self) -> StaffRecords:
        """Review's records of reviewers, which narrow their tokens' departments."""
        ...

    @property
    def deliveries(self) -> DeliveryRepository: ...
    @property
    def inapp(self) -> InboxRepository: ...
    @property
    def access(self) -> AccessRepository: ...
    @property
    def told(self) -> ToldRepository: ...


StaffDirectory = Mapping[str, str]
"""Employee id to e-mail address, for messages to supervisors."""
