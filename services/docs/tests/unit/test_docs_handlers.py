"""Docs' use cases on in-memory fakes of its ports: a bucket, a malware scanner, a database.

The fakes keep the adapters' contracts: the store's pipe hands chunks to an upload task that
stores the object when the pipe is finished, stores nothing when it is aborted, and fails with
Unavailable when storage is down (after which feeding the pipe fails too, as the real pipe's
does); moving or reading a missing object is Unavailable, as MinIO's errors are in the adapter.
The scanner decides by content: EICAR anywhere is infected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import itertools
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple, Self

import pytest
from PIL import Image
from pypdf import PdfWriter
from pypdf.actions import JavaScript
from tawasul_devstack.clamav import EICAR, REPORTED_SIGNATURE
from tawasul_devstack.journey import eventually, sample_pdf
from tawasul_docs.app import handlers
from tawasul_docs.app.ports import RETRY_FIRST, RETRY_MOST, Attached, Verdict
from tawasul_docs.app.spool import Spool, SpoolAborted
from tawasul_docs.domain.inspection import Inspection, Inspector, Kind
from tawasul_docs.domain.model import (
    MAX_CHUNK,
    Change,
    Document,
    DocumentEvent,
    DocumentMetadata,
    Placement,
    State,
)
from tawasul_platform.catalog import load_catalog
from tawasul_platform.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from tawasul_platform.i18n import Bilingual
from tawasul_platform.identity import Principal, Role
from tawasul_platform.testing import FakeInbox, FakeStaffRecords

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# Past the rescan loop's grace period for everything uploaded at NOW.
LATER = NOW + timedelta(hours=1)
NEVER = datetime.min.replace(tzinfo=UTC)
KEEP = timedelta(hours=72)
UPLOAD_TIME = timedelta(minutes=2)
OWNER = Principal("1000000008", Role.CITIZEN)
STRANGER = Principal("1000000016", Role.CITIZEN)
RESIDENT = Principal("2000000007", Role.RESIDENT)
REVIEWER = Principal("E1001", Role.REVIEWER, frozenset({"passports"}))
PROBLEM = "passports.issue-renewal-problem"
MiB = 1024 * 1024
PDF = sample_pdf("Passport renewal: the photo is not shown")
INFECTED_PDF = sample_pdf(EICAR.decode())


# --- fakes of the ports -------------------------------------------------------------------------


class FakeUpload:
    """What the store read of one upload's spool, the size it was told, and how the spool
    ended."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self.chunks: list[bytes] = []
        self.finished = False
        self.aborted = False


class FakeObjectStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: list[FakeUpload] = []
        self.deleted: list[str] = []
        self.presigned: list[tuple[str, timedelta, str, str]] = []
        self.down = False
        self.deletes_down = False
        # Keys storage refuses to delete, one by one (AccessDenied): the others go.
        self.refuses: set[str] = set()
        self.down_after_bytes: int | None = None
        self.promote_down = False
        self.hold: asyncio.Event | None = None
        self.storing: list[asyncio.Task[None]] = []

    def _up(self) -> None:
        if self.down:
            raise Unavailable("object storage cannot answer now")

    def stream_to(self, key: str, spool: Spool, size: int | None) -> asyncio.Future[None]:
        """Like the adapter's, whose SDK call runs in a thread: cancelling the awaiting task
        does not stop the storing, which goes on to its end."""
        upload = FakeUpload(size)
        self.uploads.append(upload)

        async def store() -> None:
            if self.down:
                raise Unavailable("object storage cannot take the file now")
            try:
                async for chunk in spool.chunks(MiB):
                    limit = self.down_after_bytes
                    if limit is not None and sum(map(len, upload.chunks)) + len(chunk) > limit:
                        raise Unavailable("object storage went down mid-upload")
                    upload.chunks.append(chunk)
            except SpoolAborted:
                upload.aborted = True  # the multipart upload is abandoned
                raise
            upload.finished = True
            if self.hold is not None:  # the last part is still on its way
                await self.hold.wait()
            self.objects[key] = b"".join(upload.chunks)

        storing = asyncio.ensure_future(store())
        self.storing.append(storing)
        return asyncio.shield(storing)

    async def copy(self, source: str, target: str, *, content_type: str) -> None:
        self._up()
        if self.promote_down:
            raise Unavailable("object storage cannot copy the file now")
        if source not in self.objects:
            raise Unavailable(f"object storage cannot copy the file now: NoSuchKey {source}")
        self.objects[target] = self.objects[source]

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        self._up()
        if key not in self.objects:
            raise Unavailable(f"object storage cannot read the file now: NoSuchKey {key}")
        data = self.objects[key]
        for start in range(0, len(data), MAX_CHUNK):
            yield data[start : start + MAX_CHUNK]

    async def delete(self, key: str) -> None:
        self._up()
        if self.deletes_down:
            raise Unavailable("object storage cannot delete now")
        self.deleted.append(key)
        self.objects.pop(key, None)

    async def delete_many(self, keys: list[str]) -> list[str]:
        self._up()
        if self.deletes_down:
            raise Unavailable("object storage cannot delete now")
        for key in keys:
            if key not in self.refuses:
                await self.delete(key)
        return [key for key in keys if key in self.refuses]

    async def presign_get(
        self, key: str, *, expires: timedelta, download_name: str, content_type: str
    ) -> str:
        self.presigned.append((key, expires, download_name, content_type))
        return f"http://s3.test/documents-bucket/{key}?X-Amz-Expires={int(expires.total_seconds())}"


