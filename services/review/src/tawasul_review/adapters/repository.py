"""PostgreSQL-backed repository and unit of work for review."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Row, insert, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tawasul_platform.uow import Messaging, SqlUnitOfWork

from tawasul_review.adapters import tables
from tawasul_review.adapters.events import to_event
from tawasul_review.domain.model import (
    OPEN_STATES,
    Contact,
    Decision,
    QueuePosition,
    State,
    WorkItem,
)

SERVICE = "review"


def _item(row: Row[Any]) -> WorkItem:
    return WorkItem(
        request_id=row.request_id,
        request_number=row.request_number,
        department=row.department,
        queue=row.queue,
        sub_service_code=row.sub_service_code,
        description=row.description,
        applicant_id=row.applicant_id,
        document_ids=tuple(row.document_ids),
        contact=Contact(**row.contact),
        state=State(row.state),
        queued_at=row.queued_at,
        assignee=row.assignee,
        decision=Decision(row.decision) if row.decision else None,
        decision_message=row.decision_message,
        priority=row.priority,
    )


class SqlWorkItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: dict[uuid.UUID, WorkItem] = {}
        self._new: set[uuid.UUID] = set()

    async def add(self, item: WorkItem) -> None:
        self.seen[item.request_id] = item
        self._new.add(item.request_id)

    async def get(self, request_id: uuid.UUID, *, for_update: bool = False) -> WorkItem | None:
        query = select(tables.work_items).where(tables.work_items.c.request_id == request_id)
        row = (
            await self._session.execute(query.with_for_update() if for_update else query)
        ).first()
        return None if row is None else self.seen.setdefault(row.request_id, _item(row))

    async def queue(
        self, department: str, limit: int, after: QueuePosition | None
    ) -> list[WorkItem]:
        t = tables.work_items.c
        where = (t.department == department) & t.state.in_([s.value for s in OPEN_STATES])
        if after is not None:
            where &= tuple_(-t.priority, t.queued_at, t.request_number) > tuple_(
                literal(after.rank), literal(after.queued_at), literal(after.request_number)
            )
        rows = await self._session.execute(
            select(tables.work_items)
            .where(where)
            .order_by(t.priority.desc(), t.queued_at, t.request_number)
            .limit(limit)
        )
        return [_item(r) for r in rows]

    async def flush(self) -> None:
        t = tables.work_items
        for item in self.seen.values():
            state = {
                "state": item.state.value,
                "assignee": item.assignee,
                "decision": item.decision.value if item.decision else None,
                "decision_message": item.decision_message,
                "priority": item.priority,
            }
            if item.request_id in self._new:
                await self._session.execute(
                    insert(t).values(
                        request_id=item.request_id,
                        request_number=item.request_number,
                        department=item.department,
                        queue=item.queue,
                        sub_service_code=item.sub_service_code,
                        description=item.description,
                        applicant_id=item.applicant_id,
                        document_ids=list(item.document_ids),
                        contact={
                            "mobile": item.contact.mobile,
                            "email": item.contact.email,
                            "locale": item.contact.locale,
                        },
                        queued_at=item.queued_at,
                        **state,
                    )
                )
            else:
                await self._session.execute(
                    update(t).where(t.c.request_id == item.request_id).values(**state)
                )
            if item.new_history:
                await self._session.execute(
                    insert(tables.history),
                    [
                        {
                            "request_id": item.request_id,
                            "at": h.at,
                            "actor": h.actor,
                            "action": h.action,
                            "note": h.note,
                        }
                        for h in item.new_history
                    ],
                )
                item.new_history.clear()
        self._new.clear()

    async def withdrawal(self, request_id: uuid.UUID) -> tuple[datetime, str] | None:
        t = tables.withdrawals
        row = (await self._session.execute(select(t).where(t.c.request_id == request_id))).first()
        return None if row is None else (row.at, row.reason)

    async def remember_withdrawal(self, request_id: uuid.UUID, at: datetime, reason: str) -> None:
        t = tables.withdrawals
        await self._session.execute(
            pg_insert(t)
            .values(request_id=request_id, at=at, reason=reason)
            .on_conflict_do_nothing()
        )


class ReviewUnitOfWork(SqlUnitOfWork):
    items: SqlWorkItemRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions, Messaging(SERVICE, tables.outbox, tables.inbox))

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.items = SqlWorkItemRepository(self.session)
        return self

    async def commit(self) -> None:
        await self.items.flush()
        for item in self.items.seen.values():
            for event in item.events:
                self.publish(to_event(event))
            item.events.clear()
        await super().commit()
