"""What the use cases need from the outside world; adapters and test fakes provide it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from tawasul_platform.ports import Inbox, Transaction
from tawasul_platform.staff import StaffRecords

from tawasul_docs.app.spool import Spool
from tawasul_docs.domain.model import Document, DocumentEvent, Placement

# An object storage refused to delete is tried again this long later, twice as long after each
# further refusal, up to RETRY_MOST: one it will never delete does not hold up the others.
RETRY_FIRST = timedelta(minutes=1)
RETRY_MOST = timedelta(hours=1)


class ObjectStore(Protocol):
    """The bucket that holds documents' bytes."""

    def stream_to(self, key: str, spool: Spool, size: int | None) -> asyncio.Future[None]:
        """Starts storing the spool's bytes as they arrive; awaiting it waits for the stored
        object. `size`, when known, is exactly how many bytes the spool will hold. An aborted
        spool leaves nothing in the bucket."""
        ...

    async def copy(self, source: str, target: str, *, content_type: str) -> None: ...
    def chunks(self, key: str) -> AsyncIterator[bytes]: ...
    async def delete(self, key: str) -> None: ...
    async def delete_many(self, keys: list[str]) -> list[str]:
        """Deletes the objects in one request; those storage refused one by one (denied, say),
        which the others do not wait for. A missing one is no error; storage unreachable is
        Unavailable."""
        ...

    async def presign_get(
        self, key: str, *, expires: timedelta, download_name: str, content_type: str
    ) -> str:
        """A URL that downloads the object, without credentials, until `expires` has passed,
        served as `content_type` under `download_name`."""
        ...


@dataclass(frozen=True)
class Verdict:
    clean: bool
    signature: str = ""


class Scanner(Protocol):
    """The malware scanner; Unavailable when it cannot answer (the document stays quarantined)."""

    async def scan(self, chunks: AsyncIterator[bytes]) -> Verdict: ...


@dataclass(frozen=True)
class Attached:
    # Those that had not joined the request before, to publish.
    joined: list[Document]
    # Those named that docs does not have (expired unattached, or never stored).
    missing: tuple[uuid.UUID, ...]


class DocumentRepository(Protocol):
    async def add(self, document: Document) -> None: ...
    async def get(self, document_id: uuid.UUID) -> Document | None: ...
    async def save(self, document: Document) -> None: ...
    async def quarantined(self, limit: int, *, older_than: datetime) -> list[Document]:
        """Documents waiting for a scan, least recently tried first, locked for the
        transaction."""
        ...

    async def tried(self, document_id: uuid.UUID, at: datetime) -> None:
        """Records a scan attempt, which sends the document to the back of the line."""
        ...

    async def still_quarantined(self, document_id: uuid.UUID) -> bool:
        """Whether it still waits for a verdict, locking its row for this transaction."""
        ...

    async def attach(
        self, request_id: uuid.UUID, document_ids: tuple[uuid.UUID, ...], at: datetime
    ) -> Attached:
        """Records that the (existing) documents joined the request."""
        ...

    async def hold(self, document_id: uuid.UUID, at: datetime) -> bool:
        """Keeps it, while unattached, a full lifetime from `at`; False if it is gone."""
        ...

    async def unattached(self, limit: int, *, older_than: datetime) -> list[Document]:
        """Documents never attached, created (and last held, if ever) before `older_than`,
        locked for the transaction."""
        ...

    async def count_unattached(self, owner_id: str) -> int:
        """How many of the owner's documents joined no request (yet)."""
        ...

    async def remove(self, document_ids: list[uuid.UUID]) -> None: ...


class AccessRepository(Protocol):
    """Which requests, in which departments, hold each document (from routing's events)."""

    async def grant(self, placements: Sequence[Placement]) -> list[Placement]:
        """Each request now sits in its department (a transfer moves it), one placement each,
        and every document attached to it is readable there: attach the placements' documents
        first. A placement no later than the one applied (Placement.outdated_by) moves nothing:
        those are answered."""
        ...

    async def grant_attached(self, request_id: uuid.UUID) -> None:
        """Every document attached to the request is readable by its department. Until
        routing's event places it, the request is held (a row without a department, locked
        to the end of the transaction), so that a placement committing meanwhile waits and
        then grants them: an answer may arrive before the routed event."""
        ...

    async def departments(self, document_id: uuid.UUID) -> frozenset[str]: ...


class UploadLeases(Protocol):
    """Uploads in progress per account, counted for every replica at once."""

    async def take(
        self, owner_id: str, lease_id: uuid.UUID, *, now: datetime, until: datetime, limit: int
    ) -> bool:
        """A lease until `until` unless the account holds `limit` live ones already."""
        ...

    async def release(self, lease_id: uuid.UUID) -> None: ...
    async def prune(self, now: datetime, *, limit: int) -> int:
        """Deletes up to `limit` leases lapsed by `now` (a process that died left them, with
        the account's national ID); how many."""
        ...


class ObjectDeletions(Protocol):
    """Objects no row needs, still to delete from the bucket (the expiry sweep deletes them).

    Recorded with the change that leaves them (a row removed), or when storage could not delete
    them at once; an upload's object is recorded before it is stored, until its row commits.
    Forgotten only once deleted, so an outage delays a deletion but never loses it.
    """

    async def add(self, keys: Sequence[str]) -> None:
        """To delete at once (sooner, if recorded already to delete later)."""
        ...

    async def intend(self, key: str, *, until: datetime) -> None:
        """An object about to be stored for a row not committed yet: deleted once `until`
        has passed, unless its row's transaction `keep`s it first."""
        ...

    async def keep(self, key: str) -> bool:
        """Forgets an intended object, which the row committed with this holds; False if the
        sweep has taken it (its time passed), or deleted it already: its object is gone, or
        about to be."""
        ...

    async def take(self, limit: int, *, now: datetime) -> list[str]:
        """Up to `limit` of them due by `now`, the longest due first, marked so that no row
        keeps them any more (commit it before deleting their objects); they stay recorded
        until `done`. One a row's transaction is keeping is not taken."""
        ...

    async def done(self, keys: Sequence[str]) -> None:
        """Forgets them: their objects are deleted."""
        ...

    async def refused(self, keys: Sequence[str], *, now: datetime) -> None:
        """Storage refused to delete them: each is due again later, after a wait that doubles
        with each refusal (RETRY_FIRST, up to RETRY_MOST)."""
        ...


class UnitOfWork(Transaction, Inbox, Protocol):
    @property
    def staff(self) -> StaffRecords:
        """Review's records of reviewers, which narrow their tokens' departments."""
        ...

    @property
    def documents(self) -> DocumentRepository: ...
    @property
    def access(self) -> AccessRepository: ...
    @property
    def leases(self) -> UploadLeases: ...
    @property
    def deletions(self) -> ObjectDeletions: ...
    def record(self, event: DocumentEvent) -> None:
        """Publishes the event with what `commit` commits (the outbox)."""
        ...
