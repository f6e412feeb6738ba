"""PostgreSQL-backed repositories and unit of work for intake."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Self

from asyncpg import UniqueViolationError
from sqlalchemy import ARRAY, String, bindparam, case, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from tawasul_calendar import Interval, Sla, SlaClock, SlaUnit
from tawasul_platform.db import any_of
from tawasul_platform.identity import Role
from tawasul_platform.sql import Database, Row, Session
from tawasul_platform.uow import Messaging, SqlUnitOfWork

from tawasul_intake.adapters import tables
from tawasul_intake.adapters.events import to_event
from tawasul_intake.app.ports import (
    ConcurrentSubmission,
    DuplicateOpenRequest,
    NumberTaken,
    Related,
    StoredCode,
)
from tawasul_intake.domain.model import (
    OPEN,
    Contact,
    HistoryEntry,
    Locale,
    Missing,
    OpenKey,
    Reason,
    Request,
    Status,
)

SERVICE = "intake"
_OPEN = [status.value for status in OPEN]


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


# Built once, the values given at execution: `.values(row)` built and keyed a new statement
# per call, a tenth of intake's CPU on SubmitRequest.
_INSERT_REQUEST = insert(tables.requests)
_UPDATE_REQUEST = update(tables.requests).where(tables.requests.c.id == bindparam("b_id"))
# SubmitRequest's own, built once for the same reason.
_R = tables.requests.c
# How many of the account's requests are open (requests_applicant_open), on one row that every
# request a submission is checked against joins: the count comes back though none does.
_ACCOUNT = (
    select(func.count().label("open_count"))
    .where((_R.applicant_id == bindparam("applicant")) & any_of(_R.status, _OPEN))
    .subquery("account")
)
_RELATED = select(_ACCOUNT.c.open_count, tables.requests).select_from(
    _ACCOUNT.outerjoin(
        tables.requests,
        ((_R.applicant_id == bindparam("applicant")) & (_R.idempotency_key == bindparam("key")))
        | (
            (_R.subject_id == bindparam("subject"))
            & (_R.sub_service_code == bindparam("sub_service"))
            & (_R.person_key == bindparam("person"))
            & any_of(_R.status, _OPEN)
        )
        | (
            (_R.applicant_id == bindparam("applicant"))
            & any_of(_R.status, _OPEN)
            & _R.document_ids.has_any(bindparam("documents", type_=ARRAY(String)))
        ),
    )
)


def _row(request: Request) -> dict[str, Any]:
    return {
        "id": request.id,
        "number": request.number,
        "applicant_id": request.applicant_id,
        "applicant_role": request.applicant_role.value,
        "subject_id": request.subject_id,
        "idempotency_key": request.idempotency_key,
        "sub_service_code": request.sub_service_code,
        "catalog_version": request.catalog_version,
        "description": request.description,
        "contact": {
            "mobile": request.contact.mobile,
            "email": request.contact.email,
            "locale": request.contact.locale.value,
        },
        "submitted_at": request.submitted_at,
        "cites_number": request.cites_number,
        "submitted_digest": request.submitted_digest,
        "person_key": request.person,
        **_changing(request),
    }


def _changing(request: Request) -> dict[str, Any]:
    """The columns a request's life changes after submission, in containers of their own: what
    was read is compared with it at the flush."""
    clock = request.clock
    return {
        "status": request.status.value,
        # A transfer moves the request to another department.
        "department_code": request.department_code,
        "decision_message": request.decision_message,
        "decision_reason": asdict(request.decision_reason) if request.decision_reason else None,
        "updated_at": request.updated_at,
        "sla": {"amount": clock.sla.amount, "unit": clock.sla.unit.value},
        "pauses": [[a.isoformat(), b.isoformat()] for a, b in clock.pauses],
        "paused_since": clock.paused_since,
        "history": [
            {
                "status": h.status.value,
                "at": h.at.isoformat(),
                "message": h.message,
                "by": "beneficiary" if h.by_beneficiary else "office",
            }
            | ({"answer": h.answer} if h.answer else {})
            | ({"answer_key": h.answer_key} if h.answer_key else {})
            for h in request.history
        ],
        "cited_by": list(request.cited_by),
        "follow_up_count": request.follow_up_count,
        "last_follow_up_at": request.last_follow_up_at,
        "fields": dict(request.fields),
        "document_ids": [str(d) for d in request.document_ids],
        "missing": [
            {"kind": m.kind, "name": m.name, "description": m.description} for m in request.missing
        ],
        "respond_by": request.respond_by,
        "appeal_told": request.appeal_told,
        "appealed": request.appealed,
        "status_sequence": request.status_sequence,
    }


def _history(stored: list[dict[str, Any]]) -> list[HistoryEntry]:
    history: list[HistoryEntry] = []
    for h in stored:
        status = Status(h["status"])
        if "by" in h:
            by_beneficiary = h["by"] == "beneficiary"
        else:
            # Stored before the author was: the beneficiary's answer (it alone has a digest),
            # cancellation (review publishes none) and appeal (the only way out of a rejection).
            by_beneficiary = (
                bool(h.get("answer"))
                or status is Status.CANCELLED
                or (
                    status is Status.UNDER_REVIEW
                    and bool(history)
                    and history[-1].status is Status.REJECTED
                )
            )
        history.append(
            HistoryEntry(
                status,
                _instant(h["at"]),
                h["message"],
                h.get("answer", ""),
                h.get("answer_key", ""),
                by_beneficiary=by_beneficiary,
            )
        )
    return history


def _request(row: Row) -> Request:
    contact = row.contact
    pauses: tuple[Interval, ...] = tuple((_instant(a), _instant(b)) for a, b in row.pauses)
    return Request(
        id=row.id,
        number=row.number,
        applicant_id=row.applicant_id,
        applicant_role=Role(row.applicant_role),
        subject_id=row.subject_id,
        idempotency_key=row.idempotency_key,
        sub_service_code=row.sub_service_code,
        catalog_version=row.catalog_version,
        department_code=row.department_code,
        description=row.description,
        fields=dict(row.fields),
        document_ids=tuple(uuid.UUID(d) for d in row.document_ids),
        contact=Contact(
            mobile=contact["mobile"], email=contact["email"], locale=Locale(contact["locale"])
        ),
        status=Status(row.status),
        submitted_at=row.submitted_at,
        updated_at=row.updated_at,
        clock=SlaClock(
            started_at=row.submitted_at,
            sla=Sla(row.sla["amount"], SlaUnit(row.sla["unit"])),
            pauses=pauses,
            paused_since=row.paused_since,
        ),
        history=_history(row.history),
        decision_message=row.decision_message,
        decision_reason=Reason(**row.decision_reason) if row.decision_reason else None,
        cites_number=row.cites_number,
        submitted_digest=row.submitted_digest,
        person=row.person_key,
        cited_by=list(row.cited_by),
        follow_up_count=row.follow_up_count,
        last_follow_up_at=row.last_follow_up_at,
        missing=tuple(Missing(**m) for m in row.missing),
        respond_by=row.respond_by,
        appeal_told=row.appeal_told,
        appealed=row.appealed,
        status_sequence=row.status_sequence,
    )


class SqlRequestRepository:
    """Requests read in a unit of work, written back at its commit if they changed: a request
    only read is never written, so it cannot overwrite what another transaction committed
    meanwhile. One read to change a request is `for_update`: it waits for, and then sees, any
    other change in flight."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.seen: dict[uuid.UUID, Request] = {}
        self._new: set[uuid.UUID] = set()
        # The changing columns as read (or last written), by request.
        self._stored: dict[uuid.UUID, dict[str, Any]] = {}

    async def add(self, request: Request) -> None:
        self.seen[request.id] = request
        self._new.add(request.id)

    async def get(self, request_id: uuid.UUID, *, for_update: bool = False) -> Request | None:
        return await self._one(tables.requests.c.id == request_id, for_update=for_update)

    async def get_by_number(self, number: str, *, for_update: bool = False) -> Request | None:
        return await self._one(tables.requests.c.number == number, for_update=for_update)

    async def get_by_idempotency_key(self, applicant_id: str, key: str) -> Request | None:
        t = tables.requests.c
        return await self._one((t.applicant_id == applicant_id) & (t.idempotency_key == key))

    async def open_request(self, about: OpenKey) -> Request | None:
        t = tables.requests.c
        return await self._one(
            (t.subject_id == about.subject_id)
            & (t.sub_service_code == about.sub_service_code)
            & (t.person_key == about.person)
            & any_of(t.status, _OPEN)
        )

    async def related_to(
        self,
        applicant_id: str,
        key: str,
        about: OpenKey,
        document_ids: tuple[uuid.UUID, ...],
    ) -> Related:
        rows = (
            await self._session.execute(
                _RELATED,
                {
                    "applicant": applicant_id,
                    "key": key,
                    "subject": about.subject_id,
                    "sub_service": about.sub_service_code,
                    "person": about.person,
                    "documents": [str(d) for d in document_ids],
                },
            )
        ).all()
        return Related(
            requests=[self._read(row) for row in rows if row.id is not None],
            open_count=rows[0].open_count,
        )

    async def list_by_applicant(
        self, applicant_id: str, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Request]:
        t = tables.requests.c
        query = select(tables.requests).where(t.applicant_id == applicant_id)
        if after is not None:
            query = query.where(tuple_(t.submitted_at, t.id) < tuple_(*after))
        query = query.order_by(t.submitted_at.desc(), t.id.desc()).limit(limit)
        rows = (await self._session.execute(query)).all()
        return [self._read(row) for row in rows]

    async def open_requests_with_documents(
        self, applicant_id: str, document_ids: tuple[uuid.UUID, ...]
    ) -> dict[uuid.UUID, str]:
        if not document_ids:
            return {}
        t = tables.requests.c
        wanted = [str(d) for d in document_ids]
        rows = await self._session.execute(
            select(t.number, t.document_ids).where(
                (t.applicant_id == applicant_id)
                & any_of(t.status, _OPEN)
                & t.document_ids.has_any(array(wanted))
            )
        )
        return {uuid.UUID(d): row.number for row in rows for d in row.document_ids if d in wanted}

    async def lock_account(self, applicant_id: str) -> None:
        await self._session.lock(f"intake:{applicant_id}")

    async def flush(self) -> None:
        # Changed rows before new ones: a request cancelled to make way for a new one about the
        # same person (submit_request) leaves requests_one_open before the new one enters it.
        for request in sorted(self.seen.values(), key=lambda r: r.id in self._new):
            changing = _changing(request)
            if request.id in self._new:
                await self._session.execute(_INSERT_REQUEST, _row(request))
            elif changing != self._stored.get(request.id):
                await self._session.execute(_UPDATE_REQUEST, {"b_id": request.id, **changing})
            self._stored[request.id] = changing
        self._new.clear()

    async def _one(self, where: Any, *, for_update: bool = False) -> Request | None:
        query = select(tables.requests).where(where)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return None if row is None else self._read(row)

    def _read(self, row: Row) -> Request:
        """The request as this unit of work first read it: a second read returns the same."""
        request = self.seen.get(row.id)
        if request is None:
            request = self.seen[row.id] = _request(row)
            self._stored[row.id] = _changing(request)
        return request


