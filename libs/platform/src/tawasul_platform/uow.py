"""A SQLAlchemy unit of work that carries the outbox and the inbox.

Services subclass it to add repositories; whatever they `publish` is written to the outbox in
the transaction that `commit` commits, so no state change goes without its event and no event
without its change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tawasul_platform.events import OutgoingEvent
from tawasul_platform.outbox import write_outbox


@dataclass(frozen=True)
class Messaging:
    service: str
    outbox: Table
    inbox: Table


class SqlUnitOfWork:
    session: AsyncSession

    def __init__(self, sessions: async_sessionmaker[AsyncSession], messaging: Messaging) -> None:
        self._sessions = sessions
        self._messaging = messaging
        self._pending: list[OutgoingEvent] = []

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self._pending = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.session.rollback()
        await self.session.close()

    async def seen_event(self, consumer: str, event_id: str) -> bool:
        inbox = self._messaging.inbox
        found = await self.session.scalar(
            select(inbox.c.event_id).where(
                (inbox.c.consumer == consumer) & (inbox.c.event_id == uuid.UUID(event_id))
            )
        )
        return found is not None

    async def claim_event(self, consumer: str, event_id: str) -> bool:
        """Records the event as applied by `consumer`; False when it already was."""
        inbox = self._messaging.inbox
        result = await self.session.execute(
            pg_insert(inbox)
            .values(consumer=consumer, event_id=uuid.UUID(event_id))
            .on_conflict_do_nothing()
            .returning(inbox.c.event_id)
        )
        return result.first() is not None

    def publish(self, event: OutgoingEvent) -> None:
        self._pending.append(event)

    async def commit(self) -> None:
        m = self._messaging
        await write_outbox(self.session, m.outbox, m.service, self._pending)
        await self.session.commit()
        self._pending = []
