"""Notify's one consumer group: who may read what was sent about a request, and the messages
each event calls for, recorded for the channels' senders."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from tawasul.events.v1 import events_pb2
from tawasul_platform.consumer import BatchHandler
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.identity import BENEFICIARY_ROLES, Role

from tawasul_notify.adapters.events import notice_from
from tawasul_notify.app import handlers
from tawasul_notify.app.ports import UnitOfWork
from tawasul_notify.domain.model import Channel, RequestAccess

Wake = Callable[[Channel], None]
# What RequestSubmitted and RequestRouted say filed a request.
APPLICANT_KINDS = frozenset(role.value for role in BENEFICIARY_ROLES)


def told(uow: Callable[[], UnitOfWork], *, staff: Mapping[str, str], wake: Wake) -> BatchHandler:
    """A poll's events, each one's messages recorded at once (handlers.take)."""

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        notices = [n for event in events if (n := notice_from(event, staff)) is not None]
        await handlers.take(uow=uow(), notices=notices, now=datetime.now(UTC), wake=wake)

    return handle


def on_requests(uow: Callable[[], UnitOfWork]) -> BatchHandler:
    """Submitted and routed requests, a poll's worth at once: their applicant and (current)
    department."""

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        await handlers.record_access(
            uow=uow(), accesses=[(event.event_id, _access(event)) for event in events]
        )

    return handle


def submitted(
    uow: Callable[[], UnitOfWork], *, staff: Mapping[str, str], wake: Wake
) -> BatchHandler:
    """A submission says who may read its deliveries and is acknowledged to its applicant."""
    access, tell = on_requests(uow), told(uow, staff=staff, wake=wake)

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        await access(events)
        await tell(events)

    return handle


def _access(event: events_pb2.Envelope) -> RequestAccess:
    payload = event.WhichOneof("payload")
    if payload == "request_submitted":
        s = event.request_submitted
        request_id, applicant, department = s.request_id, s.applicant_id, s.department_code
        kind = s.applicant_kind
    elif payload == "request_routed":
        r = event.request_routed
        request_id, applicant, department = r.request_id, r.applicant_id, r.department_code
        kind = r.applicant_kind
    else:
        raise InvalidArgument({"payload": f"not a submitted or routed request: {payload}"})
    missing = {
        name: "missing"
        for name, value in (("applicant_id", applicant), ("department_code", department))
        if not value
    }
    if missing:
        raise InvalidArgument(missing)
    routed = payload == "request_routed"
    return RequestAccess(
        handlers.request_key(request_id),
        applicant,
        department,
        routed=routed,
        sequence=event.request_routed.sequence if routed else 0,
        transfer_sequence=event.request_routed.transfer_sequence if routed else 0,
        # Only the wording of its messages depends on it: one not said, or not known, is
        # told as to a citizen rather than holding up who may read them.
        applicant_kind=Role(kind) if kind in APPLICANT_KINDS else None,
    )
