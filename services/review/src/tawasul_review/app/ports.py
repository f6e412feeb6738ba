"""What review's use cases need; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tawasul_platform.ports import Inbox, Transaction

from tawasul_review.domain.assignment import Candidate, Mode
from tawasul_review.domain.model import HistoryEntry, QueuePosition, Receipt, State, WorkItem
from tawasul_review.domain.quality import QualityCheck, QualityPosition
from tawasul_review.domain.reviewers import Reviewer
from tawasul_review.domain.search import Criteria, SearchPosition


@dataclass(frozen=True)
class QueueFilter:
    sub_service_code: str = ""
    assignee: str = ""
    state: State | None = None


class WorkItemRepository(Protocol):
    async def add(self, item: WorkItem) -> None: ...
    async def get(self, request_id: uuid.UUID, *, for_update: bool = False) -> WorkItem | None:
        """With for_update, concurrent claimers of the same item wait for each other."""
        ...

    async def lock(self, request_ids: Collection[uuid.UUID]) -> None:
        """Until the transaction ends, the requests are this one's, here or not yet: a row
        lock cannot hold an item another transaction is still inserting."""
        ...

    async def get_many(
        self, request_ids: Sequence[uuid.UUID], *, for_update: bool = False
    ) -> dict[uuid.UUID, WorkItem]:
        """Those of the items that are here, locked in key order with for_update."""
        ...

    async def queue(
        self, department: str, limit: int, after: QueuePosition | None, filters: QueueFilter
    ) -> list[WorkItem]:
        """Open items, most followed-up first, then oldest first, from just after `after`."""
        ...

    async def next_queued(
        self, departments: frozenset[str], languages: frozenset[str], reviewer_id: str
    ) -> WorkItem | None:
        """The highest-priority, earliest-due queued item not an appeal of the reviewer's own
        decision, locked for this transaction."""
        ...

    async def held_by(self, reviewer_id: str) -> int:
        """The items the reviewer holds, as this transaction leaves them."""
        ...

    async def claimed_in(self, reviewer_id: str) -> dict[uuid.UUID, str]:
        """The department of each item the reviewer holds, as committed, locked or not."""
        ...

    async def claimed_under(self, reviewer_id: str, key: str) -> WorkItem | None:
        """The item the reviewer holds that a ClaimNext under `key` claimed, locked; while
        another transaction holds it, once that one ends (never passed over: the retry would
        claim a second). None if it is no longer theirs under that key by then."""
        ...

    async def remember_claim(
        self, reviewer_id: str, key: str, item: WorkItem, at: datetime
    ) -> None:
        """That the reviewer's ClaimNext under `key` claimed the item (claimed_before)."""
        ...

    async def claimed_before(self, reviewer_id: str, key: str) -> str | None:
        """The request number of the item the reviewer's ClaimNext under `key` claimed, theirs
        still or not; None if none did, or it is forgotten (forget)."""
        ...

    async def forget(self, *, kept_before: datetime, keys_before: datetime, limit: int) -> int:
        """Deletes up to `limit` rows of each: the cancellations and follow-ups kept for their
        request's arrival (`at` before `kept_before`), arrived or not, and the claims under
        keys made before `keys_before`; the most it deleted of one."""
        ...

    async def claimed_by(self, reviewer_id: str) -> list[WorkItem]:
        """The items the reviewer holds, locked in key order; those another transaction holds
        are passed over (taken after the queues and reviewers, they must not be waited for)."""
        ...

    async def waiting(
        self,
        department: str,
        queues: Collection[str],
        languages: Collection[str],
        limit: int,
        *,
        passed: Collection[uuid.UUID] = (),
    ) -> list[WorkItem]:
        """The department's queued items of `queues` in one of `languages`, as this
        transaction leaves them, in claim-next's order: `limit` at most, locked; those other
        transactions hold are skipped, and so are those `passed` (read by it already)."""
        ...

    async def search(
        self, criteria: Criteria, limit: int, after: SearchPosition | None
    ) -> list[WorkItem]:
        """Items matching every part of `criteria`, newest submission first, then by number
        descending, from just after `after`; read in one statement (one snapshot)."""
        ...

    async def due_for_sweep(self, now: datetime, limit: int) -> list[WorkItem]:
        """Lapsed claims, passed information deadlines and reached SLA marks, locked."""
        ...

    async def history(self, request_id: uuid.UUID) -> list[HistoryEntry]:
        """With the delivery receipts, in time order."""
        ...

    async def record_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Each once: one recorded before is left as it is."""
        ...

    async def backlog(self, department: str, now: datetime, soon: datetime) -> list[Any]:
        """Per queue: size, oldest, due_soon, breached, waiting."""
        ...

    async def withdrawals(
        self, request_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[datetime, str, bool]]:
        """When and why each of the requests not yet here that were cancelled was, and whether
        by the office."""
        ...

    async def remember_withdrawal(
        self, request_id: uuid.UUID, at: datetime, reason: str, by_office: bool
    ) -> None: ...

    async def follow_ups(
        self, request_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[datetime, str]]]:
        """When and with what message the requests not yet here were followed up, in time
        order."""
        ...

    async def remember_follow_up(
        self, request_id: uuid.UUID, event_id: str, at: datetime, message: str
    ) -> None:
        """Once per event: one remembered before is left as it is."""
        ...

    async def scheduled_with(self) -> int | None:
        """The calendar version the unfinished items' due dates follow (None: not recorded)."""
        ...

    async def follow_calendar(self, version: int) -> None:
        """Records that they follow `version`."""
        ...

    async def unfinished(self, after: uuid.UUID | None, limit: int) -> list[WorkItem]:
        """Up to `limit` unfinished items after `after` in key order, locked."""
        ...


