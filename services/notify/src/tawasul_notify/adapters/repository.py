"""PostgreSQL-backed repositories and unit of work for notify."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Self

from sqlalchemy import ColumnElement, bindparam, case, exists, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from tawasul_platform.db import among
from tawasul_platform.identity import Role
from tawasul_platform.sql import Database, Row, Session
from tawasul_platform.staff import SqlStaffRecords
from tawasul_platform.uow import Messaging, SqlUnitOfWork

from tawasul_notify.adapters import tables
from tawasul_notify.adapters.events import to_event
from tawasul_notify.domain.model import (
    Audience,
    Channel,
    Delivery,
    DeliveryStatus,
    InboxMessage,
    RequestAccess,
    Told,
)
from tawasul_notify.domain.templates import Kind

SERVICE = "notify"
ONE_TIME_CODE = Kind.ONE_TIME_CODE.value


# Built once, the values given at execution: `.values(...)` built and keyed a new statement
# per call.
_INTEND = pg_insert(tables.deliveries).on_conflict_do_nothing(
    index_elements=[tables.deliveries.c.id]
)
# Rows not recorded before come back: the others were recorded by an earlier delivery of
# their event.
_ADD = _INTEND.returning(tables.deliveries.c.id)
_earlier = tables.deliveries.alias("earlier")
_DUE = (
    select(tables.deliveries)
    .where(
        (tables.deliveries.c.status == DeliveryStatus.PENDING.value)
        & (tables.deliveries.c.kind != ONE_TIME_CODE)
        & (tables.deliveries.c.channel == bindparam("channel"))
        & (
            tables.deliveries.c.retry_at.is_(None)
            | (tables.deliveries.c.retry_at <= bindparam("now"))
        )
        # Not while an earlier message about the request to the same recipient waits: one that
        # met the channel unavailable would reach the phone after a later one ("cancelled as
        # you asked" after "not cancelled: rejected"), and the last word would be false.
        & ~exists().where(
            (_earlier.c.request_id == tables.deliveries.c.request_id)
            & (_earlier.c.channel == tables.deliveries.c.channel)
            & (_earlier.c.recipient == tables.deliveries.c.recipient)
            & (_earlier.c.status == DeliveryStatus.PENDING.value)
            & (_earlier.c.kind != ONE_TIME_CODE)
            & (_earlier.c.created_at < tables.deliveries.c.created_at)
        )
    )
    .order_by(tables.deliveries.c.created_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
# Locked in one order, so that two transactions locking some of the same rows cannot deadlock.
_INTENDED = (
    select(tables.deliveries)
    .where(among(tables.deliveries.c.id, "ids"))
    .order_by(tables.deliveries.c.id)
    .with_for_update()
)
# A receipts pass asks the gateway between two transactions, and another replica's pass may
# have recorded the same receipts meanwhile: the rows are read again, locked, if still sent.
_STILL_SENT = (
    select(tables.deliveries)
    .where(
        among(tables.deliveries.c.id, "ids")
        & (tables.deliveries.c.status == DeliveryStatus.SENT.value)
    )
    .order_by(tables.deliveries.c.id)
    .with_for_update()
)
_SAVE = update(tables.deliveries).where(tables.deliveries.c.id == bindparam("b_id"))
_ADD_MESSAGE = pg_insert(tables.inbox_messages).on_conflict_do_nothing()
_access = pg_insert(tables.request_access)
_known = tables.request_access.c
_new = _access.excluded
# Where each stands among routing's decisions (RequestAccess.place).
_known_place = tuple_(_known.routed_transfer, _known.routed_sequence)
_new_place = tuple_(_new.routed_transfer, _new.routed_sequence)
_later = _new_place > _known_place
# An event without its applicant (or their kind) keeps the one known; a submission applied
# after routing's decision (a poll's two topics commit in either order) keeps routing's
# department; a routing no later than one recorded (RequestAccess.outdated_by) changes nothing
# and returns no row.
_RECORD_ACCESS = _access.on_conflict_do_update(
    index_elements=[_known.request_id],
    set_={
        "department": case(
            (_new.routed | ~_known.routed, _new.department),
            else_=_known.department,
        ),
        "routed": _known.routed | _new.routed,
        "applicant_id": func.coalesce(func.nullif(_new.applicant_id, ""), _known.applicant_id),
        "routed_sequence": case((_later, _new.routed_sequence), else_=_known.routed_sequence),
        "routed_transfer": case((_later, _new.routed_transfer), else_=_known.routed_transfer),
        "applicant_kind": func.coalesce(_new.applicant_kind, _known.applicant_kind),
    },
    where=~(_new.routed & (_new.routed_sequence > 0) & ~_later),
).returning(_known.request_id)

_ESTABLISHMENTS = select(_known.request_id).where(
    among(_known.request_id, "ids") & (_known.applicant_kind == Role.ESTABLISHMENT.value)
)


_told = pg_insert(tables.told_status)
# A row for each request before its read, which locks them (in one order: no deadlock): two
# topics of one poll, applied at once, each read the other's unwritten row as nothing told, and
# a cancellation both said was told twice.
_HOLD = _told.on_conflict_do_nothing(index_elements=[tables.told_status.c.request_id])
_TOLD = (
    select(tables.told_status)
    .where(among(tables.told_status.c.request_id, "ids"))
    .order_by(tables.told_status.c.request_id)
    .with_for_update()
)
# The rows are held: what the poll worked out from them replaces them.
_TELL = _told.on_conflict_do_update(
    index_elements=[tables.told_status.c.request_id],
    set_={
        "sequence": _told.excluded.sequence,
        "cancelled_at": _told.excluded.cancelled_at,
        "too_late_at": _told.excluded.too_late_at,
        "appeal_until": _told.excluded.appeal_until,
    },
)


def _row(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "request_id": delivery.request_id,
        "cause_event_id": delivery.cause_event_id,
        "cause_event_type": delivery.cause_event_type,
        "kind": delivery.kind,
        "channel": delivery.channel.value,
        "audience": delivery.audience.value,
        "recipient": delivery.recipient,
        "subject": delivery.subject,
        "text": delivery.text,
        "parts": delivery.parts,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "provider_message_id": delivery.provider_message_id,
        "error": delivery.error,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
        "retry_at": delivery.retry_at,
    }


def _delivery(row: Row) -> Delivery:
    return Delivery(
        id=row.id,
        request_id=row.request_id,
        cause_event_id=row.cause_event_id,
        cause_event_type=row.cause_event_type,
        kind=row.kind,
        channel=Channel(row.channel),
        audience=Audience(row.audience),
        recipient=row.recipient,
        subject=row.subject,
        text=row.text,
        parts=row.parts,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        provider_message_id=row.provider_message_id,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        retry_at=row.retry_at,
    )


class SqlDeliveryRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        # Saved deliveries: their events go to the outbox at commit.
        self.saved: list[Delivery] = []

    async def intend(self, delivery: Delivery) -> Delivery:
        await self._session.execute(_INTEND, _row(delivery))
        row = (await self._session.execute(_INTENDED, {"ids": [delivery.id]})).one()
        return _delivery(row)

    async def add_all(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        if not deliveries:
            return []
        result = await self._session.execute(_ADD, [_row(d) for d in deliveries])
        added = set(result.scalars())
        fresh = [d for d in deliveries if d.id in added]
        # Settled at once (in-app): their events go out with this transaction.
        self.saved.extend(d for d in fresh if d.settled)
        return fresh

    async def due(self, channel: Channel, limit: int, now: datetime) -> list[Delivery]:
        rows = await self._session.execute(
            _DUE, {"channel": channel.value, "now": now, "limit": limit}
        )
        return [_delivery(row) for row in rows]

    async def save(self, delivery: Delivery) -> None:
        await self.save_all([delivery])

    async def save_all(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        await self._session.execute(
            _SAVE,
            [
                {
                    "b_id": d.id,
                    "status": d.status.value,
                    "attempts": d.attempts,
                    "provider_message_id": d.provider_message_id,
                    "error": d.error,
                    "updated_at": d.updated_at,
                    "retry_at": d.retry_at,
                }
                for d in deliveries
            ],
        )
        self.saved.extend(deliveries)

    async def list_for_request(
        self, request_id: uuid.UUID, audience: Audience | None
    ) -> list[Delivery]:
        t = tables.deliveries
        query = select(t).where(t.c.request_id == request_id)
        if audience is not None:
            query = query.where(t.c.audience == audience.value)
        rows = await self._session.execute(query.order_by(t.c.created_at, t.c.id))
        return [_delivery(row) for row in rows]

    async def awaiting_receipt(
        self, limit: int, *, sent_after: datetime, checked_before: datetime
    ) -> list[Delivery]:
        t = tables.deliveries
        rows = await self._session.execute(
            select(t)
            .where(
                (t.c.status == DeliveryStatus.SENT.value)
                & (t.c.channel == Channel.SMS.value)
                & (t.c.updated_at > sent_after)
                & (t.c.receipt_checked_at.is_(None) | (t.c.receipt_checked_at <= checked_before))
            )
            .order_by(t.c.receipt_checked_at.asc().nulls_first(), t.c.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_delivery(row) for row in rows]

    async def still_sent(self, delivery_ids: list[uuid.UUID]) -> list[Delivery]:
        rows = await self._session.execute(_STILL_SENT, {"ids": delivery_ids})
        return [_delivery(row) for row in rows]

    async def checked(self, delivery_ids: list[uuid.UUID], at: datetime) -> None:
        t = tables.deliveries
        await self._session.execute(
            update(t).where(among(t.c.id, "ids")).values(receipt_checked_at=at),
            {"ids": delivery_ids},
        )


def _message(row: Row) -> InboxMessage:
    return InboxMessage(
        id=row.id,
        owner_id=row.owner_id,
        audience=Audience(row.audience),
        request_id=row.request_id,
        kind=row.kind,
        text=row.text,
        created_at=row.created_at,
        read_at=row.read_at,
    )


def _inbox_of(staff: bool) -> ColumnElement[bool]:
    audience = tables.inbox_messages.c.audience
    beneficiary = Audience.BENEFICIARY.value
    return audience != beneficiary if staff else audience == beneficiary


class SqlInboxRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def add_all(self, messages: Sequence[InboxMessage]) -> None:
        if not messages:
            return
        await self._session.execute(
            _ADD_MESSAGE,
            [
                {
                    "id": m.id,
                    "owner_id": m.owner_id,
                    "audience": m.audience.value,
                    "request_id": m.request_id,
                    "kind": m.kind,
                    "text": m.text,
                    "created_at": m.created_at,
                }
                for m in messages
            ],
        )

    async def list_for(self, owner_id: str, *, staff: bool, limit: int) -> list[InboxMessage]:
        t = tables.inbox_messages
        rows = await self._session.execute(
            select(t)
            .where((t.c.owner_id == owner_id) & _inbox_of(staff))
            .order_by(t.c.created_at.desc(), t.c.id)
            .limit(limit)
        )
        return [_message(row) for row in rows]

    async def mark_read(
        self, owner_id: str, message_ids: list[uuid.UUID], at: datetime, *, staff: bool
    ) -> int:
        t = tables.inbox_messages
        result = await self._session.execute(
            update(t)
            .where(
                (t.c.owner_id == owner_id)
                & _inbox_of(staff)
                & among(t.c.id, "ids")
                & t.c.read_at.is_(None)
            )
            .values(read_at=at)
            .returning(t.c.id),
            {"ids": message_ids},
        )
        return len(result.all())


class SqlAccessRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def record_all(self, accesses: Sequence[RequestAccess]) -> list[RequestAccess]:
        if not accesses:
            return []
        written = await self._session.execute(
            _RECORD_ACCESS,
            [
                {
                    "request_id": a.request_id,
                    "applicant_id": a.applicant_id,
                    "department": a.department,
                    "routed": a.routed,
                    "routed_sequence": a.sequence,
                    "routed_transfer": a.transfer_sequence,
                    "applicant_kind": a.applicant_kind.value if a.applicant_kind else None,
                }
                for a in accesses
            ],
        )
        recorded = set(written.scalars())
        return [a for a in accesses if a.request_id not in recorded]

    async def establishments(self, request_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not request_ids:
            return set()
        found = await self._session.scalars(_ESTABLISHMENTS, {"ids": list(request_ids)})
        return set(found)

    async def get(self, request_id: uuid.UUID) -> RequestAccess | None:
        t = tables.request_access
        row = (await self._session.execute(select(t).where(t.c.request_id == request_id))).first()
        if row is None:
            return None
        return RequestAccess(
            row.request_id,
            row.applicant_id,
            row.department,
            row.routed,
            row.routed_sequence,
            Role(row.applicant_kind) if row.applicant_kind else None,
            row.routed_transfer,
        )


class SqlToldRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def hold(self, request_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Told]:
        ids = sorted(set(request_ids))
        if not ids:
            return {}
        await self._session.execute(
            _HOLD,
            [
                {
                    "request_id": r,
                    "sequence": 0,
                    "cancelled_at": None,
                    "too_late_at": None,
                    "appeal_until": None,
                }
                for r in ids
            ],
        )
        rows = await self._session.execute(_TOLD, {"ids": ids})
        return {
            row.request_id: Told(row.sequence, row.cancelled_at, row.too_late_at, row.appeal_until)
            for row in rows
            # not only held
            if row.sequence or row.cancelled_at or row.too_late_at or row.appeal_until
        }

    async def record(self, told: Mapping[uuid.UUID, Told]) -> None:
        if told:
            await self._session.execute(
                _TELL,
                [
                    {
                        "request_id": r,
                        "sequence": t.sequence,
                        "cancelled_at": t.cancelled_at,
                        "too_late_at": t.too_late_at,
                        "appeal_until": t.appeal_until,
                    }
                    for r, t in sorted(told.items())
                ],
            )


class NotifyUnitOfWork(SqlUnitOfWork):
    staff: SqlStaffRecords
    deliveries: SqlDeliveryRepository
    inapp: SqlInboxRepository
    access: SqlAccessRepository
    told: SqlToldRepository

    def __init__(self, database: Database) -> None:
        super().__init__(database, Messaging(SERVICE, tables.outbox, tables.inbox))

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.deliveries = SqlDeliveryRepository(self.session)
        self.inapp = SqlInboxRepository(self.session)
        self.access = SqlAccessRepository(self.session)
        self.told = SqlToldRepository(self.session)
        self.staff = SqlStaffRecords(self.session, tables.staff_records)
        return self

    async def commit(self) -> None:
        for delivery in self.deliveries.saved:
            for event in delivery.events:
                self.publish(to_event(event))
            delivery.events.clear()
        self.deliveries.saved.clear()
        await super().commit()
