"""Docs' real gRPC server, built by its composition root, in-process on a real PostgreSQL.

Object storage and the malware scanner stand outside this tier: an in-memory bucket whose
upload task reads the upload's spool (nothing stored when the spool is aborted, Unavailable when
it is down), and a scanner that finds EICAR by content (test_scanner.py covers the real clamd).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import NamedTuple

import grpc
import pytest
import tawasul_docs
from alembic import command
from alembic.config import Config
from google.rpc import error_details_pb2
from PIL import Image
from pypdf import PdfWriter
from pypdf.actions import JavaScript
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul.events.v1 import events_pb2
from tawasul_devstack.clamav import EICAR, REPORTED_SIGNATURE
from tawasul_devstack.identity import DevIdentity, throwaway
from tawasul_devstack.journey import eventually, sample_pdf
from tawasul_devstack.pki import Pki
from tawasul_docs import bootstrap
from tawasul_docs.adapters import tables
from tawasul_docs.adapters.repository import DocsUnitOfWork, SqlUploadLeases
from tawasul_docs.app import handlers
from tawasul_docs.app.ports import Verdict
from tawasul_docs.app.spool import Spool, SpoolAborted
from tawasul_docs.domain.model import Placement
from tawasul_docs.entrypoints.grpc import DocsServicer
from tawasul_docs.settings import DocsSettings
from tawasul_platform.errors import InvalidArgument, Unavailable
from tawasul_platform.grpc import GrpcServer, bearer, field_violations, status_details
from tawasul_platform.identity import EMPLOYEE_ID_FORM, Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine, reviewer_recorded
from tawasul_platform.tls import open_channel
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    DOCUMENT_EVENTS,
    REQUEST_ROUTED,
    REQUEST_SUBMITTED,
    STAFF_REVIEWERS,
)

MIGRATIONS = Path(tawasul_docs.__file__).resolve().parent / "migrations"
IDENTITY = throwaway()
OWNER_ID = "1000000008"
OWNER = IDENTITY.token_for(Principal(OWNER_ID, Role.CITIZEN))
STRANGER = IDENTITY.token_for(Principal("1000000016", Role.CITIZEN))
REVIEWER = IDENTITY.token_for(Principal("E1001", Role.REVIEWER, frozenset({"passports"})))
PROBLEM = "passports.issue-renewal-problem"
CHUNK = 256 * 1024
MiB = 1024 * 1024
PDF = sample_pdf("Passport renewal: the photo is not shown")
CLEAN = docs_pb2.DOCUMENT_STATE_CLEAN
QUARANTINED = docs_pb2.DOCUMENT_STATE_QUARANTINED
INFECTED = docs_pb2.DOCUMENT_STATE_INFECTED


# --- stand-ins for object storage and the scanner -----------------------------------------------


class MemoryUpload:
    """What the store read of one upload's spool, the size it was told, and how the spool
    ended."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self.chunks: list[bytes] = []
        self.finished = False
        self.aborted = False


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: list[MemoryUpload] = []
        self.down = False
        self.hold: asyncio.Event | None = None
        self.storing: list[asyncio.Task[None]] = []

    def stream_to(self, key: str, spool: Spool, size: int | None) -> asyncio.Future[None]:
        """As with the adapter's SDK call in a thread, cancelling the awaiting task does not
        stop the storing."""
        upload = MemoryUpload(size)
        self.uploads.append(upload)

        async def store() -> None:
            if self.down:
                raise Unavailable("object storage cannot take the file now")
            try:
                async for chunk in spool.chunks():
                    upload.chunks.append(chunk)
            except SpoolAborted:
                upload.aborted = True  # the multipart upload is abandoned
                raise
            upload.finished = True
            if self.hold is not None:  # the last part is still on its way
                await self.hold.wait()
            self.objects[key] = b"".join(upload.chunks)

        self.storing.append(asyncio.ensure_future(store()))
        return asyncio.shield(self.storing[-1])

    async def copy(self, source: str, target: str, *, content_type: str) -> None:
        if self.down or source not in self.objects:
            raise Unavailable(f"object storage cannot copy {source} now")
        self.objects[target] = self.objects[source]

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        if self.down or key not in self.objects:
            raise Unavailable(f"object storage cannot read {key} now")
        data = self.objects[key]
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]

    async def delete(self, key: str) -> None:
        if self.down:
            raise Unavailable("object storage cannot delete now")
        self.objects.pop(key, None)

    async def delete_many(self, keys: list[str]) -> list[str]:
        for key in keys:
            await self.delete(key)
        return []

    async def presign_get(
        self, key: str, *, expires: timedelta, download_name: str, content_type: str
    ) -> str:
        seconds = int(expires.total_seconds())
        return f"https://files.test/documents/{key}?X-Amz-Expires={seconds}&name={download_name}"


class EicarScanner:
    def __init__(self) -> None:
        self.down = False
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    def _verdict(self, data: bytes) -> Verdict:
        if EICAR in data:
            return Verdict(clean=False, signature=REPORTED_SIGNATURE)
        return Verdict(clean=True)

    async def scan(self, chunks: AsyncIterator[bytes]) -> Verdict:
        if self.down:
            raise Unavailable("clamd cannot be reached")
        data = b"".join([chunk async for chunk in chunks])
        gate, self.gate = self.gate, None  # holds the next scan only, once it has the bytes
        if gate is not None:
            self.waiting.set()
            await gate.wait()
        return self._verdict(data)


# --- the server and its client ------------------------------------------------------------------


def request_stream(
    data: bytes,
    *,
    filename: str = "scan.pdf",
    declared: str = "application/pdf",
    sub_service: str = "",
    kind: str = "",
    size: int = 0,
    chunk: int = CHUNK,
) -> list[docs_pb2.UploadDocumentRequest]:
    metadata = docs_pb2.DocumentMetadata(
        filename=filename,
        declared_content_type=declared,
        sub_service_code=sub_service,
        document_kind=kind,
        size_bytes=size,
    )
    return [docs_pb2.UploadDocumentRequest(metadata=metadata)] + [
        docs_pb2.UploadDocumentRequest(chunk=data[start : start + chunk])
        for start in range(0, len(data), chunk)
    ]


async def sent(
    messages: list[docs_pb2.UploadDocumentRequest],
) -> AsyncIterator[docs_pb2.UploadDocumentRequest]:
    for message in messages:
        yield message


