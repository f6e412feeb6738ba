"""PostgreSQL-backed repository and unit of work for routing."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Self

from sqlalchemy import ARRAY, Uuid, bindparam, column, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from tawasul_platform.db import among, arrays, insert_arrays
from tawasul_platform.sql import Database, Row, Session
from tawasul_platform.staff import SqlStaffRecords
from tawasul_platform.uow import Messaging, SqlUnitOfWork

from tawasul_routing.adapters import tables
from tawasul_routing.adapters.events import to_event
from tawasul_routing.domain.model import Decision, IncomingRequest, Transfer

SERVICE = "routing"
_ADD = insert_arrays(
    tables.decisions,
    (
        "request_id",
        "sequence",
        "department",
        "queue",
        "priority",
        "rule",
        "decided_at",
        "transfer_reason",
        "transferred_from",
        "status_sequence",
        "request",
    ),
)
# Which of a batch's requests have a decision already: one statement for every batch.
_ROUTED = (
    select(tables.decisions.c.request_id)
    .distinct()
    .where(among(tables.decisions.c.request_id, "ids"))
)

# The follow-up counts, answered fields and transfers kept for a batch's requests, of those
# that have any: one statement for every batch.
_BATCH = (
    func.unnest(bindparam("ids", type_=ARRAY(Uuid)))
    .table_valued(column("request_id", Uuid))
    .render_derived()
)
_F, _A, _T = tables.follow_ups, tables.answers, tables.pending_transfers
_HEARD = (
    select(
        _BATCH.c.request_id,
        _F.c.count,
        _A.c.fields,
        _T.c.to_department,
        _T.c.reason,
        _T.c.sequence,
    )
    .select_from(
        _BATCH.outerjoin(_F, _F.c.request_id == _BATCH.c.request_id)
        .outerjoin(_A, _A.c.request_id == _BATCH.c.request_id)
        .outerjoin(_T, _T.c.request_id == _BATCH.c.request_id)
    )
    .where(
        or_(
            _F.c.request_id.is_not(None),
            _A.c.request_id.is_not(None),
            _T.c.request_id.is_not(None),
        )
    )
)

_FORGET = delete(_T).where(among(_T.c.request_id, "ids"))


def request_to_json(r: IncomingRequest) -> dict[str, Any]:
    return {
        "request_id": str(r.request_id),
        "request_number": r.request_number,
        "sub_service_code": r.sub_service_code,
        "description": r.description,
        "applicant_id": r.applicant_id,
        "document_ids": list(r.document_ids),
        "mobile": r.mobile,
        "email": r.email,
        "locale": r.locale,
        "submitted_at": r.submitted_at.isoformat(),
        "catalog_version": r.catalog_version,
        "subject_id": r.subject_id,
        "fields": dict(r.fields),
        "applicant_kind": r.applicant_kind,
        "subject_nationality": r.subject_nationality,
        "channel": r.channel,
        "subject_name_ar": r.subject_name_ar,
        "subject_name_en": r.subject_name_en,
        "cites_request_number": r.cites_request_number,
        "follow_up_count": r.follow_up_count,
        "department_code": r.department_code,
    }


def request_from_json(raw: dict[str, Any], decided_at: datetime) -> IncomingRequest:
    # Rows of revision 0001 lack what came later: their request was submitted just before it
    # was routed, by the first catalog, on behalf of the applicant.
    return IncomingRequest(
        request_id=uuid.UUID(raw["request_id"]),
        request_number=raw["request_number"],
        sub_service_code=raw["sub_service_code"],
        description=raw["description"],
        applicant_id=raw["applicant_id"],
        document_ids=tuple(raw["document_ids"]),
        mobile=raw["mobile"],
        email=raw["email"],
        locale=raw["locale"],
        submitted_at=(
            datetime.fromisoformat(raw["submitted_at"]) if "submitted_at" in raw else decided_at
        ),
        catalog_version=raw.get("catalog_version", 1),
        subject_id=raw.get("subject_id", raw["applicant_id"]),
        fields=raw.get("fields", {}),
        applicant_kind=raw.get("applicant_kind", ""),
        subject_nationality=raw.get("subject_nationality", ""),
        channel=raw.get("channel", ""),
        subject_name_ar=raw.get("subject_name_ar", ""),
        subject_name_en=raw.get("subject_name_en", ""),
        cites_request_number=raw.get("cites_request_number", ""),
        follow_up_count=raw.get("follow_up_count", 0),
        department_code=raw.get("department_code", ""),
    )


def _heard(request: IncomingRequest, follow_ups: int | None, answered: Any) -> IncomingRequest:
    """`request` with the follow-ups and answers kept apart from its decisions, which came
    later than what a decision holds: the higher count, the answered fields over its own."""
    count = max(request.follow_up_count, follow_ups or 0)
    fields = {**request.fields, **(answered or {})}
    if (count, fields) == (request.follow_up_count, request.fields):
        return request
    return replace(request, follow_up_count=count, fields=fields)


def _decision(row: Row) -> Decision:
    return Decision(
        request=request_from_json(row.request, row.decided_at),
        sequence=row.sequence,
        department=row.department,
        queue=row.queue,
        priority=row.priority,
        rule=row.rule,
        decided_at=row.decided_at,
        transfer_reason=row.transfer_reason,
        transferred_from=row.transferred_from,
        status_sequence=row.status_sequence,
    )


class SqlDecisionRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        self.added: list[Decision] = []

    async def lock(self, request_ids: Collection[uuid.UUID]) -> None:
        await self._session.lock(*(f"request:{r}" for r in request_ids))

    async def add(self, decision: Decision) -> None:
        await self.add_all([decision])

    async def add_all(self, decisions: list[Decision]) -> None:
        # (request_id, sequence) is the key: two decisions on one request taken at once would
        # collide, but every handler takes the request first (lock).
        if not decisions:
            return
        await self._session.execute(
            _ADD,
            arrays(
                request_id=[d.request.request_id for d in decisions],
                sequence=[d.sequence for d in decisions],
                department=[d.department for d in decisions],
                queue=[d.queue for d in decisions],
                priority=[d.priority for d in decisions],
                rule=[d.rule for d in decisions],
                decided_at=[d.decided_at for d in decisions],
                transfer_reason=[d.transfer_reason for d in decisions],
                transferred_from=[d.transferred_from for d in decisions],
                status_sequence=[d.status_sequence for d in decisions],
                request=[request_to_json(d.request) for d in decisions],
            ),
        )
        self.added.extend(decisions)

    async def routed(self, request_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        if not request_ids:
            return set()
        found = await self._session.scalars(_ROUTED, {"ids": request_ids})
        return set(found)

    async def latest(self, request_id: uuid.UUID) -> Decision | None:
        d, f, a = tables.decisions, tables.follow_ups, tables.answers
        row = (
            await self._session.execute(
                select(d, f.c.count.label("follow_ups"), a.c.fields.label("answered"))
                .outerjoin(f, f.c.request_id == d.c.request_id)
                .outerjoin(a, a.c.request_id == d.c.request_id)
                .where(d.c.request_id == request_id)
                .order_by(d.c.sequence.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        decision = _decision(row)
        decision.request = _heard(decision.request, row.follow_ups, row.answered)
        return decision

    async def count_follow_ups(self, request_id: uuid.UUID, count: int) -> None:
        f = tables.follow_ups
        statement = pg_insert(f).values(request_id=request_id, count=count)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[f.c.request_id],
                set_={"count": statement.excluded.count},
                where=f.c.count < statement.excluded.count,
            )
        )

    async def record_answer(self, request_id: uuid.UUID, fields: Mapping[str, str]) -> None:
        a = tables.answers
        statement = pg_insert(a).values(request_id=request_id, fields=dict(fields))
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[a.c.request_id],
                # jsonb || jsonb: the later answer's value of a field wins, as in review.
                set_={"fields": a.c.fields.op("||")(statement.excluded.fields)},
            )
        )

    async def keep_transfer(self, transfer: Transfer) -> None:
        t = tables.pending_transfers
        statement = pg_insert(t).values(
            request_id=transfer.request_id,
            to_department=transfer.to_department,
            reason=transfer.reason,
            sequence=transfer.sequence,
        )
        new = statement.excluded
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[t.c.request_id],
                # As Decision.transfer: one from before review counted (0) applies as it comes,
                # and the highest sequence is kept, to skip what is older still.
                set_={
                    "to_department": new.to_department,
                    "reason": new.reason,
                    "sequence": func.greatest(t.c.sequence, new.sequence),
                },
                where=or_(new.sequence == 0, t.c.sequence < new.sequence),
            )
        )

    async def forget_transfers(self, request_ids: list[uuid.UUID]) -> None:
        if request_ids:
            await self._session.execute(_FORGET, {"ids": request_ids})

    async def caught_up(
        self, requests: list[IncomingRequest]
    ) -> list[tuple[IncomingRequest, Transfer | None]]:
        if not requests:
            return []
        rows = await self._session.execute(_HEARD, {"ids": [r.request_id for r in requests]})
        heard = {row.request_id: row for row in rows}
        caught: list[tuple[IncomingRequest, Transfer | None]] = []
        for request in requests:
            row = heard.get(request.request_id)
            if row is None:
                caught.append((request, None))
                continue
            transfer = None
            if row.to_department is not None:
                transfer = Transfer(
                    request_id=request.request_id,
                    to_department=row.to_department,
                    reason=row.reason,
                    sequence=row.sequence,
                )
            caught.append((_heard(request, row.count, row.fields), transfer))
        return caught


class RoutingUnitOfWork(SqlUnitOfWork):
    decisions: SqlDecisionRepository
    staff: SqlStaffRecords

    def __init__(self, database: Database) -> None:
        super().__init__(database, Messaging(SERVICE, tables.outbox, tables.inbox))

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.decisions = SqlDecisionRepository(self.session)
        self.staff = SqlStaffRecords(self.session, tables.staff_records)
        return self

    async def commit(self) -> None:
        for decision in self.decisions.added:
            for event in decision.events:
                self.publish(to_event(event))
            decision.events.clear()
        await super().commit()
