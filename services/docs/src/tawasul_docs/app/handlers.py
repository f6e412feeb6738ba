"""Docs' use cases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tawasul_platform.catalog import Catalog
from tawasul_platform.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from tawasul_platform.i18n import Bilingual, Noun, at_most
from tawasul_platform.identity import Principal, Role
from tawasul_platform.ports import claim_each

from tawasul_docs.app.ports import ObjectStore, Scanner, UnitOfWork, Verdict
from tawasul_docs.app.spool import Spool
from tawasul_docs.domain.inspection import Inspection, Inspector
from tawasul_docs.domain.model import (
    MAX_CHUNK,
    Change,
    Document,
    DocumentEvent,
    DocumentMetadata,
    DownloadLink,
    Placement,
    State,
    UploadLimits,
    clean_key,
    declared_size,
    limits_for,
    parse_document_id,
    quarantine_key,
)

log = logging.getLogger(__name__)
# An upload scans its own document; the rescan loop waits this long before it tries.
RESCAN_GRACE = timedelta(seconds=30)
# The checks read what piled up in the spool since their last read, up to this much at once.
CHECKED_BYTES = 1024 * 1024
# An upload's object, recorded to delete before it is stored, is deleted this long after the
# upload's own time is up unless its row committed meanwhile (which forgets the record).
UPLOAD_MARGIN = timedelta(hours=1)
# The row came so late that the sweep took its object (a stalled database, say).
_TOO_LATE = Bilingual(
    "the upload took too long to record; upload the file again",
    "استغرق تسجيل الملف المرفوع وقتًا طويلًا؛ ارفع الملف مرة أخرى",
)
_DOCUMENTS = Noun("document", "documents", "مستند واحد", "مستندان", "مستندات", "مستندًا", "مستند")
_UPLOADS = Noun(
    "upload", "uploads", "عملية رفع واحدة", "عمليتا رفع", "عمليات رفع", "عملية رفع", "عملية رفع"
)


@asynccontextmanager
async def account_slot(
    *, uow: UnitOfWork, caller: Principal, now: datetime, hold_for: timedelta, limit: int
) -> AsyncIterator[None]:
    """One of the few uploads an account may have in progress, across every replica.

    The lease is given back when the upload ends however it ends; one held by a process that
    died lapses after `hold_for`, the longest an upload may last.
    """
    lease = uuid.uuid4()
    try:
        async with uow:
            taken = await uow.leases.take(
                caller.subject, lease, now=now, until=now + hold_for, limit=limit
            )
            await uow.commit()
    except BaseException:
        # Cancelled (the caller's deadline) or failed after the commit may have landed.
        await asyncio.shield(_give_back(uow, lease))
        raise
    if not taken:
        most = at_most(_UPLOADS, limit)
        raise ResourceExhausted(
            Bilingual(f"{most} at once per account", f"{most.ar} في وقت واحد لكل حساب")
        )
    try:
        yield
    finally:
        await asyncio.shield(_give_back(uow, lease))


async def _give_back(uow: UnitOfWork, lease: uuid.UUID) -> None:
    try:
        async with uow:
            await uow.leases.release(lease)
            await uow.commit()
    except Exception:
        log.warning("upload lease %s stays until it lapses", lease, exc_info=True)


async def upload_document(
    *,
    uow: UnitOfWork,
    store: ObjectStore,
    scanner: Scanner,
    catalog: Catalog,
    caller: Principal,
    parts: AsyncIterator[DocumentMetadata | bytes],
    default_max_bytes: int,
    spool_dir: Path | None,
    now: datetime,
    hold_for: timedelta,
    deadline: asyncio.Timeout | None,
    parses: asyncio.Semaphore,
    max_unattached: int,
) -> Document:
    """Streams an upload to storage, checks what it really is and has it scanned, all three
    reading the bytes while they still arrive.

    The bytes are spooled to a file that storage, the checks and the scanner each read at
    their own pace: memory holds a few chunks of each upload, whatever its size. A refused or
    interrupted upload leaves no object (the storing is aborted) and no row; one the checks
    refuse is refused as soon as its bytes show it. A size declared up front is held to.

    Once its row has committed, the upload returns the document, quarantined if its verdict
    is not saved (the scanner or the database down, or `deadline`, the upload's own, passed
    while it waited): the caller learns its id, and the rescan loop finishes it. Cancelled
    otherwise, the caller is gone: the cancellation goes on, and the row waits all the same.

    The object is recorded to delete before it is stored, to be deleted once the upload's time
    (`hold_for`, the longest an upload lasts) is well past, and the row's transaction forgets
    it: an object whose row never commits is deleted even when the process dies, or storage
    and the database are both down as the upload fails. A row that comes after the sweep took
    the record is refused (Unavailable: the caller uploads again), never left without its
    object.

    An account keeps at most `max_unattached` documents that joined no request (a few more
    when its uploads run at once, each counting before the others' rows commit): each is kept
    a while (`keep_unattached_hours`), and an account uploading without end filled the bucket.
    """
    if not caller.is_beneficiary:
        raise PermissionDenied(
            Bilingual("only beneficiaries upload documents", "رفع المستندات للمستفيدين فقط")
        )
    metadata = await anext(parts, None)
    if not isinstance(metadata, DocumentMetadata):
        raise InvalidArgument(
            {
                "metadata": Bilingual(
                    "the first message must carry the document's metadata",
                    "يجب أن تحمل الرسالة الأولى بيانات المستند",
                )
            }
        )
    limits = limits_for(catalog, metadata, default_max_bytes=default_max_bytes)
    size = declared_size(metadata)
    document_id = uuid.uuid4()
    key = clean_key(document_id)
    async with uow:
        if await uow.documents.count_unattached(caller.subject) >= max_unattached:
            most = at_most(_DOCUMENTS, max_unattached)
            raise ResourceExhausted(
                Bilingual(
                    f"{most} per account not yet in a request; name them in a request, or"
                    " wait until they are removed",
                    f"{most.ar} لكل حساب لم تُرفق بطلب بعد؛ أرفقها بطلب، أو انتظر حذفها",
                )
            )
        await uow.deletions.intend(key, until=now + hold_for + UPLOAD_MARGIN)
        await uow.commit()
    spool = Spool(spool_dir)
    readers: list[asyncio.Task[Any]] = []
    try:
        uploading = store.stream_to(key, spool, size)
        inspecting = asyncio.create_task(_inspect(spool, metadata, limits, parses))
        scanning = asyncio.create_task(scanner.scan(spool.chunks(CHECKED_BYTES)))
        readers = [inspecting, scanning]
        try:
            async for part in parts:
                if isinstance(part, DocumentMetadata):
                    raise InvalidArgument(
                        {
                            "metadata": Bilingual(
                                "only the first message carries metadata",
                                "الرسالة الأولى وحدها تحمل بيانات المستند",
                            )
                        }
                    )
                if len(part) > MAX_CHUNK:
                    raise InvalidArgument(
                        {
                            "chunk": Bilingual(
                                f"chunks of at most {MAX_CHUNK} bytes",
                                f"أجزاء لا يزيد كل منها على {MAX_CHUNK} بايت",
                            )
                        }
                    )
                if spool.size + len(part) > limits.max_bytes:
                    raise InvalidArgument(
                        {
                            "size": Bilingual(
                                f"the file exceeds the limit of {limits.max_bytes} bytes",
                                f"الملف يتجاوز الحد المسموح ({limits.max_bytes} بايت)",
                            )
                        }
                    )
                if size is not None and spool.size + len(part) > size:
                    raise InvalidArgument(
                        {
                            "metadata.size_bytes": Bilingual(
                                f"the upload carries more than {size} bytes",
                                f"الملف المرفوع أكبر من {size} بايت",
                            )
                        }
                    )
                await spool.append(part)
                for reader in (inspecting, uploading):
                    if reader.done():  # refused, or storage failed: no need to read the rest
                        await reader
            if size is not None and spool.size != size:
                raise InvalidArgument(
                    {
                        "metadata.size_bytes": Bilingual(
                            f"{size} bytes declared, {spool.size} sent",
                            f"أُعلن {size} بايت وأُرسل {spool.size}",
                        )
                    }
                )
            await spool.finish()
            inspection = await inspecting
            # Shielded: a cancelled caller must not cancel the storing, which _abandon awaits.
            await asyncio.shield(uploading)
        except BaseException as exc:
            # Refused, failed or cancelled (the caller's deadline): whatever reached storage
            # goes, even if the last part was on its way when the caller went.
            spool.abort()
            await asyncio.shield(_abandon(uow, store, key, uploading))
            if isinstance(exc, InvalidArgument):
                await _rejected(uow, document_id, caller, metadata, spool.size, str(exc), now)
            raise
        document = await _quarantined(
            uow=uow,
            store=store,
            caller=caller,
            metadata=metadata,
            document_id=document_id,
            inspection=inspection,
            now=now,
        )
        try:
            verdict = await scanning
            return await _settle(uow=uow, store=store, document=document, verdict=verdict, now=now)
        except Exception as exc:
            # Fail closed: it stays in quarantine and the rescan loop takes it up later.
            unexpected = not isinstance(exc, Unavailable)
            log.warning(
                "document %s stays in quarantine: %s", document.id, exc, exc_info=unexpected
            )
            return document
        except asyncio.CancelledError:
            if deadline is None or not deadline.expired():
                raise  # the caller is gone, and the row waits for the rescan loop
            # The caller waits still; the deadline's exit takes back its cancellation.
            log.warning("document %s stays in quarantine: the upload's time is up", document.id)
            return document
    finally:
        # Refused, failed or cancelled: a reader still at work stops before its spool goes.
        for reader in readers:
            await _drop(reader)
        await asyncio.to_thread(spool.close)


async def _inspect(
    spool: Spool, metadata: DocumentMetadata, limits: UploadLimits, parses: asyncio.Semaphore
) -> Inspection:
    """The checks, fed the bytes as they arrive; each chunk's share runs in a worker thread,
    and the final parse when `parses` has room."""
    inspector = Inspector(
        declared_type=metadata.declared_content_type[:100],
        max_bytes=limits.max_bytes,
        allowed=limits.allowed,
    )
    # Larger reads than the chunks received: one hop to a thread for what piled up meanwhile.
    async for chunk in spool.chunks(CHECKED_BYTES):
        await asyncio.to_thread(inspector.feed, chunk)

    def finish() -> Inspection:
        with spool.whole() as file:
            return inspector.finish(file)

    async with parses:
        parsing = asyncio.ensure_future(asyncio.to_thread(finish))
        try:
            return await asyncio.shield(parsing)
        except asyncio.CancelledError:
            # A thread cannot be stopped: the parse keeps its slot, and its spool stays
            # open, until it ends, or the slots would bound nothing.
            await asyncio.wait([parsing])
            raise


async def _quarantined(
    *,
    uow: UnitOfWork,
    store: ObjectStore,
    caller: Principal,
    metadata: DocumentMetadata,
    document_id: uuid.UUID,
    inspection: Inspection,
    now: datetime,
) -> Document:
    """Records the stored and checked upload as quarantined."""
    document = Document.create(
        id=document_id,
        owner_id=caller.subject,
        metadata=metadata,
        inspection=inspection,
        now=now,
    )
    try:
        async with uow:
            if not await uow.deletions.keep(document.object_key):
                raise Unavailable(_TOO_LATE)  # the sweep took its object
            await uow.documents.add(document)
            uow.record(DocumentEvent.of(document, Change.STORED, now))
            await uow.commit()
    except BaseException:
        # A failed commit, or the caller gone (deadline, disconnect): no orphan object.
        await asyncio.shield(_discard(uow=uow, store=store, document=document))
        raise
    return document


async def _drop(task: asyncio.Task[Any]) -> None:
    """Stops a task whose result nobody will read (none if it has ended)."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # read, so that a task that failed first is not reported unread


async def _rejected(
    uow: UnitOfWork,
    document_id: uuid.UUID,
    caller: Principal,
    metadata: DocumentMetadata,
    size: int,
    reason: str,
    now: datetime,
) -> None:
    """Publishes a refused upload; the caller hears of the refusal whether or not this lands."""
    event = DocumentEvent.rejected(
        document_id=document_id,
        owner_id=caller.subject,
        metadata=metadata,
        size_bytes=size,
        reason=reason,
        at=now,
    )
    try:
        async with uow:
            uow.record(event)
            await uow.commit()
    except Exception:
        log.warning("cannot record the refused upload %s", document_id, exc_info=True)


async def _settle(
    *, uow: UnitOfWork, store: ObjectStore, document: Document, verdict: Verdict, now: datetime
) -> Document:
    """Records the scanner's verdict, in an order that never strands a document.

    The row is locked first (a concurrent scan of the same document waits, then finds it
    settled). A clean one is readable from then on, where it was stored; an infected one is
    marked before its bytes go. A failure at any step leaves a row whose object exists. The
    object the row no longer needs is recorded to delete with the verdict, then deleted (or,
    storage down, by the expiry sweep).
    """
    clean = verdict.clean
    scanned = document.scanned(clean=clean)
    # Stored under quarantine/ by an earlier version: copied to where clean documents live.
    moved = clean and scanned.object_key != document.object_key
    async with uow:
        if not await uow.documents.still_quarantined(document.id):
            return await _current(uow, document)
        if moved:
            await store.copy(
                document.object_key, scanned.object_key, content_type=document.content_type.value
            )
        await uow.documents.save(scanned)
        if clean:
            uow.record(DocumentEvent.of(scanned, Change.CLEAN, now))
        else:
            uow.record(DocumentEvent.of(scanned, Change.INFECTED, now, reason=verdict.signature))
        if moved or not clean:
            await uow.deletions.add([document.object_key])
        await uow.commit()
    if not clean:
        log.warning("document %s is infected; its bytes are deleted", document.id)
    if moved or not clean:
        try:
            await _delete(uow, store, [document.object_key], now)
        except Exception as exc:
            log.warning("object %s stays for the expiry sweep: %s", document.object_key, exc)
    return scanned


async def _current(uow: UnitOfWork, document: Document) -> Document:
    return await uow.documents.get(document.id) or document


async def rescan_quarantined(
    *, uow: UnitOfWork, store: ObjectStore, scanner: Scanner, now: datetime
) -> bool:
    """Scans one document the scanner could not take on arrival; True if there was one.

    Only documents past a grace period are taken, so an upload's own scan goes first; the
    one taken is marked as tried, so one that cannot be scanned does not block the others.
    """
    async with uow:
        waiting = await uow.documents.quarantined(1, older_than=now - RESCAN_GRACE)
        if not waiting:
            return False
        document = waiting[0]
        await uow.documents.tried(document.id, now)
        await uow.commit()
    verdict = await scanner.scan(store.chunks(document.object_key))
    await _settle(uow=uow, store=store, document=document, verdict=verdict, now=now)
    return True


async def expire_unattached(
    *, uow: UnitOfWork, store: ObjectStore, now: datetime, keep_for: timedelta, batch: int = 200
) -> bool:
    """Removes documents that joined no request within `keep_for`, and upload leases that
    lapsed; True while there are more.

    The rows go with their events, their objects recorded as still to delete in the same
    transaction; the objects go next, and are forgotten once deleted. Objects an earlier
    failure left recorded (this sweep's, an upload's, a scan's) go first: while storage cannot
    delete them the sweep stops there (False), and the rows wait with their objects. One that
    storage refuses alone (denied, say) does not stop it: it is tried again later, less and
    less often, and logged, and counted (tawasul_docs_object_deletions_refused_total).

    A lease is deleted by its upload's end, or by the account's next upload once lapsed; one
    whose process died, of an account that uploads no more, would keep its national ID.
    """
    async with uow:
        lapsed = await uow.leases.prune(now, limit=batch)
        await uow.commit()
    try:
        retried = await _delete_due(uow, store, batch, now)
        async with uow:
            expired = await uow.documents.unattached(batch, older_than=now - keep_for)
            if not expired:
                return batch in (retried, lapsed)
            await uow.documents.remove([d.id for d in expired])
            keys = sorted({d.object_key for d in expired} | {quarantine_key(d.id) for d in expired})
            await uow.deletions.add(keys)
            reason = f"not attached to a request within {keep_for.total_seconds() / 3600:g} hours"
            for document in expired:
                uow.record(DocumentEvent.of(document, Change.REMOVED, now, reason=reason))
            await uow.commit()
        log.info("removed %d documents never attached", len(expired))
        await _delete(uow, store, keys, now)
    except Unavailable as exc:
        log.warning("objects to delete wait for object storage: %s", exc)
        return False
    return batch in (len(expired), retried, lapsed)


async def _delete_due(uow: UnitOfWork, store: ObjectStore, limit: int, now: datetime) -> int:
    """Deletes objects recorded as still to delete, due by `now`, up to `limit`; how many
    there were. They are taken first, and that committed: an upload's row committing while
    its object goes is refused, rather than left pointing to nothing."""
    async with uow:
        keys = await uow.deletions.take(limit, now=now)
        await uow.commit()
    if keys:
        await _delete(uow, store, keys, now)
        log.info("tried %d objects left to delete earlier", len(keys))
    return len(keys)


async def _delete(uow: UnitOfWork, store: ObjectStore, keys: list[str], now: datetime) -> None:
    """Deletes recorded objects, then forgets those deleted; those storage refused are tried
    again later. Storage or the database failing, they stay recorded (a missing object is no
    error when tried again)."""
    refused = set(await store.delete_many(keys))
    async with uow:
        await uow.deletions.done([k for k in keys if k not in refused])
        if refused:
            await uow.deletions.refused(sorted(refused), now=now)
        await uow.commit()
    if refused:
        log.warning(
            "object storage refused to delete %d objects, tried again later: %s",
            len(refused),
            ", ".join(sorted(refused)[:5]),
        )


async def _abandon(
    uow: UnitOfWork, store: ObjectStore, key: str, uploading: Awaitable[None]
) -> None:
    with contextlib.suppress(Exception):
        await uploading
    await _forget(uow, store, key)


async def _forget(uow: UnitOfWork, store: ObjectStore, key: str) -> None:
    """Deletes an upload's object that holds no row, and its record; one storage cannot delete
    now is due at the next expiry sweep. The database away too, the record made before the
    upload stays: the sweep deletes it once the upload's time is well past."""
    try:
        await store.delete(key)
    except Exception as exc:
        log.warning("object %s stays for the expiry sweep: %s", key, exc)
        deleted = False
    else:
        deleted = True
    try:
        async with uow:
            if deleted:
                await uow.deletions.done([key])
            else:
                await uow.deletions.add([key])
            await uow.commit()
    except Exception:
        log.warning("object %s holds no row; the expiry sweep deletes it later", key)


async def _discard(*, uow: UnitOfWork, store: ObjectStore, document: Document) -> None:
    """Deletes the object of a document whose row did not commit.

    A commit can fail after the database applied it (connection lost on the reply), so the row
    is looked up first; when even that fails the object is left to the record made before it
    was stored (the commit forgot it, or the sweep deletes it later): an orphan object is a
    stored scan kept too long, a row without its object is a document lost.
    """
    try:
        async with uow:
            committed = await uow.documents.get(document.id) is not None
    except Exception:
        log.warning("cannot tell whether document %s was recorded; its object waits", document.id)
        return
    if not committed:
        await _forget(uow, store, document.object_key)


def _no_document(document_id: str) -> Bilingual:
    return Bilingual(f"no document {document_id!r}", f"لا يوجد مستند {document_id}")


async def get_document(
    *,
    uow: UnitOfWork,
    caller: Principal,
    document_id: str,
    hold_at: datetime | None = None,
) -> Document:
    """A document's metadata; one the caller may not read is reported as not found.

    With `hold_at` (intake checking a submission or an answer that names it), its unattached
    lifetime restarts then: docs attaches it when it reads the request's event, later, and the
    expiry sweep running in between would otherwise leave the request without it.
    """
    key = parse_document_id(document_id)
    async with uow:
        document = await uow.documents.get(key)
        departments = await uow.access.departments(key) if document else frozenset()
        if caller.role is Role.REVIEWER and departments & caller.departments:
            # Review's record of the reviewer may have taken the department away.
            caller = caller.narrowed(await uow.staff.get(caller.subject))
        if document is None or not document.readable_by(caller, departments):
            raise NotFound(_no_document(document_id))
        if hold_at is not None:
            if not await uow.documents.hold(key, hold_at):
                raise NotFound(_no_document(document_id))  # expired as it was read
            await uow.commit()
    return document


CONSUMER = "docs"


async def _attach(
    uow: UnitOfWork, request_id: uuid.UUID, document_ids: tuple[uuid.UUID, ...], now: datetime
) -> None:
    """Records the documents on the request (they no longer expire) and publishes each one
    that joins it now; intake checked at submission that they exist, are clean and are the
    applicant's, and held them, so one docs no longer has is logged (its reviewers see it
    listed without a link)."""
    attached = await uow.documents.attach(request_id, document_ids, now)
    if attached.missing:
        log.warning(
            "request %s names documents docs does not have: %s",
            request_id,
            ", ".join(map(str, attached.missing)),
        )
    for document in attached.joined:
        uow.record(DocumentEvent.of(document, Change.ATTACHED, now, request_id=request_id))


async def attach_submitted(
    *,
    uow: UnitOfWork,
    event_id: str,
    request_id: uuid.UUID,
    document_ids: tuple[uuid.UUID, ...],
    now: datetime,
) -> None:
    """A submitted request's documents are attached to it."""
    if not document_ids:
        return  # nothing to attach, so nothing to remember having done
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        await _attach(uow, request_id, document_ids, now)
        await uow.commit()


async def grant_access(
    *, uow: UnitOfWork, routed: Sequence[tuple[str, Placement]], now: datetime
) -> None:
    """Routed (or transferred) requests' documents become readable by their departments: a
    poll's worth (event id, placement) in a few statements, each event once.

    Routing's event may arrive before intake's: it attaches them too, whichever comes first.
    A placement no later than one applied (a dead letter replayed, a late one) moves nothing.
    """
    async with uow:
        fresh = await claim_each(uow, CONSUMER, routed)
        latest: dict[uuid.UUID, Placement] = {}
        for placement in fresh:
            await _attach(uow, placement.request_id, placement.document_ids, now)
            known = latest.get(placement.request_id)
            if known is not None and known.outdated_by(placement):
                _skipped(placement, known.sequence)
            latest[placement.request_id] = placement if known is None else known.then(placement)
        for placement in await uow.access.grant(list(latest.values())):
            _skipped(placement, None)
        await uow.commit()


def _skipped(placement: Placement, applied: int | None) -> None:
    log.warning(
        "skipping placement of request %s in %s: its sequence %d is no later than %s, applied"
        " already",
        placement.request_id,
        placement.department,
        placement.sequence,
        "one" if applied is None else applied,
    )


async def grant_answer(
    *,
    uow: UnitOfWork,
    event_id: str,
    request_id: uuid.UUID,
    document_ids: tuple[uuid.UUID, ...],
    now: datetime,
) -> None:
    """Documents sent with an answer join their request, and its department: now, or when
    routing's event places the request, if the answer came first (docs reads the two topics
    apart, so one may lag)."""
    if not document_ids:
        return  # nothing to attach, so nothing to remember having done
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        await _attach(uow, request_id, document_ids, now)
        await uow.access.grant_attached(request_id)
        await uow.commit()


async def get_download_url(
    *,
    uow: UnitOfWork,
    store: ObjectStore,
    caller: Principal,
    document_id: str,
    valid_for: timedelta,
    now: datetime,
) -> DownloadLink:
    """A presigned URL for a clean document's bytes, valid for `valid_for`."""
    document = await get_document(uow=uow, caller=caller, document_id=document_id)
    if document.state is State.INFECTED:
        # Its bytes are deleted: it will never be readable, so "yet" would mislead its owner.
        raise NotFound(
            Bilingual(
                f"document {document_id!r} was refused by the malware scan and its contents"
                " deleted; upload a clean copy",
                f"رُفض المستند {document_id} في فحص البرمجيات الخبيثة وحُذف محتواه؛"
                " ارفع نسخة سليمة منه",
            )
        )
    if document.state is not State.CLEAN:
        raise NotFound(
            Bilingual(
                f"no document {document_id!r} that can be read yet",
                f"لا يوجد مستند {document_id} يمكن قراءته بعد",
            )
        )
    url = await store.presign_get(
        document.object_key,
        expires=valid_for,
        download_name=document.filename,
        content_type=document.content_type.value,
    )
    return DownloadLink(document=document, url=url, expires_at=now + valid_for)
