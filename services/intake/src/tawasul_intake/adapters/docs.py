"""Checks attachments with the docs service over gRPC, as the beneficiary."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul_platform.errors import Unavailable
from tawasul_platform.grpc import bearer


class GrpcDocuments:
    def __init__(self, channel: grpc.aio.Channel, *, deadline_seconds: float) -> None:
        self._stub = docs_pb2_grpc.DocsServiceStub(channel)
        self._deadline = deadline_seconds

    async def missing(self, document_ids: tuple[uuid.UUID, ...], token: str) -> set[uuid.UUID]:
        found = await asyncio.gather(*(self._exists(d, token) for d in document_ids))
        return {d for d, exists in zip(document_ids, found, strict=True) if not exists}

    async def _exists(self, document_id: uuid.UUID, token: str) -> bool:
        try:
            await self._stub.GetDocument(
                docs_pb2.GetDocumentRequest(document_id=str(document_id)),
                timeout=self._deadline,
                metadata=bearer(token),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise Unavailable(f"docs service: {exc.code().name} {exc.details()}") from exc
        return True
