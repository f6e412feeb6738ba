"""Kafka subscribers of routing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from tawasul.events.v1 import events_pb2
from tawasul_platform.consumer import BatchHandler, EventHandler

from tawasul_routing.adapters.events import (
    answer_of,
    event_id_of,
    follow_up_of,
    from_submitted,
    transfer_of,
)
from tawasul_routing.app import handlers
from tawasul_routing.app.ports import UnitOfWork
from tawasul_routing.domain.rules import RoutingRules


def on_submitted(uow: Callable[[], UnitOfWork], rules: RoutingRules) -> BatchHandler:
    """Submitted requests, a poll's worth at a time."""

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        now = datetime.now(UTC)
        await handlers.route_requests(
            uow=uow(),
            submitted=[(event_id_of(event), from_submitted(event, now)) for event in events],
            rules=rules,
            now=now,
        )

    return handle


def on_status_changed(uow: Callable[[], UnitOfWork], rules: RoutingRules) -> EventHandler:
    """Transfers route the request again; every other status change is none of routing's."""

    async def handle(event: events_pb2.Envelope) -> None:
        transfer = transfer_of(event)
        if transfer is None:
            return
        await handlers.transfer_request(
            uow=uow(),
            event_id=event_id_of(event),
            transfer=transfer,
            rules=rules,
            now=datetime.now(UTC),
        )

    return handle


def on_applicant_action(uow: Callable[[], UnitOfWork], rules: RoutingRules) -> EventHandler:
    """Follow-ups, and answers that replace fields, may raise a request's priority; the
    beneficiary's other actions are none of routing's."""

    async def handle(event: events_pb2.Envelope) -> None:
        if (follow_up := follow_up_of(event)) is not None:
            await handlers.follow_up(
                uow=uow(),
                event_id=event_id_of(event),
                follow_up=follow_up,
                rules=rules,
                now=datetime.now(UTC),
            )
        elif (answer := answer_of(event)) is not None:
            await handlers.answered(
                uow=uow(),
                event_id=event_id_of(event),
                answer=answer,
                rules=rules,
                now=datetime.now(UTC),
            )

    return handle
