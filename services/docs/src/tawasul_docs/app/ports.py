"""What the use cases need from the outside world; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Protocol

from tawasul_platform.ports import Transaction

from tawasul_docs.domain.model import Document


class ObjectStore(Protocol):
    """The bucket that holds documents' bytes."""

    async def put(self, key: str, data: bytes, *, content_type: str) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def presign_get(self, key: str, *, expires: timedelta, download_name: str) -> str:
        """A URL that downloads the object, without credentials, until `expires` has passed."""
        ...


class DocumentRepository(Protocol):
    async def add(self, document: Document) -> None: ...
    async def get(self, document_id: uuid.UUID) -> Document | None: ...


class UnitOfWork(Transaction, Protocol):
    @property
    def documents(self) -> DocumentRepository: ...
