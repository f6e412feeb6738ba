"""What routing's use cases need; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Protocol

from tawasul_platform.ports import Inbox, Transaction
from tawasul_platform.staff import StaffRecords

from tawasul_routing.domain.model import Decision, IncomingRequest, Transfer


class DecisionRepository(Protocol):
    async def lock(self, request_ids: Collection[uuid.UUID]) -> None:
        """Until the transaction ends, the requests are this one's, routed or not yet: another
        topic's event about one, applied at the same time, would not see this one's rows
        uncommitted (nor this one its), and what either decides would miss the other's."""
        ...

    async def add(self, decision: Decision) -> None: ...
    async def add_all(self, decisions: list[Decision]) -> None: ...
    async def routed(self, request_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of the requests have a decision already."""
        ...

    async def latest(self, request_id: uuid.UUID) -> Decision | None:
        """The request's most recent decision: where it is now, its request with every
        follow-up counted and every answer's fields kept so far."""
        ...

    async def count_follow_ups(self, request_id: uuid.UUID, count: int) -> None:
        """Keeps the request's follow-up count, routed or not yet; a lower (stale) one changes
        nothing."""
        ...

    async def record_answer(self, request_id: uuid.UUID, fields: Mapping[str, str]) -> None:
        """Keeps the fields an answer replaced in the request, routed or not yet, over those
        of earlier answers."""
        ...

    async def keep_transfer(self, transfer: Transfer) -> None:
        """Keeps a transfer of a request not routed yet, over an earlier one kept for it; an
        older one (a lower sequence, not 0) changes nothing."""
        ...

    async def caught_up(
        self, requests: list[IncomingRequest]
    ) -> list[tuple[IncomingRequest, Transfer | None]]:
        """Each submitted request, in order, with the follow-ups and answers kept for it
        before it was routed, and the transfer kept for it then, if any."""
        ...

    async def forget_transfers(self, request_ids: list[uuid.UUID]) -> None:
        """Drops the transfers kept for these requests (applied with their submission)."""
        ...


class UnitOfWork(Transaction, Inbox, Protocol):
    @property
    def decisions(self) -> DecisionRepository: ...
    @property
    def staff(self) -> StaffRecords:
        """Review's records of reviewers, which narrow their tokens' departments."""
        ...
