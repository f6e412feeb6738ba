"""Intake's domain events as tawasul.events.v1 envelopes, and its wire status mapping."""

from __future__ import annotations

from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_platform.events import OutgoingEvent, envelope, timestamp
from tawasul_platform.topics import REQUEST_SUBMITTED

from tawasul_intake.domain.model import RequestSubmitted, Status

STATUS_TO_WIRE = {
    Status.SUBMITTED: common_pb2.REQUEST_STATUS_SUBMITTED,
    Status.UNDER_REVIEW: common_pb2.REQUEST_STATUS_UNDER_REVIEW,
    Status.ACCEPTED: common_pb2.REQUEST_STATUS_ACCEPTED,
    Status.REJECTED: common_pb2.REQUEST_STATUS_REJECTED,
}
STATUS_FROM_WIRE = {wire: status for status, wire in STATUS_TO_WIRE.items()}


def to_event(event: RequestSubmitted) -> OutgoingEvent:
    r = event.request
    payload = events_pb2.RequestSubmitted(
        request_id=str(r.id),
        request_number=r.number,
        sub_service_code=r.sub_service_code,
        description=r.description,
        applicant_id=r.applicant_id,
        document_ids=[str(d) for d in r.document_ids],
        contact=common_pb2.Contact(
            mobile=r.contact.mobile, email=r.contact.email, locale=r.contact.locale.value
        ),
        submitted_at=timestamp(r.submitted_at),
    )
    return envelope(
        topic=REQUEST_SUBMITTED,
        event_type="tawasul.requests.submitted",
        producer="intake",
        request_id=str(r.id),
        occurred_at=r.submitted_at,
        fill=events_pb2.Envelope(request_submitted=payload),
    )