class Docs:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        engine: AsyncEngine,
        store: MemoryStore,
        scanner: EicarScanner,
        uow: Callable[[], DocsUnitOfWork],
        service: DocsServicer,
    ) -> None:
        self.channel = channel
        self.stub = docs_pb2_grpc.DocsServiceStub(channel)
        self.service = service
        self.engine = engine
        self.store = store
        self.scanner = scanner
        self.uow = uow
        self.subscriptions = bootstrap.subscriptions(uow)

    async def upload(
        self,
        data: bytes,
        token: str = OWNER,
        *,
        filename: str = "scan.pdf",
        declared: str = "application/pdf",
        sub_service: str = "",
        kind: str = "",
        size: int = 0,
        chunk: int = CHUNK,
    ) -> docs_pb2.Document:
        messages = request_stream(
            data,
            filename=filename,
            declared=declared,
            sub_service=sub_service,
            kind=kind,
            size=size,
            chunk=chunk,
        )
        return await self.send(messages, token)

    async def send(
        self, messages: list[docs_pb2.UploadDocumentRequest], token: str = OWNER, language: str = ""
    ) -> docs_pb2.Document:
        metadata = (*bearer(token), *((("accept-language", language),) if language else ()))
        answer = await self.stub.UploadDocument(sent(messages), timeout=10, metadata=metadata)
        return answer.document

    async def get(self, document_id: str, token: str = OWNER) -> docs_pb2.Document:
        answer = await self.stub.GetDocument(
            docs_pb2.GetDocumentRequest(document_id=document_id), timeout=5, metadata=bearer(token)
        )
        return answer.document

    async def link(self, document_id: str, token: str = OWNER) -> docs_pb2.GetDownloadUrlResponse:
        return await self.stub.GetDownloadUrl(
            docs_pb2.GetDownloadUrlRequest(document_id=document_id),
            timeout=5,
            metadata=bearer(token),
        )

    async def rows(self) -> dict[str, tuple[str, str]]:
        """Each stored document's state and object key, by id."""
        async with self.engine.connect() as conn:
            found = (await conn.execute(select(tables.documents))).all()
        return {str(row.id): (row.state, row.object_key) for row in found}

    async def route(self, document_id: str, department: str = "passports") -> uuid.UUID:
        """Routing put a request holding the document in `department`'s queue."""
        request_id = uuid.uuid4()
        await self.subscriptions.deliver(
            REQUEST_ROUTED, routed(request_id, department, document_id)
        )
        return request_id

    async def changes(self) -> list[tuple[str, str, int, str]]:
        """Docs' published events, in order: key, document, change, request."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(tables.outbox)
                    .where(tables.outbox.c.topic == DOCUMENT_EVENTS)
                    .order_by(tables.outbox.c.id)
                )
            ).all()
        out: list[tuple[str, str, int, str]] = []
        for row in rows:
            changed = events_pb2.Envelope.FromString(row.payload).document_changed
            out.append((row.key, changed.document_id, changed.change, changed.request_id))
        return out

    async def rescan(self) -> bool:
        return await handlers.rescan_quarantined(
            uow=self.uow(),
            store=self.store,
            scanner=self.scanner,
            now=datetime.now(UTC) + timedelta(hours=1),
        )


Serve = Callable[..., AbstractAsyncContextManager[Docs]]


@pytest.fixture
async def serve(database_url: str, tmp_path: Path) -> AsyncIterator[Serve]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = async_engine(database_url, pool_size=4)
    database = Database(engine.sync_engine)

    def uow() -> DocsUnitOfWork:
        return DocsUnitOfWork(database)

    @asynccontextmanager
    async def start(
        max_concurrent_uploads: int = 8,
        upload_seconds: float = 60.0,
        certificate: str | None = None,
        max_unattached: int = 50,
    ) -> AsyncIterator[Docs]:
        """With a `certificate` name, docs serves mutual TLS and is called with a client
        certificate of that name, as deployed (intake, the channels' gateway)."""
        spool = tmp_path / "spool"
        spool.mkdir(exist_ok=True)
        pki, tls = Pki(tmp_path / "pki"), certificate is not None
        if certificate is not None:
            pki.ensure(servers=["docs"], clients=[certificate])
        settings = DocsSettings(
            database_url=database_url,
            kafka_bootstrap="127.0.0.1:1",
            grpc_address="127.0.0.1:0",
            identity_issuers=IDENTITY.issuers(),
            s3_access_key="docs-test",
            s3_secret_key="docs-test-secret",
            s3_bucket="documents",
            clamd_address="127.0.0.1:1",
            max_concurrent_uploads=max_concurrent_uploads,
            upload_seconds=upload_seconds,
            spool_dir=spool,
            max_unattached_per_account=max_unattached,
            tls_cert_file=pki.cert_file("docs") if tls else None,
            tls_key_file=pki.key_file("docs") if tls else None,
            tls_ca_file=pki.ca_file if tls else None,
        )
        store, scanner = MemoryStore(), EicarScanner()
        service = bootstrap.servicer(settings, uow=uow, store=store, scanner=scanner)
        server: GrpcServer = bootstrap.grpc_server(settings, service)
        await server.start()
        await server.serving(True)
        channel = open_channel(
            f"127.0.0.1:{server.port}", None if certificate is None else pki.tls(certificate)
        )
        try:
            yield Docs(channel, engine, store, scanner, uow, service)
        finally:
            await channel.close()
            await server.stop(1)
        assert list(spool.iterdir()) == [], "an upload left its spool file behind"

    yield start
    await engine.dispose()


@pytest.fixture
async def docs(serve: Serve) -> AsyncIterator[Docs]:
    async with serve() as client:
        yield client


async def refused(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def javascript_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.add_open_action(JavaScript("app.alert(1)"))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def image(kind: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, kind)
    return out.getvalue()


# --- uploads ------------------------------------------------------------------------------------


async def test_a_clean_upload_is_stored_under_documents_with_its_detected_type(
    docs: Docs,
) -> None:
    data = sample_pdf("z" * (MiB + 12345))  # full chunks, and a short last one
    before = datetime.now(UTC)
    document = await docs.upload(data, filename="../../تقرير.jpg", declared="application/pdf")
    assert document.state == CLEAN
    assert uuid.UUID(document.document_id)
    assert (document.owner_id, document.filename) == (OWNER_ID, "تقرير.pdf")
    assert (document.content_type, document.size_bytes) == ("application/pdf", len(data))
    assert document.sha256 == hashlib.sha256(data).hexdigest()
    assert document.created_at.ToDatetime(tzinfo=UTC) >= before - timedelta(seconds=1)
    key = f"documents/{document.document_id}"
    assert docs.store.objects == {key: data}
    assert await docs.rows() == {document.document_id: ("clean", key)}
    assert await docs.get(document.document_id) == document


async def test_a_declared_size_reaches_storage(docs: Docs) -> None:
    data = sample_pdf("s" * (MiB + 7))
    document = await docs.upload(data, size=len(data))
    assert (document.state, document.size_bytes) == (CLEAN, len(data))
    assert docs.store.objects == {f"documents/{document.document_id}": data}
    assert [upload.size for upload in docs.store.uploads] == [len(data)]


async def test_an_image_for_a_sub_services_kind_keeps_the_kind_and_gets_its_extension(
    docs: Docs,
) -> None:
    document = await docs.upload(
        image(), filename="selfie.png", declared="image/jpg", sub_service=PROBLEM, kind="photo"
    )
    assert (document.state, document.content_type) == (CLEAN, "image/jpeg")
    assert (document.filename, document.document_kind) == ("selfie.jpg", "photo")


async def test_an_infected_upload_is_reported_infected_and_its_bytes_are_gone(docs: Docs) -> None:
    document = await docs.upload(sample_pdf(EICAR.decode()))
    assert document.state == INFECTED
    assert docs.store.objects == {}
    assert await docs.rows() == {
        document.document_id: ("infected", f"documents/{document.document_id}")
    }
    error = await refused(docs.link(document.document_id))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_scanner_down_leaves_the_upload_quarantined_until_a_rescan(docs: Docs) -> None:
    docs.scanner.down = True
    document = await docs.upload(PDF)
    assert document.state == QUARANTINED
    key = f"documents/{document.document_id}"
    assert docs.store.objects == {key: PDF}
    assert await docs.rows() == {document.document_id: ("quarantined", key)}

    error = await refused(docs.link(document.document_id))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await refused(docs.link(document.document_id, REVIEWER))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await refused(docs.get(document.document_id, REVIEWER))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (await docs.get(document.document_id)).state == QUARANTINED

    # The real repository's queue: still down, it stays; back up, it is scanned once.
    with pytest.raises(Unavailable):
        await docs.rescan()
    docs.scanner.down = False
    assert await docs.rescan() is True
    assert await docs.rescan() is False
    assert await docs.rows() == {
        document.document_id: ("clean", f"documents/{document.document_id}")
    }
    await docs.route(document.document_id)
    assert (await docs.get(document.document_id, REVIEWER)).state == CLEAN


class Meta(NamedTuple):
    declared: str = "application/pdf"
    sub_service: str = ""
    kind: str = ""
    size: int = 0


BAD_FILES: list[tuple[str, bytes, Meta, str, str]] = [
    (
        "shorter than declared",
        PDF,
        Meta(size=len(PDF) + 1),
        "metadata.size_bytes",
        f"{len(PDF) + 1} bytes declared, {len(PDF)} sent",
    ),
    (
        "longer than declared",
        PDF,
        Meta(size=len(PDF) - 1),
        "metadata.size_bytes",
        f"the upload carries more than {len(PDF) - 1} bytes",
    ),
    (
        "exe",
        b"MZ\x90\x00" + b"\x00" * 200,
        Meta(),
        "content",
        "only PDF or JPG files, detected by content",
    ),
    (
        "png",
        image("PNG"),
        Meta("image/png"),
        "content",
        "PNG files are not accepted here: only PDF or JPG",
    ),
    ("pdf with javascript", javascript_pdf(), Meta(), "content", "the PDF contains JavaScript"),
    ("empty", b"", Meta(), "content", "the file is empty"),
    (
        "truncated",
        PDF[: len(PDF) // 2],
        Meta(),
        "content",
        "the PDF is truncated or has data after its end",
    ),
    (
        "pdf behind html",
        b"<!DOCTYPE html><p>hi</p>\n" + PDF,
        Meta(),
        "content",
        "HTML or script content is not accepted",
    ),
    (
        "declared as png",
        PDF,
        Meta("image/png"),
        "declared_content_type",
        "the declared type does not match the content, which is PDF",
    ),
    (
        "a pdf as a photo",
        PDF,
        Meta("", PROBLEM, "photo"),
        "content",
        "PDF files are not accepted here: only JPG",
    ),
    (
        "a photo over 5 MiB",
        b"\xff\xd8\xff\xe0" + b"\x00" * (5 * MiB),
        Meta("", PROBLEM, "photo"),
        "size",
        f"the file exceeds the limit of {5 * MiB} bytes",
    ),
    (
        "a photo over 5 MiB, its size declared",
        b"\xff\xd8\xff\xe0" + b"\x00" * (5 * MiB),
        Meta("", PROBLEM, "photo", 5 * MiB + 4),
        "size",
        f"the file exceeds the limit of {5 * MiB} bytes",
    ),
    (
        "an unknown sub-service",
        PDF,
        Meta(sub_service="passports.unknown", kind="photo"),
        "metadata.sub_service_code",
        "not a sub-service of the catalog",
    ),
]


@pytest.mark.parametrize(
    ("data", "metadata", "field", "reason"),
    [pytest.param(d, m, f, r, id=name) for name, d, m, f, r in BAD_FILES],
)
async def test_a_bad_file_is_invalid_argument_with_its_field_and_leaves_nothing(
    docs: Docs, data: bytes, metadata: Meta, field: str, reason: str
) -> None:
    messages = request_stream(data, **metadata._asdict())
    error = await refused(docs.send(messages))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {field: reason}
    assert await docs.rows() == {}
    assert docs.store.objects == {}


async def test_a_refusal_comes_in_arabic_to_a_caller_asking_for_it(docs: Docs) -> None:
    messages = request_stream(b"<!DOCTYPE html><p>hi</p>\n" + PDF, **Meta()._asdict())
    error = await refused(docs.send(messages, language="ar"))
    status = status_details(error)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    (violation,) = bad.field_violations
    assert (violation.field, violation.description) == (
        "content",
        "HTML or script content is not accepted",
    )
    assert (violation.localized_message.locale, violation.localized_message.message) == (
        "ar",
        "محتوى HTML أو البرامج النصية غير مقبول",
    )
    assert await docs.rows() == {}


async def test_a_chunk_over_256_kib_is_refused(docs: Docs) -> None:
    data = sample_pdf("q" * (CHUNK + 100))
    error = await refused(docs.upload(data, chunk=CHUNK + 1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"chunk": f"chunks of at most {CHUNK} bytes"}
    assert await docs.rows() == {}
    assert docs.store.objects == {}
    assert [upload.aborted for upload in docs.store.uploads] == [True]
    # Exactly 256 KiB is fine.
    assert (await docs.upload(data, chunk=CHUNK)).state == CLEAN


async def test_the_metadata_must_come_first_and_only_once(docs: Docs) -> None:
    messages = request_stream(PDF)
    for order in ([*messages[1:], messages[0]], [messages[0], *messages], []):
        error = await refused(docs.send(order))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(error)) == {"metadata"}
    assert await docs.rows() == {}
    assert docs.store.objects == {}


async def test_storage_down_is_unavailable_and_leaves_no_row(docs: Docs) -> None:
    docs.store.down = True
    error = await refused(docs.upload(PDF))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert await docs.rows() == {}
    docs.store.down = False
    assert (await docs.upload(PDF)).state == CLEAN


async def test_only_an_authenticated_beneficiary_uploads(docs: Docs, tmp_path: Path) -> None:
    error = await refused(docs.upload(PDF, token=REVIEWER))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # Signed by a key the service was never given.
    forged = DevIdentity(tmp_path).token_for(Principal(OWNER_ID, Role.CITIZEN))
    error = await refused(docs.upload(PDF, token=forged))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # Signed, but naming no one an upload can be stored for (once INTERNAL, at the insert).
    for subject in ("7" * 65, "1000000008\x00"):
        odd = IDENTITY.token_for(Principal(subject, Role.ESTABLISHMENT))
        error = await refused(docs.upload(PDF, token=odd))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await docs.rows() == {}


# --- reading ------------------------------------------------------------------------------------


async def test_a_stranger_gets_not_found_for_a_document_and_its_link(docs: Docs) -> None:
    document = await docs.upload(PDF)
    error = await refused(docs.get(document.document_id, STRANGER))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await refused(docs.link(document.document_id, STRANGER))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await refused(docs.get(str(uuid.uuid4())))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await refused(docs.get("not-a-document"))
    assert field_violations(error) == {"document_id": "not a document id"}


async def test_a_clean_document_gets_a_short_lived_link(docs: Docs) -> None:
    document = await docs.upload(PDF, filename="جواز.pdf")
    await docs.route(document.document_id)
    before = datetime.now(UTC)
    answer = await docs.link(document.document_id, REVIEWER)
    assert answer.document == document
    assert answer.url.startswith(f"https://files.test/documents/documents/{document.document_id}?")
    assert "X-Amz-Expires=300" in answer.url
    expires = answer.expires_at.ToDatetime(tzinfo=UTC)
    assert before + timedelta(seconds=299) <= expires <= datetime.now(UTC) + timedelta(seconds=301)


# --- concurrency --------------------------------------------------------------------------------


def citizen(n: int) -> str:
    return IDENTITY.token_for(Principal(f"19{n:08d}", Role.CITIZEN))


async def test_uploads_beyond_the_process_cap_wait_for_a_slot(serve: Serve) -> None:
    async with serve(max_concurrent_uploads=1) as docs:
        first = docs.stub.UploadDocument(timeout=20, metadata=bearer(OWNER))
        messages = request_stream(PDF, chunk=100)
        for message in messages[:3]:
            await first.write(message)

        # The first upload holds the only slot once it has started storing.
        async def storing() -> bool | None:
            return True if docs.store.uploads else None

        await eventually(storing, within=5, what="the first upload storing")

        second = asyncio.ensure_future(docs.upload(PDF, token=STRANGER))

        async def both_taken() -> bool | None:
            return True if docs.service.uploads_in_flight == 2 else None

        # Taken in, the second can only be waiting for the slot: nothing of it reaches the store.
        await eventually(both_taken, within=5, what="the second upload taken in")
        assert len(docs.store.uploads) == 1
        assert not second.done()

        for message in messages[3:]:
            await first.write(message)
        await first.done_writing()
        assert (await first).document.state == CLEAN
        assert (await second).state == CLEAN
        assert len(await docs.rows()) == 2


async def test_one_account_cannot_take_every_slot(serve: Serve) -> None:
    async with serve(max_concurrent_uploads=8) as docs:
        held = [docs.stub.UploadDocument(timeout=20, metadata=bearer(OWNER)) for _ in range(4)]
        messages = request_stream(PDF, chunk=100)
        for call in held:
            await call.write(messages[0])
            await call.write(messages[1])

        async def all_flowing() -> bool | None:
            return True if len(docs.store.uploads) == 4 else None

        await eventually(all_flowing, within=5, what="four uploads in the store")
        error = await refused(docs.upload(PDF, token=OWNER))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await docs.upload(PDF, token=STRANGER)).state == CLEAN
        for call in held:
            for message in messages[2:]:
                await call.write(message)
            await call.done_writing()
            assert (await call).document.state == CLEAN


async def test_an_account_keeps_a_capped_number_of_documents_in_no_request(
    serve: Serve,
) -> None:
    async with serve(max_unattached=1) as docs:
        kept = await docs.upload(PDF)
        error = await refused(docs.upload(PDF))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details() == (
            "at most 1 document per account not yet in a request; name them in a request,"
            " or wait until they are removed"
        )
        assert set(await docs.rows()) == {kept.document_id}
        assert set(docs.store.objects) == {f"documents/{kept.document_id}"}
        await docs.upload(PDF, STRANGER)  # another account's own
        request_id = uuid.uuid4()
        await docs.subscriptions.deliver(REQUEST_SUBMITTED, submitted(request_id, kept.document_id))
        await docs.upload(PDF)  # the first joined a request


async def test_the_account_limit_holds_across_replicas(serve: Serve) -> None:
    async with serve() as one, serve() as other:
        held = [one.stub.UploadDocument(timeout=20, metadata=bearer(OWNER)) for _ in range(4)]
        messages = request_stream(PDF, chunk=100)
        for call in held:
            await call.write(messages[0])
            await call.write(messages[1])

        async def all_flowing() -> bool | None:
            return True if len(one.store.uploads) == 4 else None

        await eventually(all_flowing, within=5, what="four uploads on the first replica")
        error = await refused(other.upload(PDF, token=OWNER))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert other.store.uploads == []
        for call in held:
            for message in messages[2:]:
                await call.write(message)
            await call.done_writing()
            assert (await call).document.state == CLEAN
        assert (await other.upload(PDF, token=OWNER)).state == CLEAN


async def test_concurrent_uploads_within_the_cap_all_succeed(serve: Serve) -> None:
    async with serve(max_concurrent_uploads=8) as docs:
        files = [sample_pdf(f"document {n} " + "p" * 100_000) for n in range(8)]
        documents = await asyncio.gather(
            *(docs.upload(data, token=citizen(n)) for n, data in enumerate(files))
        )
        assert [d.state for d in documents] == [CLEAN] * 8
        assert {d.sha256 for d in documents} == {hashlib.sha256(f).hexdigest() for f in files}
        assert len(docs.store.objects) == 8


async def test_a_rescan_during_the_inline_scan_does_not_fail_the_upload(docs: Docs) -> None:
    gate = docs.scanner.gate = asyncio.Event()
    uploading = asyncio.ensure_future(docs.upload(PDF))
    await asyncio.wait_for(docs.scanner.waiting.wait(), 10)

    async def committed() -> bool | None:
        return True if await docs.rows() else None

    await eventually(committed, within=10, what="the upload's row")
    assert await docs.rescan() is True  # the loop's tick, while the upload is being scanned
    gate.set()
    document = await uploading
    assert document.state == CLEAN


async def test_a_deadline_passing_after_the_last_chunk_leaves_no_object(docs: Docs) -> None:
    docs.store.hold = asyncio.Event()
    error = await refused(
        docs.stub.UploadDocument(sent(request_stream(PDF)), timeout=1, metadata=bearer(OWNER))
    )
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    docs.store.hold.set()
    await asyncio.gather(*docs.store.storing, return_exceptions=True)

    async def cleaned_up() -> bool | None:
        gone = docs.service.uploads_in_flight == 0 and not docs.store.objects
        return True if gone else None

    # The clean-up is shielded from the cancellation and may finish after the handler has
    # let go of its slot, once the held part has landed: then the object goes.
    await eventually(cleaned_up, within=30, what="the cancelled upload's object to go")
    assert await docs.rows() == {}


async def test_a_message_past_the_chunk_size_is_refused_by_grpc_itself(docs: Docs) -> None:
    call = docs.stub.UploadDocument(timeout=10, metadata=bearer(OWNER))
    await call.write(request_stream(PDF)[0])
    await call.write(docs_pb2.UploadDocumentRequest(chunk=b"x" * (CHUNK + 16 * 1024)))
    await call.done_writing()
    error = await refused(call)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await docs.rows() == {}


async def test_a_stalled_upload_ends_at_the_server_deadline_and_leaves_nothing(
    serve: Serve,
) -> None:
    async with serve(upload_seconds=1.0) as docs:
        call = docs.stub.UploadDocument(timeout=20, metadata=bearer(OWNER))
        messages = request_stream(PDF, chunk=100)
        for message in messages[:3]:
            await call.write(message)
        # The client stalls: the server's own deadline ends the upload.
        error = await refused(call)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "within 1 second" in (error.details() or "")
        await asyncio.gather(*docs.store.storing, return_exceptions=True)
        assert await docs.rows() == {}
        assert docs.store.objects == {}


async def test_a_client_still_sending_at_the_server_deadline_hears_deadline_exceeded(
    serve: Serve,
) -> None:
    """Not INTERNAL: grpc.aio's client reports a call that ended while it was writing as
    INTERNAL, so the server reads what the client still sends before answering."""
    async with serve(upload_seconds=1.0) as docs:
        messages = request_stream(sample_pdf("z" * (3 * MiB)), chunk=64 * 1024)
        for _ in range(3):

            async def slowly() -> AsyncIterator[docs_pb2.UploadDocumentRequest]:
                for message in messages:
                    await asyncio.sleep(0.03)
                    yield message

            error = await refused(
                docs.stub.UploadDocument(slowly(), timeout=20, metadata=bearer(OWNER))
            )
            assert (error.code(), error.details()) == (
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "an upload must end within 1 second",
            )
        assert await docs.rows() == {}


async def test_a_dependencys_timeout_during_an_upload_is_an_outage_not_its_deadline(
    docs: Docs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg gives up connecting to a database that does not answer with a TimeoutError:
    UNAVAILABLE, as every other method answers an outage, not "an upload must end within"."""

    async def take(*args: object, **kwargs: object) -> bool:
        raise TimeoutError

    monkeypatch.setattr(SqlUploadLeases, "take", take)
    error = await refused(docs.upload(PDF))
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()


async def test_the_sweep_deletes_lapsed_upload_leases(docs: Docs) -> None:
    """Those a killed process left keep the account's national ID until the sweep's."""
    now = datetime.now(UTC)
    async with docs.uow() as uow:
        for owner, minutes in ((OWNER_ID, -1), ("1000000016", 0), ("2000000007", 1)):
            until = now + timedelta(minutes=minutes)
            await uow.leases.take(owner, uuid.uuid4(), now=now, until=until, limit=4)
        await uow.commit()
    sweep = partial(
        handlers.expire_unattached,
        uow=docs.uow(),
        store=docs.store,
        now=now,
        keep_for=timedelta(hours=72),
        batch=1,
    )
    assert [await sweep(), await sweep(), await sweep()] == [True, True, False]
    async with docs.engine.connect() as conn:
        left = (await conn.execute(select(tables.upload_leases.c.owner_id))).scalars().all()
    assert left == ["2000000007"]


async def test_the_server_deadline_passing_while_the_verdict_is_awaited_returns_the_document(
    serve: Serve,
) -> None:
    """Its row committed, the caller was told DEADLINE_EXCEEDED and never learnt its id."""
    # Long enough for the upload to reach its verdict on a busy machine, which then waits.
    async with serve(upload_seconds=3.0) as docs:
        docs.scanner.gate = asyncio.Event()  # the verdict never comes on its own
        document = await docs.upload(PDF)
        assert document.state == QUARANTINED
        key = f"documents/{document.document_id}"
        assert await docs.rows() == {document.document_id: ("quarantined", key)}
        assert docs.store.objects == {key: PDF}
        assert await docs.rescan() is True
        assert (await docs.get(document.document_id)).state == CLEAN


async def test_a_reviewer_of_another_department_gets_not_found(docs: Docs) -> None:
    document = await docs.upload(PDF)
    visas = IDENTITY.token_for(Principal("E2002", Role.REVIEWER, frozenset({"visas"})))
    for who in (REVIEWER, visas):
        error = await refused(docs.get(document.document_id, who))
        assert error.code() == grpc.StatusCode.NOT_FOUND
    request_id = await docs.route(document.document_id, "passports")
    assert (await docs.get(document.document_id, REVIEWER)).state == CLEAN
    error = await refused(docs.link(document.document_id, visas))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    # Transferred: routing routes the request again, with the documents it already has.
    await docs.subscriptions.deliver(REQUEST_ROUTED, routed(request_id, "visas"))
    assert (await docs.link(document.document_id, visas)).url
    error = await refused(docs.get(document.document_id, REVIEWER))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_department_reviews_record_takes_away_is_closed_here_too(docs: Docs) -> None:
    document = await docs.upload(PDF)
    await docs.route(document.document_id, "passports")
    both = IDENTITY.token_for(Principal("E3003", Role.REVIEWER, frozenset({"passports", "visas"})))
    assert (await docs.get(document.document_id, both)).state == CLEAN

    async def record(*events: events_pb2.Envelope) -> None:
        await docs.subscriptions.deliver(STAFF_REVIEWERS, *events)

    # An administrator's record keeps E3003 in visas only; another reviewer's changes nothing.
    await record(reviewer_recorded("E3003", {"visas"}, None, 1))
    await record(reviewer_recorded("E9009", {"visas"}, None, 1))
    for call in (docs.get(document.document_id, both), docs.link(document.document_id, both)):
        assert (await refused(call)).code() == grpc.StatusCode.NOT_FOUND
    assert (await docs.get(document.document_id, REVIEWER)).state == CLEAN
    # A supervisor of passports puts them back in it; the record of before, replayed, does
    # not take it away again.
    await record(reviewer_recorded("E3003", {"passports"}, {"passports"}, 2))
    assert (await docs.link(document.document_id, both)).url
    await record(reviewer_recorded("E3003", {"visas"}, None, 1))
    assert (await docs.get(document.document_id, both)).state == CLEAN
    # A record never widens the token: passports taken away by identity is gone.
    visas = IDENTITY.token_for(Principal("E3003", Role.REVIEWER, frozenset({"visas"})))
    assert (await refused(docs.get(document.document_id, visas))).code() == (
        grpc.StatusCode.NOT_FOUND
    )


async def test_a_record_that_is_not_a_reviewers_is_refused(docs: Docs) -> None:
    bad = reviewer_recorded("E3003", {"visas"}, None, 1)
    bad.reviewer_recorded.reviewer_id = "not an id!"
    with pytest.raises(InvalidArgument) as caught:
        await docs.subscriptions.deliver(STAFF_REVIEWERS, bad)
    assert caught.value.violations == {"reviewer_id": EMPLOYEE_ID_FORM}


async def test_a_placement_older_than_one_applied_leaves_the_documents_where_they_are(
    docs: Docs,
) -> None:
    """Routing's placement from before a transfer, replayed from the dead letters (or late),
    would give the documents back to the department the request left."""
    document = await docs.upload(PDF)
    visas = IDENTITY.token_for(Principal("E2002", Role.REVIEWER, frozenset({"visas"})))
    request_id = uuid.uuid4()

    async def sees(token: str) -> bool:
        try:
            await docs.get(document.document_id, token)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return False
        return True

    async def readers() -> tuple[bool, bool, int]:
        """Whether passports' and visas' reviewers read the document; the placement kept."""
        async with docs.engine.connect() as conn:
            row = (await conn.execute(select(tables.request_departments))).one()
        return await sees(REVIEWER), await sees(visas), row.sequence

    async def place(*events: events_pb2.Envelope) -> None:
        await docs.subscriptions.deliver(REQUEST_ROUTED, *events)

    await place(routed(request_id, "passports", document.document_id, sequence=1))
    await place(routed(request_id, "visas", sequence=2))
    await place(routed(request_id, "passports", document.document_id, sequence=1))
    await place(routed(request_id, "passports", sequence=2))
    assert await readers() == (False, True, 2)
    # A poll's apply in order: a later one moves them, an older one after it does not.
    await place(
        routed(request_id, "passports", sequence=3), routed(request_id, "visas", sequence=2)
    )
    assert await readers() == (True, False, 3)
    # One from before routing counted them (0) applies as it comes.
    await place(routed(request_id, "visas"))
    assert await readers() == (False, True, 3)


async def test_a_polls_placements_apply_in_order_once_each(docs: Docs) -> None:
    moved, stays = await docs.upload(PDF), await docs.upload(PDF)
    visas = IDENTITY.token_for(Principal("E2002", Role.REVIEWER, frozenset({"visas"})))
    request_id, other, empty = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = routed(request_id, "passports", moved.document_id)
    poll = [
        first,
        routed(other, "passports", stays.document_id),
        routed(empty, "visas"),
        # Transferred within the same poll, then the first event redelivered in it.
        routed(request_id, "visas"),
        first,
    ]
    await docs.subscriptions.deliver(REQUEST_ROUTED, *poll)
    assert (await docs.link(moved.document_id, visas)).url
    error = await refused(docs.get(moved.document_id, REVIEWER))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (await docs.get(stays.document_id, REVIEWER)).state == CLEAN
    async with docs.engine.connect() as conn:
        found = await conn.execute(select(tables.request_departments))
        placed = {row.request_id: row.department for row in found}
    assert placed == {request_id: "visas", other: "passports", empty: "visas"}


# --- events, attachment and expiry --------------------------------------------------------------


STORED = events_pb2.DOCUMENT_CHANGE_STORED
SCANNED_CLEAN = events_pb2.DOCUMENT_CHANGE_CLEAN
SCANNED_INFECTED = events_pb2.DOCUMENT_CHANGE_INFECTED
ATTACHED = events_pb2.DOCUMENT_CHANGE_ATTACHED
REMOVED = events_pb2.DOCUMENT_CHANGE_REMOVED


def routed(
    request_id: uuid.UUID, department: str, *document_ids: str, sequence: int = 0
) -> events_pb2.Envelope:
    """Routing's placement of a request holding `document_ids` in `department`'s queue, its
    decision `sequence` on the request (0: from before routing counted them)."""
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.routed",
        request_id=str(request_id),
        request_routed=events_pb2.RequestRouted(
            request_id=str(request_id),
            department_code=department,
            document_ids=list(document_ids),
            sequence=sequence,
        ),
    )


def submitted(request_id: uuid.UUID, *document_ids: str) -> events_pb2.Envelope:
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        request_id=str(request_id),
        request_submitted=events_pb2.RequestSubmitted(
            request_id=str(request_id), document_ids=list(document_ids)
        ),
    )


async def test_each_step_is_published_keyed_by_the_document(docs: Docs) -> None:
    clean = await docs.upload(PDF)
    infected = await docs.upload(sample_pdf("x", comment=EICAR))
    error = await refused(docs.upload(javascript_pdf()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    changes = await docs.changes()
    a, b = clean.document_id, infected.document_id
    assert changes[:4] == [
        (a, a, STORED, ""),
        (a, a, SCANNED_CLEAN, ""),
        (b, b, STORED, ""),
        (b, b, SCANNED_INFECTED, ""),
    ]
    (rejected,) = changes[4:]
    assert rejected[2] == events_pb2.DOCUMENT_CHANGE_REJECTED
    assert rejected[1] not in await docs.rows()


async def test_a_submitted_request_attaches_its_documents_once(docs: Docs) -> None:
    document = await docs.upload(PDF)
    request_id = uuid.uuid4()
    event = submitted(request_id, document.document_id, str(uuid.uuid4()))
    await docs.subscriptions.deliver(REQUEST_SUBMITTED, event)
    await docs.subscriptions.deliver(REQUEST_SUBMITTED, event)  # redelivered
    # Routing's event for the same request adds nothing; for another request, it attaches.
    await docs.subscriptions.deliver(
        REQUEST_ROUTED, routed(request_id, "passports", document.document_id)
    )
    other = await docs.route(document.document_id)
    attached = [c for c in await docs.changes() if c[2] == ATTACHED]
    d = document.document_id
    assert attached == [(d, d, ATTACHED, str(request_id)), (d, d, ATTACHED, str(other))]


def answered(request_id: uuid.UUID, *document_ids: str) -> events_pb2.Envelope:
    """The beneficiary's answer to an information request, with `document_ids`."""
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.answered",
        request_id=str(request_id),
        request_answered=events_pb2.RequestAnswered(
            request_id=str(request_id), document_ids=list(document_ids)
        ),
    )


async def test_an_answers_documents_join_its_request_in_its_department(docs: Docs) -> None:
    photo = await docs.upload(PDF)
    request_id = await docs.route((await docs.upload(PDF)).document_id, "passports")
    answer = answered(request_id, photo.document_id)
    followed = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        request_followed_up=events_pb2.RequestFollowedUp(request_id=str(request_id)),
    )
    await docs.subscriptions.deliver(APPLICANT_ACTIONS, followed, answer)
    assert (await docs.get(photo.document_id, REVIEWER)).state == CLEAN
    d = photo.document_id
    assert [c for c in await docs.changes() if c[2] == ATTACHED and c[1] == d] == [
        (d, d, ATTACHED, str(request_id))
    ]


async def test_an_answer_before_routings_event_joins_the_department_it_is_routed_to(
    docs: Docs,
) -> None:
    """Docs reads the applicant's actions and routing's events apart: either may lag."""
    first, photo = await docs.upload(PDF), await docs.upload(PDF)
    request_id = uuid.uuid4()
    await docs.subscriptions.deliver(APPLICANT_ACTIONS, answered(request_id, photo.document_id))
    error = await refused(docs.get(photo.document_id, REVIEWER))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    await docs.subscriptions.deliver(
        REQUEST_ROUTED, routed(request_id, "passports", first.document_id)
    )
    for document in (first, photo):
        assert (await docs.get(document.document_id, REVIEWER)).state == CLEAN
    d = photo.document_id
    assert [c for c in await docs.changes() if c[2] == ATTACHED and c[1] == d] == [
        (d, d, ATTACHED, str(request_id))
    ]


async def waits_on_a_lock(engine: AsyncEngine) -> bool | None:
    """Whether a session of the database waits on a row another transaction holds."""
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
    return True if waiting else None


async def test_a_placement_committing_while_an_answer_is_applied_grants_its_documents(
    docs: Docs,
) -> None:
    """The answer finds no department and routing's transaction does not see the answer's
    documents yet: whichever comes second waits for the first, then sees what it did."""
    first, photo = await docs.upload(PDF), await docs.upload(PDF)
    request_id = uuid.uuid4()
    uow = docs.uow()
    async with uow:
        assert await uow.claim_event("docs", str(uuid.uuid4()))
        await uow.documents.attach(request_id, (uuid.UUID(photo.document_id),), datetime.now(UTC))
        await uow.access.grant_attached(request_id)
        routing = asyncio.create_task(
            docs.subscriptions.deliver(
                REQUEST_ROUTED, routed(request_id, "passports", first.document_id)
            )
        )
        await eventually(partial(waits_on_a_lock, docs.engine), what="routing to wait")
        assert not routing.done()
        await uow.commit()
    await routing
    for document in (first, photo):
        assert (await docs.get(document.document_id, REVIEWER)).state == CLEAN


@pytest.mark.parametrize("held", ["answer", "transfer"])
async def test_an_answer_applied_while_its_request_is_transferred_follows_it(
    docs: Docs, held: str
) -> None:
    """`held` is applied first and holds its transaction open while the other waits. The
    request came with no documents: its department's row is all the two have in common."""
    photo, request_id = await docs.upload(PDF), uuid.uuid4()
    await docs.subscriptions.deliver(REQUEST_ROUTED, routed(request_id, "passports"))
    visas = IDENTITY.token_for(Principal("E2002", Role.REVIEWER, frozenset({"visas"})))
    uow = docs.uow()
    async with uow:
        if held == "answer":
            assert await uow.claim_event("docs", str(uuid.uuid4()))
            photo_id = uuid.UUID(photo.document_id)
            await uow.documents.attach(request_id, (photo_id,), datetime.now(UTC))
            await uow.access.grant_attached(request_id)
            topic, event = REQUEST_ROUTED, routed(request_id, "visas")
        else:
            await uow.access.grant([Placement(request_id, "visas", ())])
            topic, event = APPLICANT_ACTIONS, answered(request_id, photo.document_id)
        other = asyncio.create_task(docs.subscriptions.deliver(topic, event))
        await eventually(partial(waits_on_a_lock, docs.engine), what="the other to wait")
        assert not other.done()
        await uow.commit()
    await other
    assert (await docs.get(photo.document_id, visas)).state == CLEAN
    error = await refused(docs.get(photo.document_id, REVIEWER))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_submitted_event_that_is_not_one_is_refused(docs: Docs) -> None:
    with pytest.raises(InvalidArgument):
        await docs.subscriptions.deliver(
            REQUEST_SUBMITTED, events_pb2.Envelope(event_id=str(uuid.uuid4()))
        )


async def test_unattached_documents_expire_from_the_database_and_the_bucket(docs: Docs) -> None:
    kept, forgotten = await docs.upload(PDF), await docs.upload(PDF)
    await docs.subscriptions.deliver(REQUEST_SUBMITTED, submitted(uuid.uuid4(), kept.document_id))
    later = datetime.now(UTC) + timedelta(hours=72, seconds=1)
    expire = partial(
        handlers.expire_unattached,
        uow=docs.uow(),
        store=docs.store,
        now=later,
        keep_for=timedelta(hours=72),
    )
    assert not await expire()
    assert set(await docs.rows()) == {kept.document_id}
    assert set(docs.store.objects) == {f"documents/{kept.document_id}"}
    f = forgotten.document_id
    assert (await docs.changes())[-1] == (f, f, REMOVED, "")
    error = await refused(docs.get(f))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert not await expire()  # nothing left to expire


async def test_objects_storage_could_not_delete_at_expiry_go_with_a_later_sweep(
    docs: Docs,
) -> None:
    documents = [await docs.upload(PDF) for _ in range(3)]
    expire = partial(
        handlers.expire_unattached,
        uow=docs.uow(),
        store=docs.store,
        now=datetime.now(UTC) + timedelta(hours=72, seconds=1),
        keep_for=timedelta(hours=72),
        batch=2,
    )
    docs.store.down = True
    assert not await expire()  # stopped for the outage, though the batch was full
    assert len(await docs.rows()) == 1
    assert not await expire()
    assert len(await docs.rows()) == 1
    async with docs.engine.connect() as conn:
        recorded = set((await conn.execute(select(tables.object_deletions.c.key))).scalars())
    gone = [d.document_id for d in documents if d.document_id not in await docs.rows()]
    assert recorded == {f"{prefix}/{d}" for d in gone for prefix in ("documents", "quarantine")}
    docs.store.down = False
    while await expire():
        pass
    assert await docs.rows() == {}
    assert docs.store.objects == {}
    async with docs.engine.connect() as conn:
        assert (await conn.execute(select(tables.object_deletions))).all() == []


async def test_objects_to_delete_wait_their_turn_and_back_off_in_postgresql(docs: Docs) -> None:
    """An upload's object waits for its row; one storage refused waits 1, 2, 4... minutes, up
    to an hour; recording one again makes it due at once."""
    now = datetime.now(UTC) + timedelta(seconds=5)  # recorded ones are due by then
    minute = timedelta(minutes=1)

    async def due(at: datetime) -> list[str]:
        async with docs.uow() as uow:
            return await uow.deletions.take(10, now=at)  # not committed: only read

    async def refuse(at: datetime) -> None:
        async with docs.uow() as uow:
            await uow.deletions.refused(["documents/refused"], now=at)
            await uow.commit()

    async with docs.uow() as uow:
        await uow.deletions.intend("documents/uploading", until=now + 5 * minute)
        await uow.deletions.intend("documents/stored", until=now + 5 * minute)
        await uow.deletions.add(["documents/refused"])
        await uow.commit()
    assert await due(now + 4 * minute) == ["documents/refused"]
    async with docs.uow() as uow:
        assert await uow.deletions.keep("documents/stored")
        assert not await uow.deletions.keep("documents/never")
        await uow.commit()
    assert await due(now + 5 * minute) == ["documents/refused", "documents/uploading"]
    async with docs.uow() as uow:
        await uow.deletions.done(["documents/uploading"])
        await uow.commit()
    for waited in (1, 2, 4, 8, 16, 32, 60, 60):
        await refuse(now)
        assert await due(now + (waited * minute) - timedelta(seconds=1)) == []
        assert await due(now + waited * minute) == ["documents/refused"]
    async with docs.uow() as uow:
        await uow.deletions.add(["documents/refused"])
        await uow.commit()
    assert "documents/refused" in await due(datetime.now(UTC))


async def test_a_row_that_commits_while_the_sweep_deletes_its_object_is_refused(
    docs: Docs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload stalled until well past its time (its record due): the sweep has read the
    record and is deleting the object when the row reaches its commit. Kept, the row would
    point to a deleted object; it is refused, and the caller uploads again."""
    docs.store.hold = asyncio.Event()  # the upload waits before its row
    uploading = asyncio.ensure_future(docs.upload(PDF))

    async def stored() -> bool | None:
        return True if docs.store.uploads and docs.store.uploads[0].finished else None

    await eventually(stored, within=10, what="the upload's bytes")
    deleting, resume = asyncio.Event(), asyncio.Event()
    real = docs.store.delete_many

    async def delete_many(keys: list[str]) -> list[str]:
        deleting.set()
        await resume.wait()
        return await real(keys)

    monkeypatch.setattr(docs.store, "delete_many", delete_many)
    sweeping = asyncio.ensure_future(
        handlers.expire_unattached(
            uow=docs.uow(),
            store=docs.store,
            now=datetime.now(UTC) + timedelta(hours=2),
            keep_for=timedelta(hours=72),
        )
    )
    await asyncio.wait_for(deleting.wait(), 10)
    docs.store.hold.set()  # the row reaches its commit while the object goes
    error = await refused(uploading)
    resume.set()
    assert not await sweeping
    assert (error.code(), error.details()) == (
        grpc.StatusCode.UNAVAILABLE,
        "the upload took too long to record; upload the file again",
    )
    assert await docs.rows() == {}
    assert docs.store.objects == {}
    async with docs.engine.connect() as conn:
        assert (await conn.execute(select(tables.object_deletions))).all() == []


async def test_a_record_a_row_keeps_is_not_taken_and_one_taken_is_not_kept(docs: Docs) -> None:
    """The row's transaction and the sweep's take turns on the record, whichever comes first."""
    now = datetime.now(UTC)
    async with docs.uow() as uow:
        for key in ("documents/kept", "documents/taken"):
            await uow.deletions.intend(key, until=now)
        await uow.commit()
    async with docs.uow() as row, docs.uow() as sweep:
        assert await row.deletions.keep("documents/kept")  # not committed yet
        assert await sweep.deletions.take(10, now=now) == ["documents/taken"]
        await sweep.commit()
        assert not await row.deletions.keep("documents/taken")
        await row.commit()
    async with docs.uow() as uow:
        assert await uow.deletions.take(10, now=now) == ["documents/taken"]


@pytest.fixture
async def intake(serve: Serve) -> AsyncIterator[Docs]:
    """Docs called as intake calls it: with intake's client certificate."""
    async with serve(certificate="intake") as client:
        yield client


async def test_a_document_checked_for_a_request_just_before_it_expired_stays_for_it(
    intake: Docs,
) -> None:
    """Intake checks a document uploaded almost 72 hours ago when the request is submitted;
    docs attaches it only when it reads the submitted event, later. The sweep running in
    between must not remove it: the request would lack it for good (its reviewer's links
    never come). Intake's check holds it a full unattached lifetime from then."""
    docs = intake
    held, other = await docs.upload(PDF), await docs.upload(PDF)
    now = datetime.now(UTC)
    async with docs.engine.begin() as conn:
        await conn.execute(
            update(tables.documents).values(
                created_at=now - timedelta(hours=72) + timedelta(minutes=1)
            )
        )
    await docs.stub.GetDocument(
        docs_pb2.GetDocumentRequest(document_id=held.document_id, hold=True),
        timeout=5,
        metadata=bearer(OWNER),
    )
    keep = timedelta(hours=72)
    sweep = partial(handlers.expire_unattached, uow=docs.uow(), store=docs.store, keep_for=keep)
    assert not await sweep(now=now + timedelta(minutes=2))
    assert set(await docs.rows()) == {held.document_id}
    request_id = uuid.uuid4()
    await docs.subscriptions.deliver(REQUEST_SUBMITTED, submitted(request_id, held.document_id))
    h = held.document_id
    assert (h, h, ATTACHED, str(request_id)) in await docs.changes()
    assert not await sweep(now=now + timedelta(days=30))
    assert set(await docs.rows()) == {h}
    assert f"documents/{other.document_id}" not in docs.store.objects


async def test_a_held_document_that_joins_no_request_expires_a_lifetime_after_its_hold(
    intake: Docs,
) -> None:
    # The submission that checked it failed, or named it twice: nothing attaches it.
    docs = intake
    document = await docs.upload(PDF)
    now = datetime.now(UTC)
    await docs.stub.GetDocument(
        docs_pb2.GetDocumentRequest(document_id=document.document_id, hold=True),
        timeout=5,
        metadata=bearer(OWNER),
    )
    keep = timedelta(hours=72)
    sweep = partial(handlers.expire_unattached, uow=docs.uow(), store=docs.store, keep_for=keep)
    assert not await sweep(now=now + keep - timedelta(minutes=1))
    assert set(await docs.rows()) == {document.document_id}
    assert not await sweep(now=now + keep + timedelta(minutes=1))
    assert await docs.rows() == {}


@pytest.mark.parametrize("certificate", ["gateway", None])
async def test_only_intake_holds_a_document(serve: Serve, certificate: str | None) -> None:
    """A beneficiary's own hold (through the channels' gateway, or on a plaintext connection)
    is ignored: asked again every few days, it kept an upload that joined no request for good,
    past its unattached lifetime (docs/retention.md)."""
    async with serve(certificate=certificate) as docs:
        document = await docs.upload(PDF)
        keep = timedelta(hours=72)
        for _ in range(3):  # asked every few days
            answer = await docs.stub.GetDocument(
                docs_pb2.GetDocumentRequest(document_id=document.document_id, hold=True),
                timeout=5,
                metadata=bearer(OWNER),
            )
            assert answer.document == document
        async with docs.engine.connect() as conn:
            assert await conn.scalar(select(tables.documents.c.held_at)) is None
        sweep = partial(handlers.expire_unattached, uow=docs.uow(), store=docs.store, keep_for=keep)
        assert not await sweep(now=datetime.now(UTC) + keep + timedelta(minutes=1))
        assert await docs.rows() == {}


async def test_only_whoever_reads_a_document_holds_it(intake: Docs) -> None:
    docs = intake
    document = await docs.upload(PDF)
    error = await refused(
        docs.stub.GetDocument(
            docs_pb2.GetDocumentRequest(document_id=document.document_id, hold=True),
            timeout=5,
            metadata=bearer(STRANGER),
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    async with docs.engine.connect() as conn:
        held = await conn.scalar(select(tables.documents.c.held_at))
    assert held is None


def alembic(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


async def test_an_answer_waiting_for_its_placement_does_not_stop_a_rollback(
    docs: Docs, database_url: str
) -> None:
    """0006's downgrade drops the requests held without a department (0005 allows none); the
    answer's documents stay attached to the request."""
    photo, request_id = await docs.upload(PDF), uuid.uuid4()
    await docs.subscriptions.deliver(APPLICANT_ACTIONS, answered(request_id, photo.document_id))
    await asyncio.to_thread(command.downgrade, alembic(database_url), "0005")
    async with docs.engine.connect() as conn:
        # 0005's columns: later ones are gone.
        placed = tables.request_departments.c
        held = (await conn.execute(select(placed.request_id, placed.department))).all()
        attached = (await conn.execute(select(tables.attachments.c.request_id))).scalars().all()
    assert (held, attached) == ([], [request_id])
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)


async def test_documents_routed_before_attachments_were_recorded_stay_with_their_request(
    serve: Serve, database_url: str
) -> None:
    """Revision 0004 began recording attachments, and expiring documents without one, for
    none routed before it: 0006 records them."""
    await asyncio.to_thread(command.downgrade, alembic(database_url), "0003")  # `serve` was at head
    routed_id, stray_id, request_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    long_ago = datetime.now(UTC) - timedelta(days=30)
    engine = async_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        for document_id in (routed_id, stray_id):
            await conn.execute(
                text(
                    "INSERT INTO documents (id, owner_id, filename, content_type, size_bytes,"
                    " sha256, object_key, created_at) VALUES (:id, :owner, 'scan.pdf',"
                    " 'application/pdf', 1, :sha, :key, :at)"
                ),
                {
                    "id": document_id,
                    "owner": OWNER_ID,
                    "sha": "0" * 64,
                    "key": f"documents/{document_id}",
                    "at": long_ago,
                },
            )
        await conn.execute(
            text("INSERT INTO request_departments VALUES (:request, 'passports')"),
            {"request": request_id},
        )
        await conn.execute(
            text("INSERT INTO document_access VALUES (:document, :request, 'passports')"),
            {"document": routed_id, "request": request_id},
        )
    await engine.dispose()
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    async with serve() as docs:
        visas = IDENTITY.token_for(Principal("E2002", Role.REVIEWER, frozenset({"visas"})))
        expire = handlers.expire_unattached(
            uow=docs.uow(), store=docs.store, now=datetime.now(UTC), keep_for=timedelta(hours=72)
        )
        assert not await expire
        assert set(await docs.rows()) == {str(routed_id)}
        assert (await docs.get(str(routed_id), REVIEWER)).state == CLEAN
        await docs.subscriptions.deliver(REQUEST_ROUTED, routed(request_id, "visas"))
        assert (await docs.get(str(routed_id), visas)).state == CLEAN


async def test_a_message_whose_bytes_are_not_a_chunk_is_refused_and_nothing_kept(
    docs: Docs,
) -> None:
    # No serializer: the bytes go as they are.
    raw: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = docs.channel.stream_unary(
        "/tawasul.docs.v1.DocsService/UploadDocument"
    )

    async def parts() -> AsyncIterator[bytes]:
        yield request_stream(PDF)[0].SerializeToString()
        yield b"\xff\xff\xff not a protobuf message"

    error = await refused(raw(parts(), timeout=10, metadata=bearer(OWNER)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {
        "request": "the request's bytes are not a valid message of this method"
    }
    await asyncio.gather(*docs.store.storing, return_exceptions=True)
    assert await docs.rows() == {}
    assert docs.store.objects == {}


async def test_refusals_reach_a_client_still_sending_as_the_server_s_status(docs: Docs) -> None:
    """A refusal made before the client has sent its last chunk (its metadata, content that
    is no PDF, a caller who may not upload) is answered once the client has: grpc.aio's
    client reports a call that ended while it was still writing as INTERNAL, not as the
    server's status (grpc/grpc#36066). Without the platform's drain, the first of these
    came back INTERNAL."""
    body = sample_pdf("z" * (3 * MiB))
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    cases = [
        (request_stream(body, sub_service="no.such-service"), OWNER, invalid),
        (request_stream(body, filename="scan\x00.pdf"), OWNER, invalid),
        (request_stream(body, declared="image/jpeg"), OWNER, invalid),
        (request_stream(body), REVIEWER, grpc.StatusCode.PERMISSION_DENIED),
    ]
    for _ in range(5):
        for n, (messages, token, code) in enumerate(cases):
            error = await refused(docs.send(messages, token))
            assert (n, error.code()) == (n, code), error.details()
    assert await docs.rows() == {}
    assert docs.store.objects == {}