class FakeScanner:
    """Infected when the bytes hold EICAR; Unavailable while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.scanned: list[bytes] = []
        # When set, the next scan waits for it once it has read its bytes: caught half way.
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()
        self.stopped = 0  # scans cancelled while they waited at the gate

    def _verdict(self, data: bytes) -> Verdict:
        self.scanned.append(data)
        if EICAR in data:
            return Verdict(clean=False, signature=REPORTED_SIGNATURE)
        return Verdict(clean=True)

    async def scan(self, chunks: AsyncIterator[bytes]) -> Verdict:
        if self.down:
            raise Unavailable("clamd cannot be reached")
        data = b"".join([chunk async for chunk in chunks])
        gate, self.gate = self.gate, None
        if gate is not None:
            self.waiting.set()
            try:
                await gate.wait()
            except asyncio.CancelledError:
                self.stopped += 1
                raise
        return self._verdict(data)


class FakeDocuments:
    """Writes are pending until the unit of work commits, as in a transaction."""

    def __init__(
        self,
        rows: dict[uuid.UUID, Document],
        tries: dict[uuid.UUID, datetime],
        attachments: dict[uuid.UUID, set[uuid.UUID]],
        holds: dict[uuid.UUID, datetime],
    ) -> None:
        self._rows = rows
        self.pending: dict[uuid.UUID, Document] = {}
        self.removed: set[uuid.UUID] = set()
        self.joined: dict[uuid.UUID, set[uuid.UUID]] = {}
        # Scan attempts, a column of the same rows: they outlive one transaction.
        self.tries = tries
        # The requests each document joined (committed).
        self.attachments = attachments
        # When a request's check last held each one (committed).
        self.holds = holds
        self.held: dict[uuid.UUID, datetime] = {}

    async def add(self, document: Document) -> None:
        assert document.id not in self._rows
        assert document.id not in self.pending
        self.pending[document.id] = document

    async def get(self, document_id: uuid.UUID) -> Document | None:
        return self.pending.get(document_id) or self._rows.get(document_id)

    async def save(self, document: Document) -> None:
        # An UPDATE: a row that does not exist stays absent.
        if document.id in self._rows or document.id in self.pending:
            self.pending[document.id] = document

    async def quarantined(self, limit: int, *, older_than: datetime) -> list[Document]:
        waiting = [
            d
            for d in self._rows.values()
            if d.state is State.QUARANTINED and d.created_at <= older_than
        ]
        order = sorted(waiting, key=lambda d: (self.tries.get(d.id, NEVER), d.created_at))
        return order[:limit]

    async def tried(self, document_id: uuid.UUID, at: datetime) -> None:
        self.tries[document_id] = at

    async def still_quarantined(self, document_id: uuid.UUID) -> bool:
        row = self.pending.get(document_id) or self._rows.get(document_id)
        return row is not None and row.state is State.QUARANTINED

    async def attach(
        self, request_id: uuid.UUID, document_ids: tuple[uuid.UUID, ...], at: datetime
    ) -> Attached:
        new = []
        for document_id in sorted(set(document_ids)):
            row = self._rows.get(document_id)
            if row is None or request_id in self.attachments.get(document_id, set()):
                continue
            self.joined.setdefault(document_id, set()).add(request_id)
            new.append(row)
        return Attached(new, tuple(d for d in document_ids if d not in self._rows))

    async def hold(self, document_id: uuid.UUID, at: datetime) -> bool:
        if document_id not in self._rows:
            return False
        self.held[document_id] = at
        return True

    async def unattached(self, limit: int, *, older_than: datetime) -> list[Document]:
        waiting = [
            d
            for d in self._rows.values()
            if not self.attachments.get(d.id)
            and d.created_at <= older_than
            and self.holds.get(d.id, d.created_at) <= older_than
        ]
        return sorted(waiting, key=lambda d: d.created_at)[:limit]

    async def count_unattached(self, owner_id: str) -> int:
        own = [d for d in self._rows.values() if d.owner_id == owner_id]
        return sum(1 for d in own if not self.attachments.get(d.id))

    async def remove(self, document_ids: list[uuid.UUID]) -> None:
        self.removed.update(document_ids)

    def apply(self) -> None:
        self._rows.update(self.pending)
        self.holds.update(self.held)
        for document_id in self.removed:
            self._rows.pop(document_id, None)
        for document_id, requests in self.joined.items():
            self.attachments.setdefault(document_id, set()).update(requests)
        self.pending.clear()
        self.removed.clear()
        self.joined.clear()


class FakeAccess:
    """Which department holds each request, as routing's events said, and so each document
    attached to it."""

    def __init__(self, attached: Callable[[uuid.UUID], set[uuid.UUID]]) -> None:
        # The documents attached to a request, this transaction's included.
        self._attached = attached
        self.holders: dict[uuid.UUID, dict[uuid.UUID, str]] = {}
        self.requests: dict[uuid.UUID, str | None] = {}
        self.sequences: dict[uuid.UUID, int] = {}

    async def grant(self, placements: Sequence[Placement]) -> list[Placement]:
        outdated = []
        for p in placements:
            applied = self.sequences.get(p.request_id, 0)
            if 0 < p.sequence <= applied:
                outdated.append(p)
                continue
            self.sequences[p.request_id] = max(applied, p.sequence)
            self.requests[p.request_id] = p.department
            self._open(p.request_id)
        return outdated

    async def grant_attached(self, request_id: uuid.UUID) -> None:
        self.requests.setdefault(request_id, None)
        self._open(request_id)

    def _open(self, request_id: uuid.UUID) -> None:
        department = self.requests[request_id]
        if department is None:
            return
        for holders in self.holders.values():  # a transfer moves every document it held
            if request_id in holders:
                holders[request_id] = department
        for document_id in self._attached(request_id):
            self.holders.setdefault(document_id, {})[request_id] = department

    async def departments(self, document_id: uuid.UUID) -> frozenset[str]:
        return frozenset(self.holders.get(document_id, {}).values())


class FakeLeases:
    """Upload leases; in the real table they are shared by every replica."""

    def __init__(self) -> None:
        self.held: dict[uuid.UUID, tuple[str, datetime]] = {}

    async def take(
        self, owner_id: str, lease_id: uuid.UUID, *, now: datetime, until: datetime, limit: int
    ) -> bool:
        live = [o for o, expires in self.held.values() if o == owner_id and expires > now]
        if len(live) >= limit:
            return False
        self.held[lease_id] = (owner_id, until)
        return True

    async def release(self, lease_id: uuid.UUID) -> None:
        self.held.pop(lease_id, None)

    async def prune(self, now: datetime, *, limit: int) -> int:
        lapsed = [lease for lease, (_, expires) in self.held.items() if expires <= now][:limit]
        for lease in lapsed:
            del self.held[lease]
        return len(lapsed)


class Doomed(NamedTuple):
    """An object still to delete: not before when, how often storage refused it, and whether
    the sweep took it (no row keeps it then)."""

    not_before: datetime
    refusals: int = 0
    taken: bool = False


class FakeDeletions:
    """Objects still to delete; what a transaction records or forgets applies at its commit."""

    def __init__(self, keys: dict[str, Doomed]) -> None:
        self._keys = keys  # committed, in the order recorded
        self.written: dict[str, Doomed] = {}
        self.forgotten: set[str] = set()

    def _get(self, key: str) -> Doomed | None:
        if key in self.forgotten:
            return None
        return self.written.get(key, self._keys.get(key))

    async def add(self, keys: Sequence[str]) -> None:
        for key in keys:
            held = self._get(key)
            self.forgotten.discard(key)
            # Due at once (the database's clock: before any of the tests' times).
            self.written[key] = Doomed(
                datetime.min.replace(tzinfo=UTC),
                held.refusals if held else 0,
                held.taken if held else False,
            )

    async def intend(self, key: str, *, until: datetime) -> None:
        assert self._get(key) is None
        self.written[key] = Doomed(until)

    async def keep(self, key: str) -> bool:
        held = self._get(key)
        if held is None or held.taken:
            return False
        await self.done([key])
        return True

    async def take(self, limit: int, *, now: datetime) -> list[str]:
        due = [(d.not_before, k) for k, d in self._keys.items() if d.not_before <= now]
        keys = [k for _, k in sorted(due, key=lambda each: each[0])][:limit]
        for key in keys:
            self.written[key] = self._keys[key]._replace(taken=True)
        return keys

    async def done(self, keys: Sequence[str]) -> None:
        self.forgotten.update(keys)
        for key in keys:
            self.written.pop(key, None)

    async def refused(self, keys: Sequence[str], *, now: datetime) -> None:
        for key in keys:
            held = self._get(key)
            assert held is not None
            wait = min(RETRY_FIRST * 2**held.refusals, RETRY_MOST)
            self.written[key] = Doomed(now + wait, held.refusals + 1, held.taken)

    def apply(self) -> None:
        for key in self.forgotten:
            self._keys.pop(key, None)
        self._keys.update(self.written)
        self.written.clear()
        self.forgotten.clear()


class FakeUnitOfWork(FakeInbox):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[uuid.UUID, Document] = {}
        self.tries: dict[uuid.UUID, datetime] = {}
        self.attachments: dict[uuid.UUID, set[uuid.UUID]] = {}
        self.holds: dict[uuid.UUID, datetime] = {}
        # Objects recorded as still to delete (committed).
        self.doomed: dict[str, Doomed] = {}
        self.documents = self._repository()
        self.deletions = FakeDeletions(self.doomed)
        self.access = FakeAccess(self._attached)
        self.leases = FakeLeases()
        self.staff = FakeStaffRecords()
        # Published by committed transactions, in order.
        self.events: list[DocumentEvent] = []
        self._recorded: list[DocumentEvent] = []
        self.commits = 0
        # The commits (1 for the first) that fail; `lands` makes a failed one apply anyway,
        # as when the connection is lost on the reply.
        self.failing: set[int] = set()
        self.lands = False
        self.hold: asyncio.Event | None = None
        # The commits (counted as `failing` counts them) that `hold` lets through.
        self.hold_after = 0

    def _attached(self, request_id: uuid.UUID) -> set[uuid.UUID]:
        joined = [*self.attachments.items(), *self.documents.joined.items()]
        return {document_id for document_id, requests in joined if request_id in requests}

    def _repository(self) -> FakeDocuments:
        return FakeDocuments(self.rows, self.tries, self.attachments, self.holds)

    async def __aenter__(self) -> Self:
        self.documents = self._repository()
        self.deletions = FakeDeletions(self.doomed)
        self._recorded = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.documents = self._repository()
        self.deletions = FakeDeletions(self.doomed)
        self._recorded = []

    def record(self, event: DocumentEvent) -> None:
        self._recorded.append(event)

    def _apply(self) -> None:
        self.documents.apply()
        self.deletions.apply()
        self.events.extend(self._recorded)
        self._recorded = []

    async def commit(self) -> None:
        self.commits += 1
        if self.hold is not None and self.commits > self.hold_after:  # slow to answer
            await self.hold.wait()
        if self.commits in self.failing:
            if self.lands:
                self._apply()
            raise ConnectionError("the database went away")
        self._apply()


class Stream:
    """An upload's messages; records how many the handler pulled."""

    def __init__(self, parts: Iterable[DocumentMetadata | bytes]) -> None:
        self._parts = list(parts)
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[DocumentMetadata | bytes]:
        for part in self._parts:
            self.read += 1
            yield part


