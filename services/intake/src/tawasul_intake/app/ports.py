"""What the use cases need from the outside world; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from typing import Protocol

from tawasul_platform.ports import Inbox, Transaction

from tawasul_intake.domain.model import Request


class ConcurrentSubmission(Exception):
    """Another submission with the same idempotency key committed first."""


class RequestRepository(Protocol):
    async def add(self, request: Request) -> None: ...
    async def get(self, request_id: uuid.UUID) -> Request | None: ...
    async def get_by_number(self, number: str) -> Request | None: ...
    async def get_by_idempotency_key(self, applicant_id: str, key: str) -> Request | None: ...
    async def next_number(self) -> str: ...


class UnitOfWork(Transaction, Inbox, Protocol):
    @property
    def requests(self) -> RequestRepository: ...


class Documents(Protocol):
    async def missing(self, document_ids: tuple[uuid.UUID, ...], token: str) -> set[uuid.UUID]:
        """Which of the documents the token's account has not uploaded (or do not exist)."""
        ...
