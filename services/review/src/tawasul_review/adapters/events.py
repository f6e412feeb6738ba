"""Review's wire events: reading `routed`, writing `status-changed`."""

from __future__ import annotations

import uuid
from datetime import datetime

from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import OutgoingEvent, envelope
from tawasul_platform.topics import REQUEST_STATUS_CHANGED

from tawasul_review.domain.model import Contact, Status, StatusChanged, WorkItem

STATUS_TO_WIRE = {
    Status.UNDER_REVIEW: common_pb2.REQUEST_STATUS_UNDER_REVIEW,
    Status.ACCEPTED: common_pb2.REQUEST_STATUS_ACCEPTED,
    Status.REJECTED: common_pb2.REQUEST_STATUS_REJECTED,
}


def from_routed(event: events_pb2.Envelope, now: datetime) -> WorkItem:
    if not event.HasField("request_routed"):
        raise InvalidArgument({"payload": f"not a routed request: {event.event_type}"})
    r = event.request_routed
    try:
        request_id = uuid.UUID(r.request_id)
    except ValueError as exc:
        raise InvalidArgument({"request_id": "not a UUID"}) from exc
    return WorkItem.enqueue(
        request_id=request_id,
        request_number=r.request_number,
        department=r.department_code,
        queue=r.queue,
        sub_service_code=r.sub_service_code,
        description=r.description,
        applicant_id=r.applicant_id,
        document_ids=tuple(r.document_ids),
        contact=Contact(mobile=r.contact.mobile, email=r.contact.email, locale=r.contact.locale),
        now=now,
    )


def to_event(event: StatusChanged) -> OutgoingEvent:
    item = event.item
    payload = events_pb2.RequestStatusChanged(
        request_id=str(item.request_id),
        request_number=item.request_number,
        status=STATUS_TO_WIRE[event.status],
        actor_id=event.actor,
        message=event.message,
        contact=common_pb2.Contact(
            mobile=item.contact.mobile, email=item.contact.email, locale=item.contact.locale
        ),
    )
    return envelope(
        topic=REQUEST_STATUS_CHANGED,
        event_type="tawasul.requests.status-changed",
        producer="review",
        request_id=str(item.request_id),
        occurred_at=event.at,
        fill=events_pb2.Envelope(request_status_changed=payload),
    )