class Docs:
    def __init__(self, spool: Path) -> None:
        self.uow = FakeUnitOfWork()
        self.store = FakeObjectStore()
        self.scanner = FakeScanner()
        self.spool = spool
        self.parses = asyncio.Semaphore(1)

    async def upload(
        self,
        parts: Iterable[DocumentMetadata | bytes] | Stream,
        *,
        caller: Principal = OWNER,
        max_bytes: int = MiB,
        now: datetime = NOW,
        deadline: asyncio.Timeout | None = None,
        max_unattached: int = 50,
    ) -> Document:
        stream = parts if isinstance(parts, Stream) else Stream(parts)
        return await handlers.upload_document(
            uow=self.uow,
            store=self.store,
            scanner=self.scanner,
            catalog=load_catalog(),
            caller=caller,
            parts=aiter(stream),
            default_max_bytes=max_bytes,
            spool_dir=self.spool,
            now=now,
            hold_for=UPLOAD_TIME,
            deadline=deadline,
            parses=self.parses,
            max_unattached=max_unattached,
        )

    async def rescan(self) -> bool:
        return await handlers.rescan_quarantined(
            uow=self.uow, store=self.store, scanner=self.scanner, now=LATER
        )

    async def route(self, document: Document, department: str = "passports") -> uuid.UUID:
        """Routing put a request holding the document in `department`'s queue."""
        request_id = uuid.uuid4()
        await handlers.grant_access(
            uow=self.uow,
            routed=[(str(uuid.uuid4()), Placement(request_id, department, (document.id,)))],
            now=NOW,
        )
        return request_id

    async def submit(self, *documents: Document, event_id: str = "") -> uuid.UUID:
        """Intake's submitted event for a new request holding the documents."""
        request_id = uuid.uuid4()
        await handlers.attach_submitted(
            uow=self.uow,
            event_id=event_id or str(uuid.uuid4()),
            request_id=request_id,
            document_ids=tuple(d.id for d in documents),
            now=NOW,
        )
        return request_id

    async def expire(self, now: datetime, *, batch: int = 200) -> bool:
        return await handlers.expire_unattached(
            uow=self.uow, store=self.store, now=now, keep_for=KEEP, batch=batch
        )

    def changes(self, document: Document | uuid.UUID) -> list[Change]:
        key = document if isinstance(document, uuid.UUID) else document.id
        return [e.change for e in self.uow.events if e.document_id == key]

    async def get(self, document: Document | str, caller: Principal = OWNER) -> Document:
        key = document if isinstance(document, str) else str(document.id)
        return await handlers.get_document(uow=self.uow, caller=caller, document_id=key)

    async def link(self, document: Document, caller: Principal = OWNER) -> str:
        link = await handlers.get_download_url(
            uow=self.uow,
            store=self.store,
            caller=caller,
            document_id=str(document.id),
            valid_for=timedelta(seconds=300),
            now=NOW,
        )
        assert link.expires_at == NOW + timedelta(seconds=300)
        return link.url

    def assert_nothing_left(self) -> None:
        assert self.store.objects == {}
        assert self.uow.rows == {}
        assert self.uow.doomed == {}
        assert list(self.spool.iterdir()) == []


@pytest.fixture
def docs(tmp_path: Path) -> Docs:
    spool = tmp_path / "spool"
    spool.mkdir()
    return Docs(spool)


def chunked(data: bytes, size: int = MAX_CHUNK) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


def meta(
    filename: str = "scan.pdf",
    declared: str = "application/pdf",
    sub_service: str = "",
    kind: str = "",
    size: int = 0,
) -> DocumentMetadata:
    return DocumentMetadata(filename, declared, sub_service, kind, size)


def javascript_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.add_open_action(JavaScript("app.alert(1)"))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 120, 60)).save(out, "JPEG")
    return out.getvalue()


