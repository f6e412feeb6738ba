"""PostgreSQL-backed repository and unit of work for notify."""

from __future__ import annotations

import uuid
from typing import Any, Self

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tawasul_platform.uow import Messaging, SqlUnitOfWork

from tawasul_notify.adapters import tables
from tawasul_notify.adapters.events import to_event
from tawasul_notify.domain.model import Channel, Delivery, DeliveryStatus

SERVICE = "notify"


def _row(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "request_id": delivery.request_id,
        "cause_event_id": delivery.cause_event_id,
        "cause_event_type": delivery.cause_event_type,
        "channel": delivery.channel.value,
        "recipient": delivery.recipient,
        "text": delivery.text,
        "status": delivery.status.value,
        "provider_message_id": delivery.provider_message_id,
        "created_at": delivery.created_at,
    }


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        request_id=row.request_id,
        cause_event_id=row.cause_event_id,
        cause_event_type=row.cause_event_type,
        channel=Channel(row.channel),
        recipient=row.recipient,
        text=row.text,
        status=DeliveryStatus(row.status),
        provider_message_id=row.provider_message_id,
        created_at=row.created_at,
    )


class SqlDeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.added: list[Delivery] = []

    async def add(self, delivery: Delivery) -> None:
        self.added.append(delivery)

    async def list_for_request(self, request_id: uuid.UUID) -> list[Delivery]:
        t = tables.deliveries
        rows = await self._session.execute(
            select(t).where(t.c.request_id == request_id).order_by(t.c.created_at, t.c.id)
        )
        return [_delivery(row) for row in rows]

    async def flush(self) -> None:
        if self.added:
            await self._session.execute(insert(tables.deliveries), [_row(d) for d in self.added])


class NotifyUnitOfWork(SqlUnitOfWork):
    deliveries: SqlDeliveryRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions, Messaging(SERVICE, tables.outbox, tables.inbox))

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.deliveries = SqlDeliveryRepository(self.session)
        return self

    async def commit(self) -> None:
        await self.deliveries.flush()
        for delivery in self.deliveries.added:
            for event in delivery.events:
                self.publish(to_event(event))
            delivery.events.clear()
        self.deliveries.added.clear()
        await super().commit()