class SqlTrackingCodes:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def put(self, request_id: uuid.UUID, code_hash: str, expires_at: datetime) -> None:
        t = tables.tracking_codes
        values = {"code_hash": code_hash, "expires_at": expires_at, "attempts": 0}
        await self._session.execute(
            pg_insert(t)
            .values(request_id=request_id, **values)
            .on_conflict_do_update(index_elements=[t.c.request_id], set_=values)
        )

    async def attempt(self, request_id: uuid.UUID) -> StoredCode | None:
        t = tables.tracking_codes
        row = (
            await self._session.execute(
                update(t)
                .where(t.c.request_id == request_id)
                .values(attempts=t.c.attempts + 1)
                .returning(t.c.code_hash, t.c.expires_at, t.c.attempts)
            )
        ).first()
        if row is None:
            return None
        return StoredCode(row.code_hash, row.expires_at, row.attempts)

    async def delete(self, request_id: uuid.UUID) -> None:
        t = tables.tracking_codes
        await self._session.execute(delete(t).where(t.c.request_id == request_id))

    async def forget_expired(self, now: datetime, *, limit: int) -> int:
        t = tables.tracking_codes
        spent = t.c.expires_at <= now
        expired = select(t.c.request_id).where(spent).limit(limit)
        # The condition again on the row deleted: a code issued anew meanwhile (start_tracking's
        # upsert, which this waits for) is rechecked against it, not deleted for its old one.
        gone = await self._session.execute(
            delete(t)
            .where(t.c.request_id.in_(expired.scalar_subquery()) & spent)
            .returning(t.c.request_id)
        )
        return len(gone.all())


