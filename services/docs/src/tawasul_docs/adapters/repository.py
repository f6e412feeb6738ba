"""PostgreSQL-backed repository and unit of work for docs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Integer, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from tawasul_platform.db import among
from tawasul_platform.sql import Database, Row, Session
from tawasul_platform.staff import SqlStaffRecords
from tawasul_platform.uow import Messaging, SqlUnitOfWork

from tawasul_docs.adapters import tables
from tawasul_docs.adapters.events import to_event
from tawasul_docs.app.ports import RETRY_FIRST, RETRY_MOST, Attached
from tawasul_docs.domain.inspection import Kind
from tawasul_docs.domain.model import Document, DocumentEvent, Placement, State

SERVICE = "docs"


# Built once, the values given at execution: `.values(row)` built and keyed a new statement
# per call.
_INSERT_DOCUMENT = insert(tables.documents)
_deletion = pg_insert(tables.object_deletions)
# Due at once; one recorded already to delete later (an upload's, a refused one) is due now.
_RECORD_DELETION = _deletion.on_conflict_do_update(
    index_elements=[tables.object_deletions.c.key],
    set_={
        "not_before": func.least(
            tables.object_deletions.c.not_before, _deletion.excluded.not_before
        )
    },
)
# The request's department, and every document it holds moves with it: one round trip. Not
# for a placement no later than the one applied (Placement.outdated_by): it moves nothing and
# returns no row.
_placed = tables.request_departments
_sequence = bindparam("b_sequence", type_=Integer)
_outdated = (_sequence > 0) & exists().where(
    (_placed.c.request_id == bindparam("b_request_id")) & (_placed.c.sequence >= _sequence)
)
_moved = (
    update(tables.document_access)
    .where((tables.document_access.c.request_id == bindparam("b_request_id")) & ~_outdated)
    .values(department=bindparam("b_department"))
    .cte("moved")
)
_department = pg_insert(_placed).values(
    request_id=bindparam("b_request_id"), department=bindparam("b_department"), sequence=_sequence
)
_GRANT = (
    _department.on_conflict_do_update(
        index_elements=[_placed.c.request_id],
        set_={
            "department": _department.excluded.department,
            "sequence": func.greatest(_placed.c.sequence, _department.excluded.sequence),
        },
        where=~(
            (_department.excluded.sequence > 0)
            & (_department.excluded.sequence <= _placed.c.sequence)
        ),
    )
    .returning(_placed.c.request_id)
    .add_cte(_moved)
)
# A request not placed yet gets a row without a department; either way the row is locked to
# the end of the transaction, so a placement and an answer of one request take turns.
_hold = pg_insert(tables.request_departments).values(
    request_id=bindparam("b_request_id"), department=None
)
_HOLD = _hold.on_conflict_do_update(
    index_elements=[tables.request_departments.c.request_id],
    set_={"department": tables.request_departments.c.department},
)
# Every document attached to the requests, readable by the department each sits in. Its own
# statement, after the lock above: its snapshot then sees what the other transaction committed.
_a, _r, _access = tables.attachments, tables.request_departments, tables.document_access
_attached = pg_insert(_access).from_select(
    ["document_id", "request_id", "department"],
    select(_a.c.document_id, _a.c.request_id, _r.c.department)
    .join(_r, _r.c.request_id == _a.c.request_id)
    .where(among(_a.c.request_id, "request_ids") & _r.c.department.is_not(None)),
)
_OPEN = _attached.on_conflict_do_update(
    index_elements=[_access.c.document_id, _access.c.request_id],
    set_={"department": _attached.excluded.department},
    where=_access.c.department != _attached.excluded.department,
)


def _row(document: Document) -> dict[str, Any]:
    return {
        "id": document.id,
        "owner_id": document.owner_id,
        "filename": document.filename,
        "content_type": document.content_type.value,
        "size_bytes": document.size_bytes,
        "sha256": document.sha256,
        "object_key": document.object_key,
        "created_at": document.created_at,
        "state": document.state.value,
        "document_kind": document.document_kind,
        "sub_service_code": document.sub_service_code,
    }


def _document(row: Row) -> Document:
    return Document(
        id=row.id,
        owner_id=row.owner_id,
        filename=row.filename,
        content_type=Kind(row.content_type),
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        object_key=row.object_key,
        created_at=row.created_at,
        state=State(row.state),
        document_kind=row.document_kind,
        sub_service_code=row.sub_service_code,
    )


class SqlDocumentRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def add(self, document: Document) -> None:
        await self._session.execute(_INSERT_DOCUMENT, _row(document))

    async def get(self, document_id: uuid.UUID) -> Document | None:
        row = (
            await self._session.execute(
                select(tables.documents).where(tables.documents.c.id == document_id)
            )
        ).first()
        return None if row is None else _document(row)

    async def save(self, document: Document) -> None:
        t = tables.documents
        await self._session.execute(
            update(t)
            .where(t.c.id == document.id)
            .values(state=document.state.value, object_key=document.object_key)
        )

    async def quarantined(self, limit: int, *, older_than: datetime) -> list[Document]:
        t = tables.documents
        rows = await self._session.execute(
            select(t)
            .where((t.c.state == State.QUARANTINED.value) & (t.c.created_at <= older_than))
            .order_by(t.c.scan_tried_at.asc().nulls_first(), t.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_document(r) for r in rows]

    async def tried(self, document_id: uuid.UUID, at: datetime) -> None:
        t = tables.documents
        await self._session.execute(update(t).where(t.c.id == document_id).values(scan_tried_at=at))

    async def still_quarantined(self, document_id: uuid.UUID) -> bool:
        t = tables.documents
        state: str | None = await self._session.scalar(
            select(t.c.state).where(t.c.id == document_id).with_for_update()
        )
        return state == State.QUARANTINED.value

    async def attach(
        self, request_id: uuid.UUID, document_ids: tuple[uuid.UUID, ...], at: datetime
    ) -> Attached:
        """Records that the documents joined the request: those that had not yet, and those
        named that it does not have.

        The rows are locked first, so a document the expiry job holds is either gone when
        this reads it (nothing to attach) or attached before the job can take it.
        """
        if not document_ids:
            return Attached([], ())
        t = tables.documents
        rows = await self._session.execute(
            select(t).where(among(t.c.id, "ids")).order_by(t.c.id).with_for_update(),
            {"ids": document_ids},
        )
        found = {r.id: _document(r) for r in rows}
        missing = tuple(d for d in document_ids if d not in found)
        if not found:
            return Attached([], missing)
        a = tables.attachments
        pairs = [{"document_id": d, "request_id": request_id, "attached_at": at} for d in found]
        joined = await self._session.scalars(
            pg_insert(a).values(pairs).on_conflict_do_nothing().returning(a.c.document_id)
        )
        new = list(joined)
        if new:
            await self._session.execute(
                update(t)
                .where(among(t.c.id, "ids") & t.c.attached_at.is_(None))
                .values(attached_at=at),
                {"ids": new},
            )
        return Attached([found[d] for d in sorted(new)], missing)

    async def hold(self, document_id: uuid.UUID, at: datetime) -> bool:
        """Restarts its unattached lifetime at `at`; False if it is gone (the sweep had it).

        The sweep locks the rows it removes: this waits for it, or it skips this one."""
        t = tables.documents
        held = await self._session.scalar(
            update(t).where(t.c.id == document_id).values(held_at=at).returning(t.c.id)
        )
        return held is not None

    async def unattached(self, limit: int, *, older_than: datetime) -> list[Document]:
        """Documents that joined no request since before `older_than`, and were not held
        since, locked for removal."""
        t = tables.documents
        rows = await self._session.execute(
            select(t)
            .where(
                t.c.attached_at.is_(None)
                & (t.c.created_at <= older_than)
                & (t.c.held_at.is_(None) | (t.c.held_at <= older_than))
            )
            .order_by(t.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_document(r) for r in rows]

    async def count_unattached(self, owner_id: str) -> int:
        t = tables.documents
        counted = await self._session.scalar(
            select(func.count())
            .select_from(t)
            .where((t.c.owner_id == owner_id) & t.c.attached_at.is_(None))
        )
        return int(counted or 0)

    async def remove(self, document_ids: list[uuid.UUID]) -> None:
        t = tables.documents
        await self._session.execute(delete(t).where(among(t.c.id, "ids")), {"ids": document_ids})


class SqlAccessRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def grant(self, placements: Sequence[Placement]) -> list[Placement]:
        if not placements:
            return []
        written = await self._session.execute(
            _GRANT,
            [
                {
                    "b_request_id": p.request_id,
                    "b_department": p.department,
                    "b_sequence": p.sequence,
                }
                for p in placements
            ],
        )
        await self._open(sorted({p.request_id for p in placements}))
        placed = set(written.scalars())
        return [p for p in placements if p.request_id not in placed]

    async def grant_attached(self, request_id: uuid.UUID) -> None:
        await self._session.execute(_HOLD, {"b_request_id": request_id})
        await self._open([request_id])

    async def _open(self, request_ids: list[uuid.UUID]) -> None:
        await self._session.execute(_OPEN, {"request_ids": request_ids})

    async def departments(self, document_id: uuid.UUID) -> frozenset[str]:
        t = tables.document_access
        rows = await self._session.scalars(
            select(t.c.department).where(t.c.document_id == document_id)
        )
        return frozenset(rows)


class SqlUploadLeases:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def take(
        self, owner_id: str, lease_id: uuid.UUID, *, now: datetime, until: datetime, limit: int
    ) -> bool:
        t = tables.upload_leases
        # Serializes one account's takers across replicas, for this transaction only.
        await self._session.lock(f"uploads:{owner_id}")
        await self._session.execute(
            delete(t).where((t.c.owner_id == owner_id) & (t.c.expires_at <= now))
        )
        held = await self._session.scalar(
            select(func.count()).select_from(t).where(t.c.owner_id == owner_id)
        )
        if (held or 0) >= limit:
            return False
        await self._session.execute(
            insert(t).values(id=lease_id, owner_id=owner_id, expires_at=until)
        )
        return True

    async def release(self, lease_id: uuid.UUID) -> None:
        t = tables.upload_leases
        await self._session.execute(delete(t).where(t.c.id == lease_id))

    async def prune(self, now: datetime, *, limit: int) -> int:
        # Few rows (uploads in progress, and what dead processes left): no index on expiry.
        t = tables.upload_leases
        lapsed = t.c.expires_at <= now
        batch = select(t.c.id).where(lapsed).limit(limit).scalar_subquery()
        gone = await self._session.execute(
            delete(t).where(t.c.id.in_(batch) & lapsed).returning(t.c.id)
        )
        return len(gone.all())


class SqlObjectDeletions:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def add(self, keys: Sequence[str]) -> None:
        if keys:
            await self._session.execute(_RECORD_DELETION, [{"key": k} for k in keys])

    async def intend(self, key: str, *, until: datetime) -> None:
        await self._session.execute(
            insert(tables.object_deletions).values(key=key, not_before=until)
        )

    async def keep(self, key: str) -> bool:
        # A record `take` holds locked is waited for, then read as it left it: taken.
        t = tables.object_deletions
        kept = await self._session.scalar(
            delete(t).where((t.c.key == key) & ~t.c.taken).returning(t.c.key)
        )
        return kept is not None

    async def take(self, limit: int, *, now: datetime) -> list[str]:
        # One a row's transaction is keeping (locked by its DELETE) is skipped: it is gone
        # once that commits.
        t = tables.object_deletions
        due = (
            select(t.c.key)
            .where(t.c.not_before <= now)
            .order_by(t.c.not_before)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        taken = await self._session.execute(
            update(t)
            .where(t.c.key.in_(due.scalar_subquery()))
            .values(taken=True)
            .returning(t.c.key, t.c.not_before)
        )
        return [row.key for row in sorted(taken, key=lambda row: row.not_before)]

    async def done(self, keys: Sequence[str]) -> None:
        if keys:
            t = tables.object_deletions
            await self._session.execute(delete(t).where(among(t.c.key, "keys")), {"keys": keys})

    async def refused(self, keys: Sequence[str], *, now: datetime) -> None:
        t = tables.object_deletions
        wait = func.least(
            RETRY_FIRST.total_seconds() * func.power(2, t.c.refusals), RETRY_MOST.total_seconds()
        )
        await self._session.execute(
            update(t)
            .where(among(t.c.key, "keys"))
            .values(
                refusals=t.c.refusals + 1,
                not_before=bindparam("b_now", now) + func.make_interval(0, 0, 0, 0, 0, 0, wait),
            ),
            {"keys": keys},
        )


class DocsUnitOfWork(SqlUnitOfWork):
    staff: SqlStaffRecords
    documents: SqlDocumentRepository
    access: SqlAccessRepository
    leases: SqlUploadLeases
    deletions: SqlObjectDeletions

    def __init__(self, database: Database) -> None:
        super().__init__(database, Messaging(SERVICE, tables.outbox, tables.inbox))

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.documents = SqlDocumentRepository(self.session)
        self.access = SqlAccessRepository(self.session)
        self.leases = SqlUploadLeases(self.session)
        self.deletions = SqlObjectDeletions(self.session)
        self.staff = SqlStaffRecords(self.session, tables.staff_records)
        return self

    def record(self, event: DocumentEvent) -> None:
        self.publish(to_event(event))
