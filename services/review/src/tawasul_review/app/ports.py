"""What review's use cases need; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from tawasul_review.domain.model import WorkItem


class WorkItemRepository(Protocol):
    async def add(self, item: WorkItem) -> None: ...
    async def get(self, request_id: uuid.UUID, *, for_update: bool = False) -> WorkItem | None:
        """With for_update, concurrent claimers of the same item wait for each other."""
        ...

    async def queue(self, department: str, limit: int) -> list[WorkItem]:
        """Items not yet decided, oldest first."""
        ...


class UnitOfWork(Protocol):
    @property
    def items(self) -> WorkItemRepository: ...

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
        """Commits item changes, their history and their events, atomically."""
        ...


@dataclass(frozen=True)
class Attachment:
    document_id: str
    filename: str
    content_type: str
    size_bytes: int
    download_url: str
    url_expires_at: datetime


class Documents(Protocol):
    async def download_links(self, document_ids: tuple[str, ...], token: str) -> list[Attachment]:
        """Presigned download links, fetched with the reviewer's own token."""
        ...