class SqlRateLimits:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def hit(self, bucket: str, *, window: timedelta, now: datetime) -> int:
        """A fixed window per bucket, counted in one upsert so that replicas never race."""
        t = tables.rate_limits
        stale = t.c.window_start <= now - window
        statement = (
            pg_insert(t)
            .values(bucket=bucket, window_start=now, hits=1)
            .on_conflict_do_update(
                index_elements=[t.c.bucket],
                set_={
                    "window_start": case((stale, now), else_=t.c.window_start),
                    "hits": case((stale, 1), else_=t.c.hits + 1),
                },
            )
            .returning(t.c.hits)
        )
        return int(await self._session.scalar(statement) or 0)

    async def forget(self, started_before: datetime, *, limit: int) -> int:
        t = tables.rate_limits
        passed = t.c.window_start <= started_before
        stale = select(t.c.bucket).where(passed).limit(limit)
        # Rechecked on the row deleted, as forget_expired's: a window a hit restarted meanwhile
        # stays.
        gone = await self._session.execute(
            delete(t).where(t.c.bucket.in_(stale.scalar_subquery()) & passed).returning(t.c.bucket)
        )
        return len(gone.all())


class IntakeUnitOfWork(SqlUnitOfWork):
    requests: SqlRequestRepository
    codes: SqlTrackingCodes
    limits: SqlRateLimits

    def __init__(self, database: Database) -> None:
        super().__init__(database, Messaging(SERVICE, tables.outbox, tables.inbox))

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.requests = SqlRequestRepository(self.session)
        self.codes = SqlTrackingCodes(self.session)
        self.limits = SqlRateLimits(self.session)
        return self

    async def commit(self) -> None:
        try:
            await self.requests.flush()
            for request in self.requests.seen.values():
                for event in request.events:
                    self.publish(to_event(event))
                request.events.clear()
            await super().commit()
        except UniqueViolationError as exc:
            if exc.constraint_name == "requests_idempotency":
                raise ConcurrentSubmission from exc
            if exc.constraint_name == "requests_one_open":
                raise DuplicateOpenRequest from exc
            if exc.constraint_name == "requests_number_key":
                raise NumberTaken from exc
            raise
