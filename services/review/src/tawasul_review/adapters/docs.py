"""Attachments' download links from the docs service over gRPC."""

from __future__ import annotations

import asyncio
from datetime import UTC

import grpc
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul_platform.deadlines import call_timeout
from tawasul_platform.downstream import downstream
from tawasul_platform.errors import FailedPrecondition, NotFound
from tawasul_platform.grpc import bearer

from tawasul_review.app.ports import Attachment

NOT_FOUND_RETRIES = 10
NOT_FOUND_PAUSE_SECONDS = 0.3


class GrpcDocuments:
    def __init__(self, channel: grpc.aio.Channel, *, deadline_seconds: float) -> None:
        self._stub = docs_pb2_grpc.DocsServiceStub(channel)
        self._deadline = deadline_seconds

    async def download_links(self, document_ids: tuple[str, ...], token: str) -> list[Attachment]:
        # Docs learns that a request's documents are this department's from the same routed
        # event review queued it from; for the moment it may lag, NOT_FOUND is asked again.
        for attempt in range(NOT_FOUND_RETRIES + 1):
            try:
                async with downstream("docs"):
                    answers = await self._fetch(document_ids, token)
                break
            except NotFound as exc:
                if attempt == NOT_FOUND_RETRIES:
                    raise FailedPrecondition("an attachment cannot be read yet") from exc
                await asyncio.sleep(NOT_FOUND_PAUSE_SECONDS)
        return [
            Attachment(
                document_id=a.document.document_id,
                filename=a.document.filename,
                content_type=a.document.content_type,
                size_bytes=a.document.size_bytes,
                download_url=a.url,
                url_expires_at=a.expires_at.ToDatetime(tzinfo=UTC),
            )
            for a in answers
        ]

    async def _fetch(
        self, document_ids: tuple[str, ...], token: str
    ) -> list[docs_pb2.GetDownloadUrlResponse]:
        return await asyncio.gather(
            *(
                self._stub.GetDownloadUrl(
                    docs_pb2.GetDownloadUrlRequest(document_id=d),
                    timeout=call_timeout(self._deadline),
                    metadata=bearer(token),
                )
                for d in document_ids
            )
        )
