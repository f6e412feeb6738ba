"""Review's records of its reviewers, kept by the services that check staff access themselves
(docs, notify, routing), so that a department a supervisor took away from a reviewer is
closed to them there too, not only in review.

Review publishes each record on a compacted topic keyed by the reviewer (`ReviewerRecorded`);
a consumer keeps the latest version of each in its own `staff_records` table
(`db.staff_records_table`) and narrows a reviewer's token with it (`Principal.narrowed`). The
services read the topic as a table (`Subscriptions.table`): from its start at every start, so a
database put back to an older backup has every reviewer's latest record again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import Insert
from tawasul.events.v1 import events_pb2

from tawasul_platform.consumer import BatchHandler
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import OutgoingEvent, envelope
from tawasul_platform.identity import EMPLOYEE_ID, EMPLOYEE_ID_FORM, StaffRecord
from tawasul_platform.ports import Transaction
from tawasul_platform.sql import Session
from tawasul_platform.topics import STAFF_REVIEWERS

EVENT_TYPE = "tawasul.staff.reviewer-recorded"


def recorded(record: StaffRecord, *, producer: str, at: datetime) -> OutgoingEvent:
    """The event that tells the other services `record` (keyed by the reviewer: compaction
    keeps each reviewer's latest)."""
    return envelope(
        topic=STAFF_REVIEWERS,
        event_type=EVENT_TYPE,
        producer=producer,
        request_id="",
        occurred_at=at,
        key=record.reviewer_id,
        fill=events_pb2.Envelope(
            reviewer_recorded=events_pb2.ReviewerRecorded(
                reviewer_id=record.reviewer_id,
                departments=sorted(record.departments),
                decides_all=record.scope is None,
                scope=sorted(record.scope or ()),
                version=record.version,
            )
        ),
    )


def record_from(event: events_pb2.Envelope) -> StaffRecord:
    if not event.HasField("reviewer_recorded"):
        raise InvalidArgument({"payload": f"not a reviewer's record: {event.event_type}"})
    r = event.reviewer_recorded
    if not EMPLOYEE_ID.fullmatch(r.reviewer_id):
        raise InvalidArgument({"reviewer_id": EMPLOYEE_ID_FORM})
    return StaffRecord(
        reviewer_id=r.reviewer_id,
        departments=frozenset(r.departments),
        scope=None if r.decides_all else frozenset(r.scope),
        version=r.version,
    )


@functools.cache
def _get(table: Table) -> Select[Any]:
    return select(table).where(table.c.reviewer_id == bindparam("reviewer_id"))


@functools.cache
def _put(table: Table) -> Insert:
    # A version no later than the kept one changes nothing (a replay, a late copy).
    statement = pg_insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.reviewer_id],
        set_={c: statement.excluded[c] for c in ("departments", "scope", "version")},
        where=table.c.version < statement.excluded.version,
    )


class StaffRecords(Protocol):
    async def get(self, reviewer_id: str) -> StaffRecord | None: ...
    async def keep(self, records: Sequence[StaffRecord]) -> None:
        """Keeps each record unless a later version of it is kept already."""
        ...


class SqlStaffRecords:
    """The table of records a service keeps (its `staff_records`)."""

    def __init__(self, session: Session, table: Table) -> None:
        self._session = session
        self._table = table

    async def get(self, reviewer_id: str) -> StaffRecord | None:
        row = (await self._session.execute(_get(self._table), {"reviewer_id": reviewer_id})).first()
        if row is None:
            return None
        scope = None if row.scope is None else frozenset(row.scope)
        return StaffRecord(row.reviewer_id, frozenset(row.departments), scope, row.version)

    async def keep(self, records: Sequence[StaffRecord]) -> None:
        """Keeps each record unless a later version of it is kept already."""
        if not records:
            return
        await self._session.execute(
            _put(self._table),
            [
                {
                    "reviewer_id": r.reviewer_id,
                    "departments": sorted(r.departments),
                    "scope": None if r.scope is None else sorted(r.scope),
                    "version": r.version,
                }
                for r in records
            ],
        )


class StaffUnitOfWork(Transaction, Protocol):
    @property
    def staff(self) -> StaffRecords: ...


def on_reviewers_recorded(uow: Callable[[], StaffUnitOfWork]) -> BatchHandler:
    """Review's records, a poll's worth at once. No inbox: a record applies by its version, so
    one seen again (a redelivery, a compacted topic read from its start) changes nothing."""

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        latest: dict[str, StaffRecord] = {}
        for record in map(record_from, events):
            kept = latest.get(record.reviewer_id)
            if kept is None or kept.version < record.version:
                latest[record.reviewer_id] = record
        async with uow() as work:
            await work.staff.keep(sorted(latest.values(), key=lambda r: r.reviewer_id))
            await work.commit()

    return handle
