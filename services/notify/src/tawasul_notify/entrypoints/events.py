"""Kafka subscribers of notify: one consumer group per channel, and one for who may read what
was sent about a request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from tawasul.events.v1 import events_pb2
from tawasul_platform.errors import InvalidArgument

from tawasul_notify.adapters.events import notice_from
from tawasul_notify.app import handlers
from tawasul_notify.app.ports import Sender, UnitOfWork
from tawasul_notify.domain.model import Channel, RequestAccess

Handler = Callable[[events_pb2.Envelope], Awaitable[None]]
BatchHandler = Callable[[Sequence[events_pb2.Envelope]], Awaitable[None]]


def on_event(
    uow: Callable[[], UnitOfWork],
    *,
    channel: Channel,
    sender: Sender | None,
    staff: Mapping[str, str],
    budget: int,
) -> Handler:
    """Tells whoever the event concerns, on this channel only."""

    async def handle(event: events_pb2.Envelope) -> None:
        notice = notice_from(event, staff)
        if notice is None:
            return
        await handlers.notify(
            uow=uow(),
            channel=channel,
            sender=sender,
            notice=notice,
            now=datetime.now(UTC),
            budget=budget,
        )

    return handle


def on_events(
    uow: Callable[[], UnitOfWork],
    *,
    sender: Sender,
    staff: Mapping[str, str],
    concurrency: int,
) -> BatchHandler:
    """A poll's events on a channel that sends, at once (handlers.notify_many)."""

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        notices = [n for event in events if (n := notice_from(event, staff)) is not None]
        await handlers.notify_many(
            uow=uow(),
            channel=sender.channel,
            sender=sender,
            notices=notices,
            now=datetime.now(UTC),
            concurrency=concurrency,
        )

    return handle


def in_app(uow: Callable[[], UnitOfWork], *, staff: Mapping[str, str]) -> BatchHandler:
    """A poll's events, told in-app at once (handlers.store_many)."""

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        notices = [n for event in events if (n := notice_from(event, staff)) is not None]
        await handlers.store_many(uow=uow(), notices=notices, now=datetime.now(UTC))

    return handle


def on_requests(uow: Callable[[], UnitOfWork]) -> BatchHandler:
    """Submitted and routed requests, a poll's worth at once: their applicant and (current)
    department."""

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        await handlers.record_access(
            uow=uow(), accesses=[(event.event_id, _access(event)) for event in events]
        )

    return handle


def _access(event: events_pb2.Envelope) -> RequestAccess:
    payload = event.WhichOneof("payload")
    if payload == "request_submitted":
        s = event.request_submitted
        request_id, applicant, department = s.request_id, s.applicant_id, s.department_code
    elif payload == "request_routed":
        r = event.request_routed
        request_id, applicant, department = r.request_id, r.applicant_id, r.department_code
    else:
        raise InvalidArgument({"payload": f"not a submitted or routed request: {payload}"})
    missing = {
        name: "missing"
        for name, value in (("applicant_id", applicant), ("department_code", department))
        if not value
    }
    if missing:
        raise InvalidArgument(missing)
    return RequestAccess(handlers.request_key(request_id), applicant, department)
