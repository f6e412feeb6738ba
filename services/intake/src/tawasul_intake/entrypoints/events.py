"""Kafka subscribers of intake: keep the tracking view in step with review's decisions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC

from tawasul.events.v1 import events_pb2
from tawasul_platform.consumer import EventHandler
from tawasul_platform.errors import InvalidArgument

from tawasul_intake.adapters.events import STATUS_FROM_WIRE
from tawasul_intake.app import handlers
from tawasul_intake.app.ports import UnitOfWork
from tawasul_intake.domain.model import Missing, Reason


def on_status_changed(uow: Callable[[], UnitOfWork]) -> EventHandler:
    async def handle(event: events_pb2.Envelope) -> None:
        change = event.request_status_changed
        status = STATUS_FROM_WIRE.get(change.status)
        if not event.HasField("request_status_changed") or status is None:
            raise InvalidArgument({"payload": f"not a status change: {event.event_type}"})
        try:
            request_id = uuid.UUID(change.request_id)
        except ValueError as exc:
            raise InvalidArgument({"request_id": "not a UUID"}) from exc
        await handlers.track_status(
            uow=uow(),
            event_id=event.event_id,
            request_id=request_id,
            status=status,
            message=change.message,
            at=event.occurred_at.ToDatetime(tzinfo=UTC),
            missing=tuple(Missing(m.kind, m.name, m.description) for m in change.missing),
            respond_by=(
                change.respond_by.ToDatetime(tzinfo=UTC) if change.HasField("respond_by") else None
            ),
            transfer_to=change.transfer_to_department[:40],
            sequence=change.sequence,
            restates=change.cancel_too_late,
            reason=(
                Reason(change.reason_code, change.reason.ar, change.reason.en)
                if change.reason_code
                else None
            ),
            appeal_until=(
                change.appeal_until.ToDatetime(tzinfo=UTC)
                if change.HasField("appeal_until")
                else None
            ),
        )

    return handle
