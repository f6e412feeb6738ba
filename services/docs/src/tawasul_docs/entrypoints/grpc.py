"""DocsService over gRPC: translates wire messages to use-case calls and back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul_platform import errors
from tawasul_platform.authz import BENEFICIARIES, SIGNED_IN, Rule
from tawasul_platform.catalog import Catalog
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import caller
from tawasul_platform.i18n import Bilingual, Noun
from tawasul_platform.tls import peer_name

from tawasul_docs.app import handlers
from tawasul_docs.app.ports import ObjectStore, Scanner, UnitOfWork
from tawasul_docs.domain.model import Document, DocumentMetadata, State

_SECONDS = Noun("second", "seconds", "ثانية واحدة", "ثانيتان", "ثوانٍ", "ثانيةً", "ثانية")

Context = grpc.aio.ServicerContext[Any, Any]

# Applicants upload; an applicant or a reviewer of the request's department reads (the
# handlers check which document is whose).
ACCESS: dict[str, Rule] = {
    "UploadDocument": BENEFICIARIES,
    "GetDocument": SIGNED_IN,
    "GetDownloadUrl": SIGNED_IN,
}
PER_ACCOUNT = 4
# Who may hold a document (GetDocumentRequest.hold), by client certificate: intake, checking a
# submission or an answer about to name it. A beneficiary's own hold would keep an upload past
# its unattached lifetime for good, asked again every few days; it is ignored.
HOLDERS = frozenset({"intake"})


_STATE = {
    State.QUARANTINED: docs_pb2.DOCUMENT_STATE_QUARANTINED,
    State.CLEAN: docs_pb2.DOCUMENT_STATE_CLEAN,
    State.INFECTED: docs_pb2.DOCUMENT_STATE_INFECTED,
}


def to_wire(document: Document) -> docs_pb2.Document:
    return docs_pb2.Document(
        document_id=str(document.id),
        owner_id=document.owner_id,
        filename=document.filename,
        content_type=document.content_type.value,
        size_bytes=document.size_bytes,
        sha256=document.sha256,
        created_at=timestamp(document.created_at),
        state=_STATE[document.state],
        document_kind=document.document_kind,
    )


_CUT_SHORT = Bilingual(
    "the call's deadline passed before the upload ended", "انقضت مهلة الطلب قبل اكتمال رفع المستند"
)


async def _parts(
    messages: AsyncIterator[docs_pb2.UploadDocumentRequest], context: Context
) -> AsyncIterator[DocumentMetadata | bytes]:
    """The upload's parts, and the end of the stream only where the caller ended it: when
    the caller's deadline passes, grpc.aio ends the stream as if the caller had half-closed
    it and cancels the handler only a few milliseconds later, time enough to store a cut
    file as a whole one."""
    async for message in messages:
        if message.WhichOneof("part") == "metadata":
            m = message.metadata
            yield DocumentMetadata(
                filename=m.filename[:1000],
                declared_content_type=m.declared_content_type[:100],
                sub_service_code=m.sub_service_code[:100],
                document_kind=m.document_kind[:50],
                size_bytes=m.size_bytes,
            )
        else:
            # A message with neither part set is an empty chunk.
            yield message.chunk
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise errors.DeadlineExceeded(_CUT_SHORT)


class DocsServicer(docs_pb2_grpc.DocsServiceServicer):
    def __init__(
        self,
        *,
        uow: Callable[[], UnitOfWork],
        store: ObjectStore,
        scanner: Scanner,
        catalog: Catalog,
        max_document_bytes: int,
        download_url_seconds: int,
        max_concurrent_uploads: int,
        spool_dir: Path | None,
        upload_seconds: float = 120.0,
        max_concurrent_parses: int = 1,
        max_unattached: int = 50,
    ) -> None:
        self._uow = uow
        self._store = store
        self._scanner = scanner
        self._catalog = catalog
        self._max_bytes = max_document_bytes
        self._url_validity = timedelta(seconds=download_url_seconds)
        # Each upload holds a few chunks and one 5 MiB part in memory: the process takes this
        # many at a time, and the others wait, their bytes held back by gRPC's flow control.
        self._uploads = asyncio.Semaphore(max_concurrent_uploads)
        self._parses = asyncio.Semaphore(max_concurrent_parses)
        self._in_flight = 0
        self._spool_dir = spool_dir
        self._upload_seconds = upload_seconds
        self._max_unattached = max_unattached

    @property
    def uploads_in_flight(self) -> int:
        """Uploads this process is handling, those waiting for a slot included."""
        return self._in_flight

    async def UploadDocument(
        self,
        request_iterator: AsyncIterator[docs_pb2.UploadDocumentRequest],
        context: Context,
    ) -> docs_pb2.UploadDocumentResponse:
        who = caller()
        self._in_flight += 1
        try:
            async with (
                asyncio.timeout(self._upload_seconds) as deadline,
                # One account cannot take every slot, on this replica or any other.
                handlers.account_slot(
                    uow=self._uow(),
                    caller=who,
                    now=datetime.now(UTC),
                    hold_for=timedelta(seconds=self._upload_seconds),
                    limit=PER_ACCOUNT,
                ),
                self._uploads,
            ):
                document = await handlers.upload_document(
                    uow=self._uow(),
                    store=self._store,
                    scanner=self._scanner,
                    catalog=self._catalog,
                    caller=who,
                    parts=_parts(request_iterator, context),
                    default_max_bytes=self._max_bytes,
                    spool_dir=self._spool_dir,
                    now=datetime.now(UTC),
                    hold_for=timedelta(seconds=self._upload_seconds),
                    deadline=deadline,
                    parses=self._parses,
                    max_unattached=self._max_unattached,
                )
        except TimeoutError:
            if not deadline.expired():
                raise  # a dependency's timeout: an outage, answered UNAVAILABLE by the frame
            # Raised, not aborted here: the frame drains what a slow client still sends first,
            # or grpc.aio's client would report INTERNAL instead (grpc/grpc#36066).
            within = _SECONDS.count(round(self._upload_seconds))
            raise errors.DeadlineExceeded(
                Bilingual(
                    f"an upload must end within {within}",
                    f"يجب أن ينتهي رفع المستند خلال {within.ar}",
                )
            ) from None
        finally:
            self._in_flight -= 1
        return docs_pb2.UploadDocumentResponse(document=to_wire(document))

    async def GetDocument(
        self, request: docs_pb2.GetDocumentRequest, context: Context
    ) -> docs_pb2.GetDocumentResponse:
        document = await handlers.get_document(
            uow=self._uow(),
            caller=caller(),
            document_id=request.document_id,
            hold_at=datetime.now(UTC) if request.hold and peer_name(context) in HOLDERS else None,
        )
        return docs_pb2.GetDocumentResponse(document=to_wire(document))

    async def GetDownloadUrl(
        self, request: docs_pb2.GetDownloadUrlRequest, context: Context
    ) -> docs_pb2.GetDownloadUrlResponse:
        link = await handlers.get_download_url(
            uow=self._uow(),
            store=self._store,
            caller=caller(),
            document_id=request.document_id,
            valid_for=self._url_validity,
            now=datetime.now(UTC),
        )
        return docs_pb2.GetDownloadUrlResponse(
            document=to_wire(link.document), url=link.url, expires_at=timestamp(link.expires_at)
        )
