"""DocsService over gRPC: translates wire messages to use-case calls and back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import caller

from tawasul_docs.app import handlers
from tawasul_docs.app.ports import ObjectStore, UnitOfWork
from tawasul_docs.domain.model import Document, DocumentMetadata

Context = grpc.aio.ServicerContext[Any, Any]


def to_wire(document: Document) -> docs_pb2.Document:
    return docs_pb2.Document(
        document_id=str(document.id),
        owner_id=document.owner_id,
        filename=document.filename,
        content_type=document.content_type.value,
        size_bytes=document.size_bytes,
        sha256=document.sha256,
        created_at=timestamp(document.created_at),
    )


async def _parts(
    messages: AsyncIterator[docs_pb2.UploadDocumentRequest],
) -> AsyncIterator[DocumentMetadata | bytes]:
    async for message in messages:
        if message.WhichOneof("part") == "metadata":
            yield DocumentMetadata(
                filename=message.metadata.filename,
                declared_content_type=message.metadata.declared_content_type,
            )
        else:
            # A message with neither part set is an empty chunk.
            yield message.chunk


class DocsServicer(docs_pb2_grpc.DocsServiceServicer):
    def __init__(
        self,
        *,
        uow: Callable[[], UnitOfWork],
        store: ObjectStore,
        secret: str,
        max_document_bytes: int,
        download_url_seconds: int,
    ) -> None:
        self._uow = uow
        self._store = store
        self._secret = secret
        self._max_bytes = max_document_bytes
        self._url_validity = timedelta(seconds=download_url_seconds)

    async def UploadDocument(
        self,
        request_iterator: AsyncIterator[docs_pb2.UploadDocumentRequest],
        context: Context,
    ) -> docs_pb2.UploadDocumentResponse:
        document = await handlers.upload_document(
            uow=self._uow(),
            store=self._store,
            caller=caller(context, self._secret),
            parts=_parts(request_iterator),
            max_bytes=self._max_bytes,
            now=datetime.now(UTC),
        )
        return docs_pb2.UploadDocumentResponse(document=to_wire(document))

    async def GetDocument(
        self, request: docs_pb2.GetDocumentRequest, context: Context
    ) -> docs_pb2.GetDocumentResponse:
        document = await handlers.get_document(
            uow=self._uow(), caller=caller(context, self._secret), document_id=request.document_id
        )
        return docs_pb2.GetDocumentResponse(document=to_wire(document))

    async def GetDownloadUrl(
        self, request: docs_pb2.GetDownloadUrlRequest, context: Context
    ) -> docs_pb2.GetDownloadUrlResponse:
        link = await handlers.get_download_url(
            uow=self._uow(),
            store=self._store,
            caller=caller(context, self._secret),
            document_id=request.document_id,
            valid_for=self._url_validity,
            now=datetime.now(UTC),
        )
        return docs_pb2.GetDownloadUrlResponse(
            document=to_wire(link.document), url=link.url, expires_at=timestamp(link.expires_at)
        )
