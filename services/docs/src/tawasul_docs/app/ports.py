"""What the use cases need from the outside world; adapters and test fakes provide it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import TracebackType
from typing import Protocol, Self

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


class UnitOfWork(Protocol):
    @property
    def documents(self) -> DocumentRepository: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...
