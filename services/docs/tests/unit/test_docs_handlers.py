"""Docs' use cases with an in-memory unit of work and object store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import pytest
from tawasul_docs.app import handlers
from tawasul_docs.domain.model import ContentType, Document, DocumentMetadata
from tawasul_platform.errors import InvalidArgument, NotFound, PermissionDenied
from tawasul_platform.identity import Principal, Role

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OWNER = Principal("1000000008", Role.CITIZEN)
STRANGER = Principal("2000000007", Role.RESIDENT)
REVIEWER = Principal("E1001", Role.REVIEWER, frozenset({"residents"}))
PDF = b"%PDF-1.7\n" + b"x" * 100 + b"\n%%EOF\n"


class FakeDocuments:
    def __init__(self, rows: dict[uuid.UUID, Document]) -> None:
        self._rows = rows
        self.pending: dict[uuid.UUID, Document] = {}

    async def add(self, document: Document) -> None:
        self.pending[document.id] = document

    async def get(self, document_id: uuid.UUID) -> Document | None:
        return self.pending.get(document_id) or self._rows.get(document_id)


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Document] = {}
        self.fail_commit = False
        self.commit_lands_anyway = False
        self.documents = FakeDocuments(self.rows)

    async def __aenter__(self) -> Self:
        self.documents = FakeDocuments(self.rows)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.documents.pending.clear()

    async def commit(self) -> None:
        if self.fail_commit:
            if self.commit_lands_anyway:
                self.rows.update(self.documents.pending)
            raise ConnectionError("database went away")
        self.rows.update(self.documents.pending)
        self.documents.pending.clear()


class FakeObjectStore:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.presigned: list[tuple[str, timedelta, str]] = []

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        self.objects[key] = (data, content_type)

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    async def presign_get(self, key: str, *, expires: timedelta, download_name: str) -> str:
        self.presigned.append((key, expires, download_name))
        return f"http://s3.test/bucket/{key}?X-Amz-Expires={int(expires.total_seconds())}"


class Stream:
    """An upload stream that records how many parts the handler pulled from it."""

    def __init__(self, parts: Iterable[DocumentMetadata | bytes]) -> None:
        self._parts = list(parts)
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[DocumentMetadata | bytes]:
        for part in self._parts:
            self.read += 1
            yield part


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def store() -> FakeObjectStore:
    return FakeObjectStore()


async def upload(
    uow: FakeUnitOfWork,
    store: FakeObjectStore,
    parts: Iterable[DocumentMetadata | bytes] | Stream,
    *,
    caller: Principal = OWNER,
    max_bytes: int = 1024,
) -> Document:
    stream = parts if isinstance(parts, Stream) else Stream(parts)
    return await handlers.upload_document(
        uow=uow,
        store=store,
        caller=caller,
        parts=aiter(stream),
        max_bytes=max_bytes,
        now=NOW,
    )


async def test_upload_stores_the_bytes_then_the_row(
    uow: FakeUnitOfWork, store: FakeObjectStore
) -> None:
    meta = DocumentMetadata(filename="../scan.jpg", declared_content_type="image/jpeg")
    document = await upload(uow, store, [meta, PDF[:7], PDF[7:]])
    assert document.content_type is ContentType.PDF
    assert document.filename == "scan.jpg"
    assert document.owner_id == OWNER.subject
    assert document.size_bytes == len(PDF)
    assert uow.rows == {document.id: document}
    assert store.objects == {f"documents/{document.id}": (PDF, "application/pdf")}


async def test_only_beneficiaries_upload(uow: FakeUnitOfWork, store: FakeObjectStore) -> None:
    stream = Stream([DocumentMetadata("a.pdf"), PDF])
    with pytest.raises(PermissionDenied):
        await upload(uow, store, stream, caller=REVIEWER)
    assert stream.read == 0
    assert not store.objects


@pytest.mark.parametrize("parts", [[PDF], [], [b"", DocumentMetadata("a.pdf"), PDF]])
async def test_the_first_message_must_be_metadata(
    uow: FakeUnitOfWork, store: FakeObjectStore, parts: list[DocumentMetadata | bytes]
) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await upload(uow, store, parts)
    assert set(exc.value.violations) == {"metadata"}


async def test_metadata_twice_is_refused(uow: FakeUnitOfWork, store: FakeObjectStore) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await upload(uow, store, [DocumentMetadata("a.pdf"), PDF, DocumentMetadata("b.pdf")])
    assert set(exc.value.violations) == {"metadata"}
    assert not store.objects


async def test_reading_stops_at_the_chunk_that_crosses_the_limit(
    uow: FakeUnitOfWork, store: FakeObjectStore
) -> None:
    stream = Stream([DocumentMetadata("a.pdf"), PDF, b"y" * 1000, b"y" * 1000, b"y" * 1000])
    with pytest.raises(InvalidArgument) as exc:
        await upload(uow, store, stream, max_bytes=1024)
    assert set(exc.value.violations) == {"chunk"}
    assert stream.read == 3
    assert not store.objects
    assert not uow.rows


async def test_an_exe_declared_as_pdf_is_refused_and_nothing_is_stored(
    uow: FakeUnitOfWork, store: FakeObjectStore
) -> None:
    exe = b"MZ\x90\x00" + b"\x00" * 200
    meta = DocumentMetadata(filename="cv.pdf", declared_content_type="application/pdf")
    with pytest.raises(InvalidArgument) as exc:
        await upload(uow, store, [meta, exe])
    assert set(exc.value.violations) == {"content"}
    assert not store.objects
    assert not uow.rows


async def test_an_empty_file_is_refused(uow: FakeUnitOfWork, store: FakeObjectStore) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await upload(uow, store, [DocumentMetadata("a.pdf")])
    assert set(exc.value.violations) == {"chunk"}


async def test_a_failed_commit_deletes_the_object(
    uow: FakeUnitOfWork, store: FakeObjectStore
) -> None:
    uow.fail_commit = True
    with pytest.raises(ConnectionError):
        await upload(uow, store, [DocumentMetadata("a.pdf"), PDF])
    assert not store.objects
    assert not uow.rows


async def test_a_commit_that_landed_despite_the_error_keeps_its_object(
    uow: FakeUnitOfWork, store: FakeObjectStore
) -> None:
    uow.fail_commit = uow.commit_lands_anyway = True
    with pytest.raises(ConnectionError):
        await upload(uow, store, [DocumentMetadata("a.pdf"), PDF])
    [row] = uow.rows.values()
    assert set(store.objects) == {row.object_key}


async def test_owner_and_reviewer_read_a_stranger_gets_not_found(
    uow: FakeUnitOfWork, store: FakeObjectStore
) -> None:
    document = await upload(uow, store, [DocumentMetadata("a.pdf"), PDF])
    for reader in (OWNER, REVIEWER):
        found = await handlers.get_document(uow=uow, caller=reader, document_id=str(document.id))
        assert found == document
    with pytest.raises(NotFound):
        await handlers.get_document(uow=uow, caller=STRANGER, document_id=str(document.id))
    with pytest.raises(NotFound):
        await handlers.get_document(uow=uow, caller=OWNER, document_id=str(uuid.uuid4()))


async def test_a_malformed_id_is_an_invalid_argument(uow: FakeUnitOfWork) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await handlers.get_document(uow=uow, caller=OWNER, document_id="not-an-id")
    assert set(exc.value.violations) == {"document_id"}


async def test_download_url_is_presigned_for_the_configured_time(
    uow: FakeUnitOfWork, store: FakeObjectStore
) -> None:
    document = await upload(uow, store, [DocumentMetadata("جواز.pdf"), PDF])
    link = await handlers.get_download_url(
        uow=uow,
        store=store,
        caller=REVIEWER,
        document_id=str(document.id),
        valid_for=timedelta(seconds=600),
        now=NOW,
    )
    assert link.document == document
    assert link.expires_at == NOW + timedelta(seconds=600)
    assert store.presigned == [(document.object_key, timedelta(seconds=600), "جواز.pdf")]
    assert document.object_key in link.url


async def test_no_download_url_for_a_stranger(uow: FakeUnitOfWork, store: FakeObjectStore) -> None:
    document = await upload(uow, store, [DocumentMetadata("a.pdf"), PDF])
    with pytest.raises(NotFound):
        await handlers.get_download_url(
            uow=uow,
            store=store,
            caller=STRANGER,
            document_id=str(document.id),
            valid_for=timedelta(seconds=600),
            now=NOW,
        )
    assert not store.presigned