def png() -> bytes:
    """What docs accepted until 2026-12-07."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 120, 60)).save(out, "PNG")
    return out.getvalue()


EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56 + b"This program cannot be run in DOS mode"


# --- uploads that are kept ----------------------------------------------------------------------


async def test_a_valid_pdf_ends_clean_under_documents_and_nothing_stays_in_quarantine(
    docs: Docs,
) -> None:
    parts: list[DocumentMetadata | bytes] = [meta("../../تقرير.exe"), PDF[:100], b"", PDF[100:]]
    document = await docs.upload(parts)
    assert document.state is State.CLEAN
    assert document.object_key == f"documents/{document.id}"
    assert document.filename == "تقرير.pdf"
    assert document.content_type is Kind.PDF
    assert (document.size_bytes, document.sha256) == (len(PDF), hashlib.sha256(PDF).hexdigest())
    assert (document.owner_id, document.created_at) == (OWNER.subject, NOW)
    assert docs.store.objects == {f"documents/{document.id}": PDF}
    assert docs.uow.rows == {document.id: document}
    assert docs.scanner.scanned == [PDF]
    assert list(docs.spool.iterdir()) == []  # the spool file is gone


async def test_an_account_keeps_a_capped_number_of_documents_in_no_request(docs: Docs) -> None:
    """Each document that joins no request is kept 72 hours: an account uploading without end
    (a script) filled the bucket meanwhile, with no cap per account."""
    first = await docs.upload([meta(), PDF], max_unattached=2)
    await docs.upload([meta(), PDF], max_unattached=2)
    with pytest.raises(ResourceExhausted) as caught:
        await docs.upload([meta(), PDF], max_unattached=2)
    said = caught.value.args[0]
    assert (said, said.ar) == (
        "at most 2 documents per account not yet in a request; name them in a request, or wait"
        " until they are removed",
        "مستندان على الأكثر لكل حساب لم تُرفق بطلب بعد؛ أرفقها بطلب، أو انتظر حذفها",
    )
    assert len(docs.uow.rows) == 2
    assert docs.store.objects.keys() == {f"documents/{d}" for d in docs.uow.rows}
    # Another account has its own; one attached no longer counts, nor one removed.
    await docs.upload([meta(), PDF], caller=STRANGER, max_unattached=2)
    await docs.submit(first)
    await docs.upload([meta(), PDF], max_unattached=2)
    await docs.expire(NOW + KEEP)
    await docs.upload([meta(), PDF], max_unattached=2, now=NOW + KEEP)


async def test_a_large_pdf_in_full_chunks_is_stored_byte_for_byte(docs: Docs) -> None:
    data = sample_pdf("x" * (3 * MiB))
    document = await docs.upload([meta(), *chunked(data)], max_bytes=10 * MiB)
    assert document.state is State.CLEAN
    assert docs.store.objects == {f"documents/{document.id}": data}
    assert document.sha256 == hashlib.sha256(data).hexdigest()
    assert docs.scanner.scanned == [data]


async def test_a_photo_for_a_sub_service_is_kept_with_its_kind(docs: Docs) -> None:
    data = jpeg()
    document = await docs.upload(
        [meta("selfie", "image/jpeg", PROBLEM, "photo"), data], max_bytes=10
    )
    assert (document.state, document.content_type) == (State.CLEAN, Kind.JPEG)
    assert (document.filename, document.document_kind, document.sub_service_code) == (
        "selfie.jpg",
        "photo",
        PROBLEM,
    )
    await docs.link(document)
    assert docs.store.presigned[0][3] == "image/jpeg"  # the link serves it as what it is


async def test_a_file_exactly_at_the_limit_is_accepted(docs: Docs) -> None:
    document = await docs.upload([meta(), PDF], max_bytes=len(PDF))
    assert document.size_bytes == len(PDF)


async def test_a_declared_size_is_passed_to_storage_and_held_to(docs: Docs) -> None:
    data = sample_pdf("x" * (2 * MiB))
    document = await docs.upload([meta(size=len(data)), *chunked(data)], max_bytes=10 * MiB)
    assert (document.state, document.size_bytes) == (State.CLEAN, len(data))
    assert docs.store.objects == {f"documents/{document.id}": data}
    (upload,) = docs.store.uploads
    assert upload.size == len(data)  # storage sends it as it comes, in one PUT
    undeclared = await docs.upload([meta(), PDF])
    assert docs.store.uploads[1].size is None
    assert docs.store.objects[f"documents/{undeclared.id}"] == PDF


async def test_a_declared_size_over_the_limit_is_refused_where_the_bytes_cross_it(
    docs: Docs,
) -> None:
    # Not before the bytes are sent: grpc.aio's client could report that refusal as INTERNAL.
    limit = len(PDF) + 1500
    stream = Stream([meta(size=len(PDF) + 2000), PDF, b"y" * 1000, b"y" * 1000])
    with pytest.raises(InvalidArgument) as caught:
        await docs.upload(stream, max_bytes=limit)
    assert caught.value.violations == {"size": f"the file exceeds the limit of {limit} bytes"}
    assert stream.read == 4  # metadata, PDF, 1000, and the 1000 that crossed
    assert docs.store.uploads[0].aborted
    docs.assert_nothing_left()


# --- malware ------------------------------------------------------------------------------------


async def test_eicar_inside_a_pdf_is_infected_and_its_bytes_are_deleted(docs: Docs) -> None:
    document = await docs.upload([meta("letter.pdf"), INFECTED_PDF])
    assert document.state is State.INFECTED
    assert document.object_key == f"documents/{document.id}"
    assert docs.store.objects == {}
    assert docs.store.deleted == [f"documents/{document.id}"]
    assert docs.uow.rows == {document.id: document}
    # The owner sees what became of it; nobody gets its bytes.
    assert (await docs.get(document)).state is State.INFECTED
    # Its owner is told it will never be readable, not that it is not readable yet.
    with pytest.raises(NotFound) as caught:
        await docs.link(document)
    said = caught.value.args[0]
    assert (said, said.ar) == (
        f"document {str(document.id)!r} was refused by the malware scan and its contents"
        " deleted; upload a clean copy",
        f"رُفض المستند {document.id} في فحص البرمجيات الخبيثة وحُذف محتواه؛ ارفع نسخة سليمة منه",
    )
    with pytest.raises(NotFound):
        await docs.get(document, REVIEWER)
    assert docs.store.presigned == []


async def test_a_scanner_down_leaves_the_document_in_quarantine_until_it_returns(
    docs: Docs,
) -> None:
    docs.scanner.down = True
    document = await docs.upload([meta(), PDF])
    assert document.state is State.QUARANTINED
    assert docs.store.objects == {f"documents/{document.id}": PDF}
    assert docs.uow.rows[document.id].state is State.QUARANTINED
    # Still down: it stays as it is, and the loop is told to retry.
    with pytest.raises(Unavailable):
        await docs.rescan()
    assert docs.uow.rows[document.id].state is State.QUARANTINED
    assert docs.store.objects == {f"documents/{document.id}": PDF}

    docs.scanner.down = False
    assert await docs.rescan() is True
    cleaned = docs.uow.rows[document.id]
    assert (cleaned.state, cleaned.object_key) == (State.CLEAN, f"documents/{document.id}")
    assert docs.store.objects == {f"documents/{document.id}": PDF}
    assert docs.scanner.scanned == [PDF]
    assert await docs.rescan() is False
    await docs.route(document)
    assert (await docs.get(document, REVIEWER)).state is State.CLEAN


async def test_a_rescan_that_finds_malware_deletes_the_bytes(docs: Docs) -> None:
    docs.scanner.down = True
    document = await docs.upload([meta(), INFECTED_PDF])
    docs.scanner.down = False
    assert await docs.rescan() is True
    assert docs.uow.rows[document.id].state is State.INFECTED
    assert docs.store.objects == {}
    assert await docs.rescan() is False


async def test_rescans_take_the_oldest_quarantined_document_first(docs: Docs) -> None:
    docs.scanner.down = True
    later = await docs.upload([meta("b.pdf"), PDF], now=NOW + timedelta(minutes=1))
    earlier = await docs.upload([meta("a.pdf"), INFECTED_PDF], now=NOW)
    docs.scanner.down = False
    assert await docs.rescan() is True
    assert docs.uow.rows[earlier.id].state is State.INFECTED
    assert docs.uow.rows[later.id].state is State.QUARANTINED
    assert await docs.rescan() is True
    assert docs.uow.rows[later.id].state is State.CLEAN


# --- uploads that are refused -------------------------------------------------------------------

REFUSALS: list[tuple[str, list[DocumentMetadata | bytes], str, str]] = [
    (
        "more bytes than declared",
        [meta(size=len(PDF) - 1), PDF[:-1], PDF[-1:]],
        "metadata.size_bytes",
        f"the upload carries more than {len(PDF) - 1} bytes",
    ),
    (
        "fewer bytes than declared",
        [meta(size=len(PDF) + 1), PDF],
        "metadata.size_bytes",
        f"{len(PDF) + 1} bytes declared, {len(PDF)} sent",
    ),
    (
        "a negative size",
        [meta(size=-1), PDF],
        "metadata.size_bytes",
        "must be the file's size in bytes, or 0",
    ),
    ("exe", [meta("cv.pdf"), EXE], "content", "only PDF or JPG files, detected by content"),
    (
        "pdf with javascript",
        [meta(), javascript_pdf()],
        "content",
        "the PDF contains JavaScript",
    ),
    (
        "truncated pdf",
        [meta(), PDF[:-30]],
        "content",
        "the PDF is truncated or has data after its end",
    ),
    (
        "html polyglot",
        [meta(), b"<html><body>" + PDF + b"</body></html>"],
        "content",
        "HTML or script content is not accepted",
    ),
    ("empty", [meta()], "content", "the file is empty"),
    ("empty chunks", [meta(), b"", b""], "content", "the file is empty"),
    (
        "oversize",
        [meta(), *chunked(sample_pdf("y" * (MiB + 1)))],
        "size",
        f"the file exceeds the limit of {MiB} bytes",
    ),
    (
        "chunk over 256 KiB",
        [meta(), b"%PDF-1.4\n" + b"z" * MAX_CHUNK],
        "chunk",
        f"chunks of at most {MAX_CHUNK} bytes",
    ),
    (
        "metadata not first",
        [PDF, meta()],
        "metadata",
        "the first message must carry the document's metadata",
    ),
    (
        "no message at all",
        [],
        "metadata",
        "the first message must carry the document's metadata",
    ),
    (
        "metadata twice",
        [meta(), PDF[:50], meta("b.pdf"), PDF[50:]],
        "metadata",
        "only the first message carries metadata",
    ),
    (
        "declared type does not match",
        [meta("scan.png", "image/png"), PDF],
        "declared_content_type",
        "the declared type does not match the content, which is PDF",
    ),
    (
        "a pdf where the sub-service wants a photo",
        [meta("me.pdf", "", PROBLEM, "photo"), PDF],
        "content",
        "PDF files are not accepted here: only JPG",
    ),
    (
        "over the sub-service's limit",
        [meta("a.pdf", "", PROBLEM, "error_screenshot"), *chunked(sample_pdf("w" * 5 * MiB))],
        "size",
        f"the file exceeds the limit of {5 * MiB} bytes",
    ),
    (
        "an unknown sub-service",
        [meta("a.pdf", "", "passports.nope", "photo"), PDF],
        "metadata.sub_service_code",
        "not a sub-service of the catalog",
    ),
    (
        "an unknown document kind",
        [meta("a.pdf", "", PROBLEM, "selfie"), PDF],
        "metadata.document_kind",
        "not a document kind of this sub-service",
    ),
]


@pytest.mark.parametrize(
    ("parts", "field", "reason"),
    [pytest.param(parts, field, reason, id=name) for name, parts, field, reason in REFUSALS],
)
async def test_refused_content_leaves_no_object_no_row_and_no_spool_file(
    docs: Docs, parts: list[DocumentMetadata | bytes], field: str, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await docs.upload(parts, max_bytes=MiB)
    assert caught.value.violations == {field: reason}
    docs.assert_nothing_left()
    # Every upload that was started was abandoned, or its object deleted once checked.
    for upload in docs.store.uploads:
        assert upload.aborted or docs.store.deleted


@pytest.mark.parametrize(
    ("metadata", "accepted", "accepted_ar"),
    [
        pytest.param(meta("scan.png", "image/png"), "PDF or JPG", "PDF أو JPG", id="any upload"),
        pytest.param(
            meta("scan.png", "", PROBLEM, "supporting_document"),
            "PDF or JPG",
            "PDF أو JPG",
            id="a supporting document",
        ),
        pytest.param(meta("me.png", "", PROBLEM, "photo"), "JPG", "JPG", id="a photo"),
    ],
)
async def test_a_png_is_refused_saying_what_is_accepted(
    docs: Docs, metadata: DocumentMetadata, accepted: str, accepted_ar: str
) -> None:
    """SPEC §2: attachments are PDF or JPG."""
    with pytest.raises(InvalidArgument) as caught:
        await docs.upload([metadata, png()])
    said = caught.value.violations["content"]
    assert isinstance(said, Bilingual)
    assert (said, said.ar) == (
        f"PNG files are not accepted here: only {accepted}",
        f"ملفات PNG غير مقبولة هنا: تُقبل ملفات {accepted_ar} فقط",
    )
    assert list(caught.value.violations) == ["content"]
    docs.assert_nothing_left()


async def test_reading_stops_at_the_chunk_that_crosses_the_limit(docs: Docs) -> None:
    stream = Stream([meta(), PDF, b"y" * 1000, b"y" * 1000, b"y" * 1000, b"y" * 1000])
    with pytest.raises(InvalidArgument) as caught:
        await docs.upload(stream, max_bytes=len(PDF) + 1500)
    assert set(caught.value.violations) == {"size"}
    assert stream.read == 4  # metadata, PDF, 1000, and the 1000 that crossed
    assert docs.store.uploads[0].aborted
    docs.assert_nothing_left()


async def test_an_oversize_chunk_is_refused_before_it_is_sent_on(docs: Docs) -> None:
    with pytest.raises(InvalidArgument):
        await docs.upload([meta(), PDF[:10], b"x" * (MAX_CHUNK + 1), PDF[10:]])
    (upload,) = docs.store.uploads
    assert b"".join(upload.chunks) in (b"", PDF[:10])  # what it had read of the spool
    assert upload.aborted


async def test_only_beneficiaries_upload_and_nothing_is_read_first(docs: Docs) -> None:
    stream = Stream([meta(), PDF])
    with pytest.raises(PermissionDenied):
        await docs.upload(stream, caller=REVIEWER)
    assert stream.read == 0
    assert docs.store.uploads == []
    docs.assert_nothing_left()


# --- outages ------------------------------------------------------------------------------------


async def test_storage_down_is_unavailable_and_leaves_no_row(docs: Docs) -> None:
    docs.store.down = True
    with pytest.raises(Unavailable):
        await docs.upload([meta(), *chunked(PDF, 100)])
    assert docs.uow.rows == {}
    assert docs.uow.events == []
    # A PUT whose answer was lost may have stored it: its key is recorded to delete, and the
    # first sweep with storage back deletes it.
    assert [key.split("/")[0] for key in docs.uow.doomed] == ["documents"]
    docs.store.down = False
    assert not await docs.expire(NOW)
    docs.assert_nothing_left()


async def test_storage_going_down_mid_upload_stops_reading_and_leaves_no_row(docs: Docs) -> None:
    docs.store.down_after_bytes = 300 * 1024
    parts = chunked(sample_pdf("y" * (12 * MiB)))
    stream = Stream([meta(), *parts])
    with pytest.raises(Unavailable):
        await docs.upload(stream, max_bytes=20 * MiB)
    # Storage fails past the fifth chunk and reads the spool on its own: noticed some chunks
    # later (17 on a quiet machine, 25 seen under load), long before the end.
    assert stream.read < len(parts) // 2
    docs.assert_nothing_left()


async def test_content_refused_by_its_first_bytes_stops_the_reading(docs: Docs) -> None:
    parts = chunked(b"PK\x03\x04" + b"z" * (12 * MiB))
    stream = Stream([meta("a.pdf", ""), *parts])
    with pytest.raises(InvalidArgument) as caught:
        await docs.upload(stream, max_bytes=20 * MiB)
    assert caught.value.violations == {"content": "ZIP archives are not accepted"}
    # The checks read the spool as it grows: some chunks past the first (the checks get a
    # spool's write of 256 KiB), long before the end.
    assert stream.read < len(parts) // 2
    assert docs.store.uploads[0].aborted
    docs.assert_nothing_left()


async def test_a_failed_commit_deletes_the_quarantined_object(docs: Docs) -> None:
    docs.uow.failing = {2}  # the row's; the first records its object before storing
    with pytest.raises(ConnectionError):
        await docs.upload([meta(), PDF])
    assert [key.split("/")[0] for key in docs.store.deleted] == ["documents"]
    docs.assert_nothing_left()


async def test_a_commit_that_landed_despite_the_error_keeps_its_object_for_the_rescan(
    docs: Docs,
) -> None:
    docs.uow.failing, docs.uow.lands = {2}, True
    with pytest.raises(ConnectionError):
        await docs.upload([meta(), PDF])
    (row,) = docs.uow.rows.values()
    assert row.state is State.QUARANTINED
    assert docs.store.objects == {row.object_key: PDF}
    docs.uow.failing = set()
    assert await docs.rescan() is True
    assert docs.uow.rows[row.id].state is State.CLEAN
    assert docs.store.objects == {f"documents/{row.id}": PDF}


# --- who reads what -----------------------------------------------------------------------------


async def quarantined(docs: Docs) -> Document:
    docs.scanner.down = True
    document = await docs.upload([meta("جواز.pdf"), PDF])
    docs.scanner.down = False
    assert document.state is State.QUARANTINED
    return document


async def test_the_owner_reads_the_metadata_of_a_quarantined_document(docs: Docs) -> None:
    document = await quarantined(docs)
    assert await docs.get(document) == document


async def test_a_reviewer_can_neither_read_nor_download_a_quarantined_document(
    docs: Docs,
) -> None:
    document = await quarantined(docs)
    with pytest.raises(NotFound):
        await docs.get(document, REVIEWER)
    with pytest.raises(NotFound):
        await docs.link(document, REVIEWER)
    assert docs.store.presigned == []


async def test_no_download_url_for_a_quarantined_document_even_for_its_owner(docs: Docs) -> None:
    document = await quarantined(docs)
    with pytest.raises(NotFound) as caught:
        await docs.link(document)
    said = caught.value.args[0]
    assert (said, said.ar) == (
        f"no document {str(document.id)!r} that can be read yet",
        f"لا يوجد مستند {document.id} يمكن قراءته بعد",
    )
    assert docs.store.presigned == []


@pytest.mark.parametrize("stranger", [STRANGER, RESIDENT])
async def test_another_beneficiary_gets_not_found_whatever_the_state(
    docs: Docs, stranger: Principal
) -> None:
    waiting = await quarantined(docs)
    clean = await docs.upload([meta(), PDF])
    for document in (waiting, clean):
        with pytest.raises(NotFound):
            await docs.get(document, stranger)
        with pytest.raises(NotFound):
            await docs.link(document, stranger)
    assert docs.store.presigned == []


async def test_a_clean_document_is_downloadable_by_its_owner_and_a_reviewer(docs: Docs) -> None:
    document = await docs.upload([meta("جواز.pdf"), PDF])
    await docs.route(document)
    assert await docs.get(document, REVIEWER) == document
    url = await docs.link(document, REVIEWER)
    assert f"documents/{document.id}" in url
    await docs.link(document)
    presigned = (
        f"documents/{document.id}",
        timedelta(seconds=300),
        "جواز.pdf",
        "application/pdf",
    )
    assert docs.store.presigned == [presigned, presigned]


async def test_unknown_and_malformed_ids(docs: Docs) -> None:
    with pytest.raises(NotFound):
        await docs.get(str(uuid.uuid4()))
    with pytest.raises(InvalidArgument) as caught:
        await docs.get("../documents/x")
    assert set(caught.value.violations) == {"document_id"}


# --- bugs ---------------------------------------------------------------------------------------


async def test_a_rescan_during_the_inline_scan_does_not_fail_the_upload(docs: Docs) -> None:
    gate = docs.scanner.gate = asyncio.Event()
    uploading = asyncio.ensure_future(docs.upload([meta(), PDF]))
    await asyncio.wait_for(docs.scanner.waiting.wait(), 5)

    async def committed() -> bool | None:
        return True if docs.uow.rows else None

    await eventually(committed, within=5, what="the row committed")
    # The rescan loop's tick comes while the upload is being scanned.
    assert await docs.rescan() is True
    gate.set()
    document = await uploading
    assert document.state is State.CLEAN
    assert docs.store.objects == {f"documents/{document.id}": PDF}


async def test_a_document_whose_verdict_was_not_saved_is_returned_and_finished_by_a_rescan(
    docs: Docs,
) -> None:
    """The caller was told the upload failed, yet its row and object stayed under an id it
    never learnt; its retry stored a second copy."""
    docs.uow.failing = {3}  # the row's insert commits; saving the verdict does not
    document = await docs.upload([meta(), PDF])
    assert document.state is State.QUARANTINED
    assert docs.uow.rows == {document.id: document}
    assert docs.store.objects == {f"documents/{document.id}": PDF}
    for _ in range(3):  # the rescan loop's next ticks, with the database back
        with contextlib.suppress(Unavailable):
            await docs.rescan()
    assert docs.uow.rows[document.id].state is State.CLEAN


async def test_one_document_that_cannot_be_scanned_does_not_hold_up_the_others(
    docs: Docs,
) -> None:
    docs.scanner.down = True
    stuck = await docs.upload([meta("a.pdf"), PDF], now=NOW)
    waiting = await docs.upload([meta("b.pdf"), PDF], now=NOW + timedelta(minutes=1))
    docs.scanner.down = False
    del docs.store.objects[stuck.object_key]  # lost, as after the failed save above
    for _ in range(5):  # the rescan loop waits out each Unavailable and tries again
        with contextlib.suppress(Unavailable):
            await docs.rescan()
    assert docs.uow.rows[waiting.id].state is State.CLEAN


async def legacy_quarantined(docs: Docs) -> Document:
    """A document stored under quarantine/, as before 2026-12-03, still waiting for a scan."""
    document = await quarantined(docs)
    legacy = dataclasses.replace(document, object_key=f"quarantine/{document.id}")
    docs.store.objects[legacy.object_key] = docs.store.objects.pop(document.object_key)
    docs.uow.rows[document.id] = legacy
    return legacy


async def test_a_legacy_quarantined_document_moves_out_of_quarantine_when_clean(
    docs: Docs,
) -> None:
    legacy = await legacy_quarantined(docs)
    assert await docs.rescan() is True
    cleaned = docs.uow.rows[legacy.id]
    assert (cleaned.state, cleaned.object_key) == (State.CLEAN, f"documents/{legacy.id}")
    assert docs.store.objects == {f"documents/{legacy.id}": PDF}
    assert docs.store.deleted == [f"quarantine/{legacy.id}"]


async def test_a_legacy_document_whose_copy_fails_stays_in_quarantine(docs: Docs) -> None:
    legacy = await legacy_quarantined(docs)
    docs.store.promote_down = True
    with pytest.raises(Unavailable):
        await docs.rescan()
    assert docs.uow.rows[legacy.id] == legacy
    assert docs.store.objects == {f"quarantine/{legacy.id}": PDF}


async def test_the_scan_runs_while_the_row_is_committed_and_counts_only_after(
    docs: Docs,
) -> None:
    commit, verdict = asyncio.Event(), asyncio.Event()
    docs.uow.hold, docs.uow.hold_after, docs.scanner.gate = commit, 1, verdict
    uploading = asyncio.ensure_future(docs.upload([meta(), PDF]))
    await asyncio.wait_for(docs.scanner.waiting.wait(), 5)

    async def committing() -> bool | None:
        return True if docs.uow.commits == 2 else None

    await eventually(committing, within=5, what="the row's commit under way")
    assert docs.uow.rows == {}  # scanned while the commit is held
    verdict.set()  # the verdict comes first and waits for the row
    commit.set()
    document = await uploading
    assert document.state is State.CLEAN
    assert docs.store.objects == {f"documents/{document.id}": PDF}


async def test_a_failed_commit_stops_the_scan_and_leaves_nothing(docs: Docs) -> None:
    docs.scanner.gate = asyncio.Event()  # the scan never ends on its own
    docs.uow.failing = {2}
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(docs.upload([meta(), PDF]), 5)
    docs.assert_nothing_left()
    assert docs.scanner.scanned == []


@pytest.mark.parametrize("stage", ["storing the last part", "committing the row"])
async def test_an_upload_cancelled_after_its_last_chunk_leaves_no_object(
    docs: Docs, stage: str
) -> None:
    hold = asyncio.Event()
    if stage == "storing the last part":
        docs.store.hold = hold
    else:
        docs.uow.hold, docs.uow.hold_after = hold, 1
    uploading = asyncio.ensure_future(docs.upload([meta(), PDF]))

    async def reached() -> bool | None:
        sent_all = bool(docs.store.uploads) and docs.store.uploads[0].finished
        held = sent_all and (stage == "storing the last part" or docs.uow.commits > 1)
        return True if held else None

    await eventually(reached, within=5, what=stage)
    uploading.cancel()
    hold.set()
    with pytest.raises(asyncio.CancelledError):
        await uploading
    await asyncio.gather(*docs.store.storing, return_exceptions=True)
    assert docs.uow.rows == {}
    assert docs.store.objects == {}


async def test_a_parse_holds_its_slot_until_its_thread_ends_even_when_cancelled(
    docs: Docs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A whole PDF's parse can hold some 30 times the file: one at a time per process.
    release = threading.Event()
    seen: list[bool] = []
    finish = Inspector.finish

    def held(self: Inspector, file: IO[bytes]) -> Inspection:
        seen.append(docs.parses.locked())
        release.wait()
        return finish(self, file)

    monkeypatch.setattr(Inspector, "finish", held)
    uploading = asyncio.ensure_future(docs.upload([meta(), PDF]))

    async def parsing() -> bool | None:
        return True if seen else None

    await eventually(parsing, within=5, what="the final parse")
    uploading.cancel()
    try:
        # The thread still reads the spool: the upload waits for it, holding the slot.
        done, _ = await asyncio.wait([uploading], timeout=0.2)
        assert (done, docs.parses.locked()) == (set(), True)
    finally:
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await uploading
    assert (seen, docs.parses.locked()) == ([True], False)
    docs.assert_nothing_left()


async def test_an_upload_cancelled_while_it_waits_for_its_verdict_stops_its_scan(
    docs: Docs,
) -> None:
    docs.scanner.gate = asyncio.Event()  # the verdict never comes on its own
    uploading = asyncio.ensure_future(docs.upload([meta(), PDF]))
    await asyncio.wait_for(docs.scanner.waiting.wait(), 5)

    async def committed() -> bool | None:
        return True if docs.uow.rows else None

    await eventually(committed, within=5, what="the row committed")
    uploading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await uploading
    assert docs.scanner.stopped == 1  # stopped, not left running with its spool gone
    assert list(docs.spool.iterdir()) == []
    # The row waits in quarantine for the rescan loop, its object where it will stay.
    (row,) = docs.uow.rows.values()
    assert row.state is State.QUARANTINED
    assert docs.store.objects == {row.object_key: PDF}


async def test_an_upload_whose_deadline_passes_while_it_waits_for_its_verdict_returns_it(
    docs: Docs,
) -> None:
    """The caller, still there, was told DEADLINE_EXCEEDED of a document that stayed."""
    docs.scanner.gate = asyncio.Event()  # the verdict never comes on its own
    deadlines: list[asyncio.Timeout] = []

    async def upload() -> Document:
        async with asyncio.timeout(None) as deadline:  # as the servicer's, whose time is set
            deadlines.append(deadline)
            return await docs.upload([meta(), PDF], deadline=deadline)

    uploading = asyncio.ensure_future(upload())
    await asyncio.wait_for(docs.scanner.waiting.wait(), 5)

    async def committed() -> bool | None:
        return True if docs.uow.rows else None

    await eventually(committed, within=5, what="the row committed")
    deadlines[0].reschedule(asyncio.get_running_loop().time())  # the time is up now
    document = await uploading
    assert document.state is State.QUARANTINED
    assert docs.uow.rows == {document.id: document}
    assert docs.store.objects == {document.object_key: PDF}
    assert docs.scanner.stopped == 1
    assert list(docs.spool.iterdir()) == []
    assert await docs.rescan() is True
    assert docs.uow.rows[document.id].state is State.CLEAN


async def test_a_reviewer_reads_only_documents_of_their_departments_requests(docs: Docs) -> None:
    document = await docs.upload([meta(), PDF])
    visas = Principal("E2002", Role.REVIEWER, frozenset({"visas"}))
    with pytest.raises(NotFound):
        await docs.get(document, REVIEWER)  # not routed anywhere yet
    request_id = await docs.route(document, "passports")
    assert (await docs.get(document, REVIEWER)).id == document.id
    with pytest.raises(NotFound):
        await docs.get(document, visas)
    # A transfer routes the request again: its documents follow it.
    await handlers.grant_access(
        uow=docs.uow,
        routed=[(str(uuid.uuid4()), Placement(request_id, "visas", ()))],
        now=NOW,
    )
    assert (await docs.get(document, visas)).id == document.id
    with pytest.raises(NotFound):
        await docs.get(document, REVIEWER)


async def test_documents_sent_with_an_answer_join_their_requests_department(docs: Docs) -> None:
    first, answered = await docs.upload([meta(), PDF]), await docs.upload([meta(), PDF])
    request_id = await docs.route(first, "passports")
    await handlers.grant_answer(
        uow=docs.uow, event_id="a1", request_id=request_id, document_ids=(answered.id,), now=NOW
    )
    assert (await docs.get(answered, REVIEWER)).id == answered.id


async def test_an_answer_before_routings_event_joins_the_department_it_is_routed_to(
    docs: Docs,
) -> None:
    first, answered = await docs.upload([meta(), PDF]), await docs.upload([meta(), PDF])
    request_id = uuid.uuid4()
    await handlers.grant_answer(
        uow=docs.uow, event_id="a1", request_id=request_id, document_ids=(answered.id,), now=NOW
    )
    assert docs.changes(answered) == [Change.STORED, Change.CLEAN, Change.ATTACHED]
    with pytest.raises(NotFound):
        await docs.get(answered, REVIEWER)  # no department holds the request yet
    await handlers.grant_access(
        uow=docs.uow, routed=[("r1", Placement(request_id, "passports", (first.id,)))], now=NOW
    )
    assert (await docs.get(answered, REVIEWER)).id == answered.id
    assert (await docs.get(first, REVIEWER)).id == first.id


# --- the document's events, attachment and expiry -----------------------------------------------


async def test_a_clean_upload_is_published_stored_then_clean(docs: Docs) -> None:
    document = await docs.upload([meta(sub_service=PROBLEM, kind="error_screenshot"), PDF])
    assert docs.changes(document) == [Change.STORED, Change.CLEAN]
    stored, clean = docs.uow.events
    assert stored == DocumentEvent(
        change=Change.STORED,
        document_id=document.id,
        owner_id=OWNER.subject,
        at=NOW,
        content_type="application/pdf",
        size_bytes=len(PDF),
        sha256=hashlib.sha256(PDF).hexdigest(),
        document_kind="error_screenshot",
        sub_service_code=PROBLEM,
    )
    assert clean == dataclasses.replace(stored, change=Change.CLEAN)


async def test_an_infected_upload_is_published_with_the_signature_found(docs: Docs) -> None:
    document = await docs.upload([meta(), INFECTED_PDF])
    assert docs.changes(document) == [Change.STORED, Change.INFECTED]
    assert docs.uow.events[-1].reason == REPORTED_SIGNATURE


async def test_a_quarantined_document_is_published_clean_when_the_scanner_returns(
    docs: Docs,
) -> None:
    docs.scanner.down = True
    document = await docs.upload([meta(), PDF])
    assert docs.changes(document) == [Change.STORED]
    docs.scanner.down = False
    assert await docs.rescan()
    assert docs.changes(document) == [Change.STORED, Change.CLEAN]
    assert docs.uow.events[-1].at == LATER


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ([meta(), javascript_pdf()], "content: the PDF contains JavaScript"),
        ([meta(), sample_pdf("x" * MiB)], f"size: the file exceeds the limit of {MiB} bytes"),
    ],
)
async def test_a_refused_upload_is_published_rejected_and_nothing_else(
    docs: Docs, parts: list[DocumentMetadata | bytes], reason: str
) -> None:
    with pytest.raises(InvalidArgument):
        await docs.upload(chunked_parts(parts))
    (rejected,) = docs.uow.events
    assert (rejected.change, rejected.owner_id, rejected.reason) == (
        Change.REJECTED,
        OWNER.subject,
        reason,
    )
    assert rejected.document_id not in docs.uow.rows


async def test_no_event_without_its_change(docs: Docs) -> None:
    docs.uow.failing = {2}
    with pytest.raises(ConnectionError):
        await docs.upload([meta(), PDF])
    assert docs.uow.events == []


async def test_a_submitted_requests_documents_are_published_attached_once(
    docs: Docs, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = await docs.upload([meta(), PDF]), await docs.upload([meta(), PDF])
    unknown = uuid.uuid4()
    await docs.submit(first, second, Document(**{**vars(first), "id": unknown}), event_id="s1")
    (missing,) = [r for r in caplog.records if r.name == handlers.log.name]
    assert missing.levelname == "WARNING"
    assert missing.getMessage().endswith(f"names documents docs does not have: {unknown}")
    request_id = next(iter(docs.uow.attachments[first.id]))
    attached = [e for e in docs.uow.events if e.change is Change.ATTACHED]
    assert [(e.document_id, e.request_id) for e in attached] == sorted(
        [(first.id, request_id), (second.id, request_id)]
    )
    # The same event again, and routing's event for the same request: nothing new.
    await handlers.attach_submitted(
        uow=docs.uow, event_id="s1", request_id=request_id, document_ids=(first.id,), now=NOW
    )
    await handlers.grant_access(
        uow=docs.uow,
        routed=[("r1", Placement(request_id, "passports", (first.id, second.id)))],
        now=NOW,
    )
    assert docs.changes(first) == [Change.STORED, Change.CLEAN, Change.ATTACHED]
    assert docs.changes(unknown) == []


async def test_routing_attaches_documents_when_its_event_comes_first(docs: Docs) -> None:
    document = await docs.upload([meta(), PDF])
    request_id = await docs.route(document)
    assert docs.uow.attachments == {document.id: {request_id}}
    assert docs.changes(document)[-1] is Change.ATTACHED


async def test_documents_never_attached_expire_with_their_objects(docs: Docs) -> None:
    kept = await docs.upload([meta(), PDF])
    await docs.submit(kept)
    docs.scanner.down = True
    waiting = await docs.upload([meta(), PDF])
    docs.scanner.down = False
    forgotten = await docs.upload([meta(), PDF])
    recent = await docs.upload([meta(), PDF], now=NOW + KEEP)
    assert not await docs.expire(NOW + KEEP - timedelta(seconds=1))
    assert docs.uow.rows.keys() == {kept.id, waiting.id, forgotten.id, recent.id}
    assert not await docs.expire(NOW + KEEP)
    assert docs.uow.rows.keys() == {kept.id, recent.id}
    assert set(docs.store.objects) == {kept.object_key, recent.object_key}
    for gone in (waiting, forgotten):
        assert docs.changes(gone)[-1] is Change.REMOVED
        assert docs.uow.events[-1].reason == "not attached to a request within 72 hours"
    with pytest.raises(NotFound):
        await docs.get(forgotten)


async def test_a_document_held_by_a_requests_check_outlives_its_upload_by_a_lifetime(
    docs: Docs,
) -> None:
    """Intake's check at submission holds it: the sweep before docs reads the submitted event
    leaves it for the event to attach."""
    held = await docs.upload([meta(), PDF])
    checked_at = NOW + KEEP - timedelta(minutes=1)
    await handlers.get_document(
        uow=docs.uow, caller=OWNER, document_id=str(held.id), hold_at=checked_at
    )
    assert not await docs.expire(NOW + KEEP + timedelta(minutes=1))
    assert held.id in docs.uow.rows
    assert not await docs.expire(checked_at + KEEP)
    assert held.id not in docs.uow.rows


async def test_a_document_the_caller_may_not_read_is_not_held(docs: Docs) -> None:
    document = await docs.upload([meta(), PDF])
    with pytest.raises(NotFound):
        await handlers.get_document(
            uow=docs.uow, caller=STRANGER, document_id=str(document.id), hold_at=NOW
        )
    assert docs.uow.holds == {}


async def test_expiry_says_when_a_full_batch_leaves_more(docs: Docs) -> None:
    for _ in range(3):
        await docs.upload([meta(), PDF])
    assert await docs.expire(NOW + KEEP, batch=2)
    assert not await docs.expire(NOW + KEEP, batch=2)
    assert docs.uow.rows == {}
    assert docs.store.objects == {}


async def test_storage_down_at_expiry_leaves_objects_until_a_sweep_deletes_them(
    docs: Docs,
) -> None:
    document = await docs.upload([meta(), PDF])
    docs.store.down = True
    assert not await docs.expire(NOW + KEEP)
    assert docs.uow.rows == {}
    assert docs.changes(document)[-1] is Change.REMOVED
    assert document.object_key in docs.store.objects
    # Still down: the next sweep tries again, and stops.
    assert not await docs.expire(NOW + KEEP + timedelta(minutes=1))
    assert document.object_key in docs.store.objects
    docs.store.down = False
    assert not await docs.expire(NOW + KEEP + timedelta(minutes=2))
    docs.assert_nothing_left()


async def test_an_outage_stops_the_expiry_of_a_backlog_until_storage_is_back(docs: Docs) -> None:
    uploaded = [await docs.upload([meta(f"passport-{i}.pdf"), PDF]) for i in range(5)]
    docs.store.down = True
    # A full batch would have the loop go again at once (periodic.every); the failed deletion
    # stops it, and the other documents wait with their objects.
    assert not await docs.expire(NOW + KEEP, batch=2)
    assert docs.uow.rows.keys() == {d.id for d in uploaded[2:]}
    assert not await docs.expire(NOW + KEEP, batch=2)
    assert docs.uow.rows.keys() == {d.id for d in uploaded[2:]}
    assert set(docs.store.objects) == {d.object_key for d in uploaded}
    docs.store.down = False
    while await docs.expire(NOW + KEEP, batch=2):
        pass
    docs.assert_nothing_left()
    assert [docs.changes(d)[-1] for d in uploaded] == [Change.REMOVED] * 5


async def test_an_infected_documents_bytes_storage_could_not_delete_go_with_the_next_sweep(
    docs: Docs,
) -> None:
    docs.store.deletes_down = True
    document = await docs.upload([meta(), INFECTED_PDF])
    assert docs.uow.rows[document.id].state is State.INFECTED
    assert list(docs.uow.doomed) == [document.object_key]
    assert not await docs.expire(NOW)
    assert document.object_key in docs.store.objects
    docs.store.deletes_down = False
    assert not await docs.expire(NOW)
    assert docs.store.objects == {}
    assert docs.uow.doomed == {}
    assert docs.uow.rows[document.id].state is State.INFECTED  # the record stays


async def test_the_object_of_a_failed_commit_storage_could_not_delete_goes_with_the_next_sweep(
    docs: Docs,
) -> None:
    docs.uow.failing, docs.store.deletes_down = {2}, True
    with pytest.raises(ConnectionError):
        await docs.upload([meta(), PDF])
    (key,) = docs.store.objects
    assert list(docs.uow.doomed) == [key]
    docs.store.deletes_down = False
    assert not await docs.expire(NOW)
    docs.assert_nothing_left()


async def test_an_object_storage_refuses_to_delete_holds_up_no_other(
    docs: Docs, caplog: pytest.LogCaptureFixture
) -> None:
    stuck = await docs.upload([meta(), PDF])
    docs.store.refuses = {stuck.object_key}  # a bucket policy denies it, say
    assert not await docs.expire(NOW + KEEP)
    assert stuck.id not in docs.uow.rows
    assert set(docs.store.objects) == {stuck.object_key}
    assert "object storage refused to delete 1 objects" in caplog.text
    # The sweeps after it remove and delete the others, batch after batch.
    later = NOW + 2 * KEEP
    others = [await docs.upload([meta(f"{i}.pdf"), PDF], now=NOW + KEEP) for i in range(3)]
    while await docs.expire(later, batch=1):
        pass
    assert all(d.id not in docs.uow.rows for d in others)
    assert set(docs.store.objects) == {stuck.object_key}
    assert list(docs.uow.doomed) == [stuck.object_key]


async def test_an_object_storage_refuses_is_tried_less_and_less_often(docs: Docs) -> None:
    document = await docs.upload([meta(), PDF])
    docs.store.refuses = {document.object_key}
    assert not await docs.expire(NOW + KEEP)
    tries = len(docs.store.refuses)
    asked: list[datetime] = []
    at = NOW + KEEP
    real = docs.store.delete_many

    async def delete_many(keys: list[str]) -> list[str]:
        if document.object_key in keys:
            asked.append(at)
        return await real(keys)

    docs.store.delete_many = delete_many  # type: ignore[method-assign]
    for _ in range(24 * 60):  # a sweep a minute for a day
        at += timedelta(minutes=1)
        assert not await docs.expire(at)
    waits = [(b - a) // timedelta(minutes=1) for a, b in itertools.pairwise(asked)]
    assert waits[:6] == [2, 4, 8, 16, 32, 60]
    assert set(waits[6:]) == {60}
    assert docs.uow.doomed[document.object_key].refusals == len(asked) + tries
    docs.store.refuses = set()
    at += RETRY_MOST
    assert not await docs.expire(at)
    assert docs.store.objects == {}
    assert docs.uow.doomed == {}


async def test_an_upload_failing_with_the_database_and_storage_both_down_leaves_no_object(
    docs: Docs,
) -> None:
    """Its row's commit fails, and so do the deletion of its object and the recording of it:
    the record made before it was stored has it deleted once the upload's time is well past."""
    docs.store.deletes_down = True
    docs.uow.failing = {2, 3}
    with pytest.raises(ConnectionError):
        await docs.upload([meta(), PDF])
    (key,) = docs.store.objects
    docs.store.deletes_down, docs.uow.failing = False, set()
    # Its row might still commit until then.
    assert not await docs.expire(NOW + UPLOAD_TIME)
    assert key in docs.store.objects
    assert not await docs.expire(NOW + UPLOAD_TIME + handlers.UPLOAD_MARGIN)
    docs.assert_nothing_left()


