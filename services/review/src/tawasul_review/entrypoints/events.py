"""Kafka subscribers of review: routed requests join their department's queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from tawasul.events.v1 import events_pb2

from tawasul_review.adapters.events import from_routed
from tawasul_review.app import handlers
from tawasul_review.app.ports import UnitOfWork


def on_routed(uow: Callable[[], UnitOfWork]) -> Callable[[events_pb2.Envelope], Awaitable[None]]:
    async def handle(event: events_pb2.Envelope) -> None:
        await handlers.enqueue(
            uow=uow(), event_id=event.event_id, item=from_routed(event, datetime.now(UTC))
        )

    return handle
