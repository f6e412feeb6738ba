"""Checks attachments with the docs service over gRPC, as the beneficiary."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul_platform.deadlines import call_timeout
from tawasul_platform.downstream import downstream
from tawasul_platform.errors import NotFound
from tawasul_platform.grpc import bearer

from tawasul_intake.app.ports import DocumentInfo


class GrpcDocuments:
    def __init__(self, channel: grpc.aio.Channel, *, deadline_seconds: float) -> None:
        self._stub = docs_pb2_grpc.DocsServiceStub(channel)
        self._deadline = deadline_seconds

    async def describe(
        self, document_ids: tuple[uuid.UUID, ...], token: str, *, hold: bool
    ) -> dict[uuid.UUID, DocumentInfo]:
        found = await asyncio.gather(*(self._one(d, token, hold) for d in document_ids))
        return {d: info for d, info in zip(document_ids, found, strict=True) if info is not None}

    async def _one(self, document_id: uuid.UUID, token: str, hold: bool) -> DocumentInfo | None:
        try:
            async with downstream("docs"):
                answer = await self._stub.GetDocument(
                    # With hold, docs keeps it until the request's event attaches it; it takes
                    # that from intake's certificate only.
                    docs_pb2.GetDocumentRequest(document_id=str(document_id), hold=hold),
                    timeout=call_timeout(self._deadline),
                    metadata=bearer(token),
                )
        except NotFound:
            # Not uploaded (or not by this caller): the submission names that document as bad.
            return None
        document = answer.document
        return DocumentInfo(
            content_type=document.content_type,
            size_bytes=document.size_bytes,
            clean=document.state == docs_pb2.DOCUMENT_STATE_CLEAN,
            infected=document.state == docs_pb2.DOCUMENT_STATE_INFECTED,
            kind=document.document_kind,
        )