class ReviewerRepository(Protocol):
    async def get(self, reviewer_id: str) -> Reviewer | None: ...
    async def lock(self, *reviewer_ids: str) -> None:
        """Serializes what each reviewer is given (claims, pushes, reassignments) until the
        transaction ends: whoever counts their load under it sees every other's."""
        ...

    async def put(self, reviewer: Reviewer) -> None:
        """Writes the record, published to docs, notify and routing with its next version."""
        ...

    async def announce(self) -> int:
        """Publishes the records never published (written before versions); how many."""
        ...

    async def in_department(self, department: str) -> list[Reviewer]: ...
    async def supervisors_of(self, department: str) -> list[str]: ...


class QueueRepository(Protocol):
    async def mode(self, queue: str) -> tuple[Mode, str]: ...
    async def modes(self, queues: Collection[str]) -> dict[str, Mode]:
        """The mode of each queue that has settings; a queue without pulls."""
        ...

    async def pushing(self, departments: Collection[str]) -> dict[str, Mode]:
        """The departments' queues that push work (`<department>.<name>`), with their modes."""
        ...

    async def put(self, queue: str, mode: Mode) -> None: ...
    async def assigned(self, queue: str, reviewer_id: str) -> None: ...
    async def lock(self, *queues: str) -> None: ...
    async def candidates(self, department: str) -> list[Candidate]:
        """The department's reviewers, each with their load as `held_by` counts it."""
        ...


class QualityRepository(Protocol):
    async def add(self, check: QualityCheck) -> None: ...
    async def get(self, request_id: uuid.UUID) -> QualityCheck | None: ...
    async def save(self, check: QualityCheck) -> None: ...
    async def in_department(
        self,
        department: str,
        *,
        include_done: bool,
        limit: int,
        after: QualityPosition | None = None,
    ) -> list[QualityCheck]:
        """The checks still to make, oldest sampled first (the order to make them in); with
        `include_done`, every check, made or not, newest first. `limit` of them, after
        `after` in that order."""
        ...


class UnitOfWork(Transaction, Inbox, Protocol):
    @property
    def items(self) -> WorkItemRepository: ...
    @property
    def reviewers(self) -> ReviewerRepository: ...
    @property
    def queues(self) -> QueueRepository: ...
    @property
    def quality(self) -> QualityRepository: ...


@dataclass(frozen=True)
class Attachment:
    document_id: str
    filename: str
    content_type: str
    size_bytes: int
    download_url: str
    # None for a document docs would not give (`unreadable`).
    url_expires_at: datetime | None
    # Docs answered NOT_FOUND for it, again and again: no link, nothing known but its id.
    unreadable: bool = False
    # Its kind in the sub-service's document schema; "" when the channel did not say.
    kind: str = ""

    @classmethod
    def not_given(cls, document_id: str) -> Attachment:
        return cls(document_id, "", "", 0, "", None, unreadable=True)


class Documents(Protocol):
    async def download_links(self, document_ids: tuple[str, ...], token: str) -> list[Attachment]:
        """A presigned download link per document, in their order, fetched with the
        reviewer's own token; a document docs will not give is `unreadable`. Unavailable
        while docs cannot answer."""
        ...