async def test_a_row_that_commits_after_the_sweep_took_its_object_is_refused(
    docs: Docs,
) -> None:
    """An upload stalled past its time: the sweep deleted its object, so no row may say it
    has one."""
    real = docs.store.stream_to

    def stream_to(key: str, spool: Spool, size: int | None) -> asyncio.Future[None]:
        del docs.uow.doomed[key]  # the sweep took it, and its object
        return real(key, spool, size)

    docs.store.stream_to = stream_to  # type: ignore[method-assign]
    with pytest.raises(Unavailable, match="took too long to record"):
        await docs.upload([meta(), PDF])
    assert docs.uow.rows == {}
    assert docs.uow.events == []


async def test_a_row_that_commits_while_the_sweep_deletes_its_object_is_refused(
    docs: Docs,
) -> None:
    """The sweep took the upload's record, and is deleting its object: still recorded, it is
    not the row's to keep."""
    real = docs.store.stream_to

    def stream_to(key: str, spool: Spool, size: int | None) -> asyncio.Future[None]:
        docs.uow.doomed[key] = docs.uow.doomed[key]._replace(taken=True)
        return real(key, spool, size)

    docs.store.stream_to = stream_to  # type: ignore[method-assign]
    with pytest.raises(Unavailable) as caught:
        await docs.upload([meta(), PDF])
    said = caught.value.args[0]
    assert (said, said.ar) == (
        "the upload took too long to record; upload the file again",
        "استغرق تسجيل الملف المرفوع وقتًا طويلًا؛ ارفع الملف مرة أخرى",
    )
    assert docs.uow.rows == {}
    assert docs.uow.events == []
    docs.assert_nothing_left()


