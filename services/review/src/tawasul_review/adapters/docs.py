"""Attachments' download links from the docs service over gRPC."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC

import grpc
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul_platform.deadlines import call_timeout
from tawasul_platform.downstream import downstream
from tawasul_platform.errors import NotFound
from tawasul_platform.grpc import bearer

from tawasul_review.app.ports import Attachment

log = logging.getLogger(__name__)

NOT_FOUND_RETRIES = 10
NOT_FOUND_PAUSE_SECONDS = 0.3


class GrpcDocuments:
    def __init__(self, channel: grpc.aio.Channel, *, deadline_seconds: float) -> None:
        self._stub = docs_pb2_grpc.DocsServiceStub(channel)
        self._deadline = deadline_seconds

    async def download_links(self, document_ids: tuple[str, ...], token: str) -> list[Attachment]:
        # Docs learns that a request's documents are this department's from the same routed
        # event review queued it from; for the moment it may lag, NOT_FOUND is asked again.
        # A document still not found after that is listed without its link: the rest of the
        # case is the reviewer's to read all the same.
        given: dict[str, Attachment] = {}
        wanted = list(document_ids)
        for attempt in range(NOT_FOUND_RETRIES + 1):
            answers = await asyncio.gather(
                *(self._link(d, token) for d in wanted), return_exceptions=True
            )
            for document_id, answer in zip(wanted, answers, strict=True):
                if isinstance(answer, BaseException) and not isinstance(answer, NotFound):
                    raise answer
                if isinstance(answer, Attachment):
                    given[document_id] = answer
            wanted = [d for d in wanted if d not in given]
            if not wanted:
                break
            if attempt < NOT_FOUND_RETRIES:
                await asyncio.sleep(NOT_FOUND_PAUSE_SECONDS)
        for document_id in wanted:
            log.warning(
                "docs does not give document %s (NOT_FOUND): listed without its link", document_id
            )
        return [given.get(d) or Attachment.not_given(d) for d in document_ids]

    async def _link(self, document_id: str, token: str) -> Attachment:
        async with downstream("docs"):
            a = await self._stub.GetDownloadUrl(
                docs_pb2.GetDownloadUrlRequest(document_id=document_id),
                timeout=call_timeout(self._deadline),
                metadata=bearer(token),
            )
        return Attachment(
            document_id=a.document.document_id,
            filename=a.document.filename,
            content_type=a.document.content_type,
            size_bytes=a.document.size_bytes,
            download_url=a.url,
            url_expires_at=a.expires_at.ToDatetime(tzinfo=UTC),
            kind=a.document.document_kind,
        )
