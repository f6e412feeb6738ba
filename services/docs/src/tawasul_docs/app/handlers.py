"""Docs' use cases."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from tawasul_platform.errors import InvalidArgument, NotFound, PermissionDenied
from tawasul_platform.identity import Principal

from tawasul_docs.app.ports import ObjectStore, UnitOfWork
from tawasul_docs.domain.model import (
    Document,
    DocumentMetadata,
    DownloadLink,
    Upload,
    parse_document_id,
)

log = logging.getLogger(__name__)


async def upload_document(
    *,
    uow: UnitOfWork,
    store: ObjectStore,
    caller: Principal,
    parts: AsyncIterator[DocumentMetadata | bytes],
    max_bytes: int,
    now: datetime,
) -> Document:
    """Checks and stores an uploaded file: metadata first, then chunks.

    The bytes go to object storage before the row commits, so a committed row always has its
    object; when the commit fails the object is deleted again (best effort).
    """
    if not caller.is_beneficiary:
        raise PermissionDenied("only beneficiaries upload documents")
    metadata = await anext(parts, None)
    if not isinstance(metadata, DocumentMetadata):
        raise InvalidArgument({"metadata": "the first message must carry the document's metadata"})
    upload = Upload(max_bytes)
    async for part in parts:
        if isinstance(part, DocumentMetadata):
            raise InvalidArgument({"metadata": "only the first message carries metadata"})
        upload.add(part)
    content = upload.finish()
    document = Document.create(
        id=uuid.uuid4(), owner_id=caller.subject, metadata=metadata, content=content, now=now
    )
    await store.put(document.object_key, content.data, content_type=document.content_type.value)
    try:
        async with uow:
            await uow.documents.add(document)
            await uow.commit()
    except Exception:
        await _discard(uow=uow, store=store, document=document)
        raise
    return document


async def _discard(*, uow: UnitOfWork, store: ObjectStore, document: Document) -> None:
    """Deletes the object of a document whose row did not commit.

    A commit can fail after the database applied it (connection lost on the reply), so the row
    is looked up first; when even that fails the object is left: an orphan object is harmless,
    a row without its object is not.
    """
    try:
        async with uow:
            committed = await uow.documents.get(document.id) is not None
        if not committed:
            await store.delete(document.object_key)
    except Exception:
        log.warning("cannot clean up object %s after a failed commit", document.object_key)


async def get_document(*, uow: UnitOfWork, caller: Principal, document_id: str) -> Document:
    """A document's metadata; one the caller may not read is reported as not found."""
    key = parse_document_id(document_id)
    async with uow:
        document = await uow.documents.get(key)
    if document is None or not document.readable_by(caller):
        raise NotFound(f"no document {document_id!r}")
    return document


async def get_download_url(
    *,
    uow: UnitOfWork,
    store: ObjectStore,
    caller: Principal,
    document_id: str,
    valid_for: timedelta,
    now: datetime,
) -> DownloadLink:
    """A presigned URL for the document's bytes, valid for `valid_for`."""
    document = await get_document(uow=uow, caller=caller, document_id=document_id)
    url = await store.presign_get(
        document.object_key, expires=valid_for, download_name=document.filename
    )
    return DownloadLink(document=document, url=url, expires_at=now + valid_for)
