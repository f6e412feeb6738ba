"""Intake's domain events as tawasul.events.v1 envelopes, and its wire status mapping."""

from __future__ import annotations

from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_platform.events import OutgoingEvent, envelope, timestamp
from tawasul_platform.topics import APPLICANT_ACTIONS, REQUEST_SUBMITTED

from tawasul_intake.domain.model import (
    Event,
    Request,
    RequestAnswered,
    RequestAppealed,
    RequestFollowedUp,
    RequestSubmitted,
    Status,
)

STATUS_TO_WIRE = {
    Status.SUBMITTED: common_pb2.REQUEST_STATUS_SUBMITTED,
    Status.UNDER_REVIEW: common_pb2.REQUEST_STATUS_UNDER_REVIEW,
    Status.NEEDS_MORE_INFO: common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
    Status.RETURNED_BY_APPLICANT: common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT,
    Status.ACCEPTED: common_pb2.REQUEST_STATUS_ACCEPTED,
    Status.REJECTED: common_pb2.REQUEST_STATUS_REJECTED,
    Status.PROCESSED: common_pb2.REQUEST_STATUS_PROCESSED,
    Status.CLOSED: common_pb2.REQUEST_STATUS_CLOSED,
    Status.CANCELLED: common_pb2.REQUEST_STATUS_CANCELLED,
    Status.TRANSFERRED: common_pb2.REQUEST_STATUS_TRANSFERRED,
}
STATUS_FROM_WIRE = {wire: status for status, wire in STATUS_TO_WIRE.items()}


def contact(request: Request) -> common_pb2.Contact:
    c = request.contact
    return common_pb2.Contact(mobile=c.mobile, email=c.email, locale=c.locale.value)


def to_event(event: Event) -> OutgoingEvent:
    r = event.request
    if isinstance(event, RequestSubmitted):
        topic, event_type = REQUEST_SUBMITTED, "tawasul.requests.submitted"
        fill = events_pb2.Envelope(
            request_submitted=events_pb2.RequestSubmitted(
                request_id=str(r.id),
                request_number=r.number,
                sub_service_code=r.sub_service_code,
                description=r.description,
                applicant_id=r.applicant_id,
                document_ids=[str(d) for d in r.document_ids],
                contact=contact(r),
                submitted_at=timestamp(r.submitted_at),
                subject_id=r.subject_id,
                fields=r.fields,
                catalog_version=r.catalog_version,
                expected_completion_at=timestamp(event.expected_completion),
                department_code=r.department_code,
                cites_request_number=r.cites_number or "",
                applicant_kind=event.applicant_kind,
                subject_nationality=event.subject_nationality,
                channel=event.channel,
                subject_name_ar=event.subject_names[0],
                subject_name_en=event.subject_names[1],
            )
        )
    elif isinstance(event, RequestFollowedUp):
        topic, event_type = APPLICANT_ACTIONS, "tawasul.requests.followed-up"
        fill = events_pb2.Envelope(
            request_followed_up=events_pb2.RequestFollowedUp(
                request_id=str(r.id),
                request_number=r.number,
                message=event.message,
                follow_up_count=r.follow_up_count,
                contact=contact(r),
                applicant_id=r.applicant_id,
            )
        )
    elif isinstance(event, RequestAppealed):
        topic, event_type = APPLICANT_ACTIONS, "tawasul.requests.appealed"
        fill = events_pb2.Envelope(
            request_appealed=events_pb2.RequestAppealed(
                request_id=str(r.id),
                request_number=r.number,
                reason=event.reason,
                contact=contact(r),
                applicant_id=r.applicant_id,
                expected_completion_at=(
                    timestamp(event.expected_completion) if event.expected_completion else None
                ),
            )
        )
    elif isinstance(event, RequestAnswered):
        topic, event_type = APPLICANT_ACTIONS, "tawasul.requests.answered"
        fill = events_pb2.Envelope(
            request_answered=events_pb2.RequestAnswered(
                request_id=str(r.id),
                request_number=r.number,
                message=event.message,
                fields=event.fields,
                document_ids=[str(d) for d in event.document_ids],
                contact=contact(r),
            )
        )
    else:
        topic, event_type = APPLICANT_ACTIONS, "tawasul.requests.cancelled"
        fill = events_pb2.Envelope(
            request_cancelled=events_pb2.RequestCancelled(
                request_id=str(r.id),
                request_number=r.number,
                reason=event.reason,
                contact=contact(r),
                applicant_id=r.applicant_id,
                off_record=event.off_record,
            )
        )
    return envelope(
        topic=topic,
        event_type=event_type,
        producer="intake",
        request_id=str(r.id),
        occurred_at=r.updated_at,
        fill=fill,
    )
