"""Kafka subscribers of review: routed requests join their department's queue; the
beneficiary's follow-ups raise them, answers bring them back and cancellations withdraw them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from tawasul.events.v1 import events_pb2
from tawasul_platform import tracing
from tawasul_platform.consumer import BatchHandler, EventHandler
from tawasul_platform.errors import InvalidArgument

from tawasul_review.adapters.events import from_routed
from tawasul_review.app import handlers
from tawasul_review.app.ports import UnitOfWork
from tawasul_review.domain.model import Receipt

Clock = Callable[[], datetime]


def on_routed(uow: Callable[[], UnitOfWork], policy: handlers.Policy, now: Clock) -> BatchHandler:
    """Routed requests, a poll's worth at a time, queued as of `now()`."""

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        at = now()
        routed = []
        for event in events:
            code = event.request_routed.sub_service_code
            sub_service = policy.catalog.sub_services.get(code)
            routed.append(
                (event.event_id, from_routed(event, at, sub_service.sla if sub_service else None))
            )
        await handlers.enqueue(uow=uow(), routed=routed, policy=policy, now=at)

    return handle


def on_applicant_actions(
    uow: Callable[[], UnitOfWork], policy: handlers.Policy, now: Clock
) -> BatchHandler:
    """A poll of the beneficiaries' actions, one by one in the poll's transaction, their items
    taken first (`handlers.take_items`): as every reviewer's call takes an item before a queue
    or a reviewer. Taken as the events came, a cancellation freeing a reviewer held a pushing
    queue's lock while the next event waited for an item's row that a reviewer's call held on
    its way to that queue, until PostgreSQL undid one of them."""
    each = on_applicant_action(uow, policy, now)

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        if len(events) > 1:
            await handlers.take_items(uow=uow(), request_ids=_request_ids(events))
        for event in events:
            # Each its own effects, in its own trace: a follow-up and a cancellation of one
            # request in a poll would otherwise both write in the cancellation's.
            with tracing.applying(event.event_id):
                await each(event)

    return handle


def _request_ids(events: Sequence[events_pb2.Envelope]) -> list[uuid.UUID]:
    """The requests of those events that name one (another fails on its own, in its turn)."""
    ids = []
    for event in events:
        try:
            ids.append(uuid.UUID(event.request_id))
        except ValueError:
            continue
    return ids


def on_applicant_action(
    uow: Callable[[], UnitOfWork], policy: handlers.Policy, now: Clock
) -> EventHandler:
    """The beneficiary's actions, each as of when intake took it; an answer and an appeal are
    applied as of `now()` (an answer may reopen what the sweep closed meanwhile; either may
    give the item to a reviewer, whose lease starts now, as may a cancellation that frees one)."""

    async def handle(event: events_pb2.Envelope) -> None:
        at = event.occurred_at.ToDatetime(tzinfo=UTC)
        kind = event.WhichOneof("payload")
        if kind == "request_followed_up":
            followed = event.request_followed_up
            await handlers.follow_up(
                uow=uow(),
                event_id=event.event_id,
                request_id=request_id(followed.request_id),
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
                policy=policy,
                now=max(at, now()),
                by_office=cancelled.off_record,
            )
        elif kind == "request_answered":
            answer = event.request_answered
            await handlers.answered(
                uow=uow(),
                event_id=event.event_id,
                request_id=request_id(answer.request_id),
                message=answer.message,
                policy=policy,
                now=max(at, now()),
                answered_at=at,
                document_ids=tuple(answer.document_ids),
                fields=dict(answer.fields),
            )
        elif kind == "request_appealed":
            appealed = event.request_appealed
            await handlers.appeal(
                uow=uow(),
                event_id=event.event_id,
                request_id=request_id(appealed.request_id),
                reason=appealed.reason,
                policy=policy,
                now=max(at, now()),
                appealed_at=at,
            )
        else:
            raise InvalidArgument({"payload": f"not an applicant action: {event.event_type}"})

    return handle


def on_notifications(uow: Callable[[], UnitOfWork]) -> BatchHandler:
    """Notify's delivery receipts, a poll's worth at once, written into the requests' history."""

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        await handlers.record_receipts(uow=uow(), receipts=[_receipt(event) for event in events])

    return handle


def _receipt(event: events_pb2.Envelope) -> Receipt:
    if not event.HasField("notification_sent"):
        raise InvalidArgument({"payload": f"not a delivery receipt: {event.event_type}"})
    sent = event.notification_sent
    return Receipt(
        event_id=event.event_id,
        request_id=request_id(sent.request_id),
        at=event.occurred_at.ToDatetime(tzinfo=UTC),
        channel=sent.channel,
        status=sent.status,
        cause=sent.cause_event_id,
    )


def request_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidArgument({"request_id": "not a UUID"}) from exc
