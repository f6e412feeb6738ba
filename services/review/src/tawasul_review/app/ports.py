"""What review's use cases need; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tawasul_platform.ports import Inbox, Transaction

from tawasul_review.domain.model import QueuePosition, WorkItem


class WorkItemRepository(Protocol):
    async def add(self, item: WorkItem) -> None: ...
    async def get(self, request_id: uuid.UUID, *, for_update: bool = False) -> WorkItem | None:
        """With for_update, concurrent claimers of the same item wait for each other."""
        ...

    async def queue(
        self, department: str, limit: int, after: QueuePosition | None
    ) -> list[WorkItem]:
        """Open items, most followed-up first, then oldest first, from just after `after`."""
        ...

    async def withdrawal(self, request_id: uuid.UUID) -> tuple[datetime, str] | None:
        """When and why a request not yet here was cancelled, if it was."""
        ...

    async def remember_withdrawal(
        self, request_id: uuid.UUID, at: datetime, reason: str
    ) -> None: ...


class UnitOfWork(Transaction, Inbox, Protocol):
    @property
    def items(self) -> WorkItemRepository: ...


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
