"""Routing's wire events: reading `submitted`, writing `routed`."""

from __future__ import annotations

import uuid

from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import OutgoingEvent, envelope
from tawasul_platform.topics import REQUEST_ROUTED

from tawasul_routing.domain.model import IncomingRequest, RequestRouted


def from_submitted(event: events_pb2.Envelope) -> IncomingRequest:
    if not event.HasField("request_submitted"):
        raise InvalidArgument({"payload": f"not a submitted request: {event.event_type}"})
    s = event.request_submitted
    try:
        request_id = uuid.UUID(s.request_id)
    except ValueError as exc:
        raise InvalidArgument({"request_id": "not a UUID"}) from exc
    return IncomingRequest(
        request_id=request_id,
        request_number=s.request_number,
        sub_service_code=s.sub_service_code,
        description=s.description,
        applicant_id=s.applicant_id,
        document_ids=tuple(s.document_ids),
        mobile=s.contact.mobile,
        email=s.contact.email,
        locale=s.contact.locale,
    )


def to_event(event: RequestRouted) -> OutgoingEvent:
    d = event.decision
    r = d.request
    payload = events_pb2.RequestRouted(
        request_id=str(r.request_id),
        request_number=r.request_number,
        sub_service_code=r.sub_service_code,
        department_code=d.department,
        queue=d.queue,
        description=r.description,
        applicant_id=r.applicant_id,
        document_ids=list(r.document_ids),
        contact=common_pb2.Contact(mobile=r.mobile, email=r.email, locale=r.locale),
    )
    return envelope(
        topic=REQUEST_ROUTED,
        event_type="tawasul.requests.routed",
        producer="routing",
        request_id=str(r.request_id),
        occurred_at=d.decided_at,
        fill=events_pb2.Envelope(request_routed=payload),
    )
