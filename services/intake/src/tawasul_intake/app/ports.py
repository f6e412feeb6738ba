"""What the use cases need from the outside world; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from tawasul_platform.ports import Inbox, Transaction

from tawasul_intake.domain.model import OpenKey, Request
from tawasul_intake.domain.people import Person, Relation


class ConcurrentSubmission(Exception):
    """Another submission with the same idempotency key committed first."""


class DuplicateOpenRequest(Exception):
    """Another open request for the same person and sub-service committed first."""


class NumberTaken(Exception):
    """The random request number drawn is already in use; draw again."""


@dataclass(frozen=True)
class Related:
    """What a new submission is checked against (RequestRepository.related_to)."""

    requests: list[Request]
    open_count: int


class RequestRepository(Protocol):
    async def add(self, request: Request) -> None: ...
    async def get(self, request_id: uuid.UUID, *, for_update: bool = False) -> Request | None:
        """`for_update`: to change it, after any change in flight (the row stays locked)."""
        ...

    async def get_by_number(self, number: str, *, for_update: bool = False) -> Request | None: ...
    async def get_by_idempotency_key(self, applicant_id: str, key: str) -> Request | None: ...
    async def open_request(self, about: OpenKey) -> Request | None: ...
    async def related_to(
        self,
        applicant_id: str,
        key: str,
        about: OpenKey,
        document_ids: tuple[uuid.UUID, ...],
    ) -> Related:
        """In one read, what a new submission is checked against: the request its idempotency
        key made, the open one for the same person and sub-service, the account's open ones
        holding any of its documents, and how many of the account's requests are open."""
        ...

    async def list_by_applicant(
        self, applicant_id: str, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Request]:
        """Newest first; `after` is the (submitted_at, id) of the last one already seen."""
        ...

    async def open_requests_with_documents(
        self, applicant_id: str, document_ids: tuple[uuid.UUID, ...]
    ) -> dict[uuid.UUID, str]:
        """Which of the documents an open request of the account holds, with its number."""
        ...

    async def lock_account(self, applicant_id: str) -> None:
        """Serializes one account's submissions until the transaction ends."""
        ...


@dataclass(frozen=True)
class StoredCode:
    code_hash: str
    expires_at: datetime
    attempts: int


class TrackingCodes(Protocol):
    async def put(self, request_id: uuid.UUID, code_hash: str, expires_at: datetime) -> None:
        """Replaces any earlier code of the request."""
        ...

    async def attempt(self, request_id: uuid.UUID) -> StoredCode | None:
        """The live code, its attempt counter raised by this attempt."""
        ...

    async def delete(self, request_id: uuid.UUID) -> None: ...

    async def forget_expired(self, now: datetime, *, limit: int) -> int:
        """Deletes up to `limit` codes expired by `now`; answers how many."""
        ...


class RateLimits(Protocol):
    async def hit(self, bucket: str, *, window: timedelta, now: datetime) -> int:
        """Counts one hit and answers the hits in the bucket's current window."""
        ...

    async def forget(self, started_before: datetime, *, limit: int) -> int:
        """Deletes up to `limit` buckets whose window started before `started_before` (a hit
        would start them afresh); answers how many."""
        ...


class UnitOfWork(Transaction, Inbox, Protocol):
    @property
    def requests(self) -> RequestRepository: ...
    @property
    def codes(self) -> TrackingCodes: ...
    @property
    def limits(self) -> RateLimits: ...


class Registry(Protocol):
    """Who people are and whom an account holder answers for (Absher / Muqeem in production)."""

    async def person(self, id_number: str) -> Person | None: ...
    async def relation(self, holder: str, id_number: str) -> Relation | None: ...


@dataclass(frozen=True)
class DocumentInfo:
    content_type: str
    size_bytes: int
    # Only a document the malware scanner found clean may be attached.
    clean: bool = True
    infected: bool = False
    # The kind of the sub-service's document schema it was uploaded as; "" when not said.
    kind: str = ""


class Documents(Protocol):
    async def describe(
        self, document_ids: tuple[uuid.UUID, ...], token: str, *, hold: bool
    ) -> dict[uuid.UUID, DocumentInfo]:
        """The documents the token's account uploaded; the others are left out. With `hold`
        docs restarts each one's unattached lifetime (a request about to name it)."""
        ...


class CodeSender(Protocol):
    async def send(self, *, request: Request, code: str, valid_minutes: int) -> None:
        """Hands a one-time tracking code over for sending to the mobile on the request, and
        returns at once without raising: how sending goes must not show in the answer."""
        ...
