"""Kafka subscribers of review: routed requests join their department's queue; the
beneficiary's follow-ups raise them and cancellations withdraw them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from tawasul.events.v1 import events_pb2
from tawasul_platform.errors import InvalidArgument

from tawasul_review.adapters.events import from_routed
from tawasul_review.app import handlers
from tawasul_review.app.ports import UnitOfWork


def on_routed(uow: Callable[[], UnitOfWork]) -> Callable[[events_pb2.Envelope], Awaitable[None]]:
    async def handle(event: events_pb2.Envelope) -> None:
        await handlers.enqueue(
            uow=uow(), event_id=event.event_id, item=from_routed(event, datetime.now(UTC))
        )

    return handle


def on_applicant_action(
    uow: Callable[[], UnitOfWork],
) -> Callable[[events_pb2.Envelope], Awaitable[None]]:
    async def handle(event: events_pb2.Envelope) -> None:
        at = event.occurred_at.ToDatetime(tzinfo=UTC)
        kind = event.WhichOneof("payload")
        if kind == "request_followed_up":
            followed = event.request_followed_up
            await handlers.follow_up(
                uow=uow(),
                event_id=event.event_id,
                request_id=request_id(followed.request_id),
                count=followed.follow_up_count,
                message=followed.message,
                at=at,
            )
        elif kind == "request_cancelled":
            cancelled = event.request_cancelled
            await handlers.withdraw(
                uow=uow(),
                event_id=event.event_id,
                request_id=request_id(cancelled.request_id),
                reason=cancelled.reason,
                at=at,
            )
        else:
            raise InvalidArgument({"payload": f"not an applicant action: {event.event_type}"})

    return handle


def request_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidArgument({"request_id": "not a UUID"}) from exc