def chunked_parts(parts: list[DocumentMetadata | bytes]) -> list[DocumentMetadata | bytes]:
    out: list[DocumentMetadata | bytes] = []
    for part in parts:
        out.extend(chunked(part) if isinstance(part, bytes) else [part])
    return out


# --- the per-account upload limit ---------------------------------------------------------------


def slot(
    docs: Docs, caller: Principal = OWNER, now: datetime = NOW
) -> AbstractAsyncContextManager[None]:
    return handlers.account_slot(
        uow=docs.uow, caller=caller, now=now, hold_for=timedelta(minutes=2), limit=2
    )


async def test_an_account_holds_at_most_its_limit_of_uploads(docs: Docs) -> None:
    async with slot(docs), slot(docs):
        with pytest.raises(ResourceExhausted) as caught:
            async with slot(docs):
                pass
        said = caught.value.args[0]
        assert (said, said.ar) == (
            "at most 2 uploads at once per account",
            "عمليتا رفع على الأكثر في وقت واحد لكل حساب",
        )
        async with slot(docs, STRANGER):
            pass
    async with slot(docs):
        assert len(docs.uow.leases.held) == 1


async def test_a_failed_upload_gives_its_slot_back(docs: Docs) -> None:
    with pytest.raises(InvalidArgument):
        async with slot(docs):
            await docs.upload([meta(), b"not a pdf"])
    assert docs.uow.leases.held == {}


