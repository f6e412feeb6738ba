"""Kafka subscribers of notify: tell beneficiaries about their requests by SMS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from tawasul.events.v1 import events_pb2
from tawasul_platform.errors import InvalidArgument

from tawasul_notify.adapters.events import STATUS_FROM_WIRE
from tawasul_notify.app import handlers
from tawasul_notify.app.ports import SmsGateway, UnitOfWork
from tawasul_notify.domain.model import Notice, NoticeKind

Handler = Callable[[events_pb2.Envelope], Awaitable[None]]


def on_submitted(uow: Callable[[], UnitOfWork], gateway: SmsGateway) -> Handler:
    async def handle(event: events_pb2.Envelope) -> None:
        if not event.HasField("request_submitted"):
            raise InvalidArgument({"payload": f"not a submitted request: {event.event_type}"})
        submitted = event.request_submitted
        notice = Notice.create(
            event_id=event.event_id,
            event_type=event.event_type,
            kind=NoticeKind.SUBMITTED,
            request_id=submitted.request_id or event.request_id,
            request_number=submitted.request_number,
            mobile=submitted.contact.mobile,
            locale=submitted.contact.locale,
            expected_completion=(
                submitted.expected_completion_at.ToDatetime(tzinfo=UTC)
                if submitted.HasField("expected_completion_at")
                else None
            ),
        )
        await handlers.notify_beneficiary(
            uow=uow(), gateway=gateway, notice=notice, now=datetime.now(UTC)
        )

    return handle


def on_status_changed(uow: Callable[[], UnitOfWork], gateway: SmsGateway) -> Handler:
    async def handle(event: events_pb2.Envelope) -> None:
        change = event.request_status_changed
        status = STATUS_FROM_WIRE.get(change.status)
        if not event.HasField("request_status_changed") or status is None:
            raise InvalidArgument({"payload": f"not a status change: {event.event_type}"})
        notice = Notice.create(
            event_id=event.event_id,
            event_type=event.event_type,
            kind=NoticeKind.STATUS_CHANGED,
            request_id=change.request_id or event.request_id,
            request_number=change.request_number,
            mobile=change.contact.mobile,
            locale=change.contact.locale,
            status=status,
            message=change.message,
        )
        await handlers.notify_beneficiary(
            uow=uow(), gateway=gateway, notice=notice, now=datetime.now(UTC)
        )

    return handle
