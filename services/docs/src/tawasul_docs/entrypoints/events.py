"""Kafka subscribers of docs: which request, in which department, holds each document."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from tawasul.events.v1 import events_pb2
from tawasul_platform.consumer import BatchHandler, EventHandler
from tawasul_platform.errors import InvalidArgument

from tawasul_docs.app import handlers
from tawasul_docs.app.ports import UnitOfWork
from tawasul_docs.domain.model import Placement


def _uuid(name: str, raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidArgument({name: "not a UUID"}) from exc


def on_submitted(uow: Callable[[], UnitOfWork]) -> EventHandler:
    async def handle(event: events_pb2.Envelope) -> None:
        if not event.HasField("request_submitted"):
            raise InvalidArgument({"payload": f"not a submitted request: {event.event_type}"})
        submitted = event.request_submitted
        await handlers.attach_submitted(
            uow=uow(),
            event_id=event.event_id,
            request_id=_uuid("request_id", submitted.request_id),
            document_ids=tuple(_uuid("document_ids", d) for d in submitted.document_ids),
            now=datetime.now(UTC),
        )

    return handle


def on_routed(uow: Callable[[], UnitOfWork]) -> BatchHandler:
    """Routed requests, a poll's worth at a time."""

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        routed = []
        for event in events:
            if not event.HasField("request_routed"):
                raise InvalidArgument({"payload": f"not a routed request: {event.event_type}"})
            r = event.request_routed
            placement = Placement(
                request_id=_uuid("request_id", r.request_id),
                department=r.department_code,
                document_ids=tuple(_uuid("document_ids", d) for d in r.document_ids),
                sequence=r.sequence,
            )
            routed.append((event.event_id, placement))
        await handlers.grant_access(uow=uow(), routed=routed, now=datetime.now(UTC))

    return handle


def on_applicant_action(uow: Callable[[], UnitOfWork]) -> EventHandler:
    """Only answers bring documents; the other actions are acknowledged and left alone."""

    async def handle(event: events_pb2.Envelope) -> None:
        if not event.HasField("request_answered"):
            return
        answer = event.request_answered
        await handlers.grant_answer(
            uow=uow(),
            event_id=event.event_id,
            request_id=_uuid("request_id", answer.request_id),
            document_ids=tuple(_uuid("document_ids", d) for d in answer.document_ids),
            now=datetime.now(UTC),
        )

    return handle
