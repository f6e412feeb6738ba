"""PostgreSQL-backed repository and unit of work for routing."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Self

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tawasul_platform.uow import Messaging, SqlUnitOfWork

from tawasul_routing.adapters import tables
from tawasul_routing.adapters.events import to_event
from tawasul_routing.domain.model import Decision, IncomingRequest

SERVICE = "routing"


class SqlDecisionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.added: list[Decision] = []

    async def add(self, decision: Decision) -> None:
        request = dataclasses.asdict(decision.request)
        request["request_id"] = str(decision.request.request_id)
        await self._session.execute(
            insert(tables.decisions).values(
                request_id=decision.request.request_id,
                department=decision.department,
                queue=decision.queue,
                rule=decision.rule,
                decided_at=decision.decided_at,
                request=request,
            )
        )
        self.added.append(decision)

    async def get(self, request_id: uuid.UUID) -> Decision | None:
        row = (
            await self._session.execute(
                select(tables.decisions).where(tables.decisions.c.request_id == request_id)
            )
        ).first()
        if row is None:
            return None
        raw = dict(row.request)
        raw["request_id"] = uuid.UUID(raw["request_id"])
        raw["document_ids"] = tuple(raw["document_ids"])
        return Decision(
            request=IncomingRequest(**raw),
            department=row.department,
            queue=row.queue,
            rule=row.rule,
            decided_at=row.decided_at,
        )


class RoutingUnitOfWork(SqlUnitOfWork):
    decisions: SqlDecisionRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions, Messaging(SERVICE, tables.outbox, tables.inbox))

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.decisions = SqlDecisionRepository(self.session)
        return self

    async def commit(self) -> None:
        for decision in self.decisions.added:
            for event in decision.events:
                self.publish(to_event(event))
            decision.events.clear()
        await super().commit()