async def test_the_leases_of_a_process_that_died_lapse_at_the_upload_deadline(docs: Docs) -> None:
    for _ in range(2):
        await docs.uow.leases.take(
            OWNER.subject, uuid.uuid4(), now=NOW, until=NOW + timedelta(minutes=2), limit=2
        )
    with pytest.raises(ResourceExhausted):
        async with slot(docs, now=NOW + timedelta(minutes=1)):
            pass
    async with slot(docs, now=NOW + timedelta(minutes=2)):
        pass


async def test_the_sweep_deletes_lapsed_leases_and_their_national_ids(docs: Docs) -> None:
    """A process killed mid-upload never gives its leases back; an account that uploads no
    more never takes them over."""
    for owner in (OWNER, OWNER, STRANGER):
        await docs.uow.leases.take(
            owner.subject, uuid.uuid4(), now=NOW, until=NOW + timedelta(minutes=2), limit=2
        )
    await docs.uow.leases.take(
        RESIDENT.subject, uuid.uuid4(), now=NOW, until=NOW + timedelta(minutes=5), limit=2
    )
    # More than a batch lapsed: the loop goes again at once.
    assert await docs.expire(NOW + timedelta(minutes=2), batch=2)
    assert not await docs.expire(NOW + timedelta(minutes=2), batch=2)
    assert [owner for owner, _ in docs.uow.leases.held.values()] == [RESIDENT.subject]


async def test_a_lease_whose_taking_failed_midway_is_given_back(docs: Docs) -> None:
    docs.uow.failing = {1}  # the commit fails, perhaps after the database applied it
    with pytest.raises(ConnectionError):
        async with slot(docs):
            pass
    assert docs.uow.leases.held == {}
