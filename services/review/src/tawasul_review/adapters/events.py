"""Review's wire events: reading `routed`, writing `status-changed` and SLA alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_calendar import FIRST_DAY, Sla
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import OutgoingEvent, envelope, timestamp
from tawasul_platform.topics import REQUEST_STATUS_CHANGED, SLA_ALERTS

from tawasul_review.domain.model import (
    Contact,
    Event,
    SlaCrossed,
    Status,
    StatusChanged,
    WorkItem,
    names_of,
)

STATUS_TO_WIRE = {
    Status.UNDER_REVIEW: common_pb2.REQUEST_STATUS_UNDER_REVIEW,
    Status.NEEDS_MORE_INFO: common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
    Status.RETURNED_BY_APPLICANT: common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT,
    Status.ACCEPTED: common_pb2.REQUEST_STATUS_ACCEPTED,
    Status.REJECTED: common_pb2.REQUEST_STATUS_REJECTED,
    Status.PROCESSED: common_pb2.REQUEST_STATUS_PROCESSED,
    Status.CLOSED: common_pb2.REQUEST_STATUS_CLOSED,
    Status.TRANSFERRED: common_pb2.REQUEST_STATUS_TRANSFERRED,
    Status.CANCELLED: common_pb2.REQUEST_STATUS_CANCELLED,
}


def from_routed(event: events_pb2.Envelope, now: datetime, sla: Sla | None) -> WorkItem:
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
        submitted_at=_submitted_at(r, now),
        sla=sla,
        priority=r.priority,
        subject_id=r.subject_id,
        names=names_of((r.subject_name_ar, r.subject_name_en), dict(r.fields)),
        fields=dict(r.fields),
        cites_request_number=r.cites_request_number,
        routed_sequence=r.sequence,
        routed_transfer=r.transfer_sequence,
    )


def _submitted_at(routed: events_pb2.RequestRouted, now: datetime) -> datetime:
    """When the SLA clock started; an absent or impossible time counts from arrival here."""
    if not routed.HasField("submitted_at"):
        return now
    submitted = routed.submitted_at.ToDatetime(tzinfo=UTC)
    return submitted if submitted.date() >= FIRST_DAY and submitted <= now else now


def to_event(event: Event) -> OutgoingEvent:
    item = event.item
    if isinstance(event, SlaCrossed):
        return envelope(
            topic=SLA_ALERTS,
            event_type="tawasul.requests.sla",
            producer="review",
            request_id=str(item.request_id),
            occurred_at=event.at,
            fill=events_pb2.Envelope(
                sla_alert=events_pb2.SlaAlert(
                    request_id=str(item.request_id),
                    request_number=item.request_number,
                    department_code=item.department,
                    percent=event.percent,
                    due_at=timestamp(event.due_at),
                    assignee_id=item.assignee,
                    supervisor_ids=list(event.supervisors),
                )
            ),
        )
    return envelope(
        topic=REQUEST_STATUS_CHANGED,
        event_type="tawasul.requests.status-changed",
        producer="review",
        request_id=str(item.request_id),
        occurred_at=event.at,
        fill=events_pb2.Envelope(request_status_changed=_status_changed(event)),
    )


def _status_changed(event: StatusChanged) -> events_pb2.RequestStatusChanged:
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
        missing=[
            common_pb2.MissingItem(kind=m.kind, name=m.name, description=m.description)
            for m in event.missing
        ],
        transfer_to_department=event.transfer_to,
        catalog_version=event.catalog_version,
        applicant_id=item.applicant_id,
        reopened=event.reopened,
        cancel_too_late=event.cancel_too_late,
        reviewer_message=event.reviewer_message,
        sequence=event.sequence,
        decides_appeal=event.decides_appeal,
        internal=events_pb2.RequestStatusChanged.Internal(
            note=event.internal_note, department_code=item.department
        ),
    )
    if event.reason is not None:
        payload.reason_code = event.reason.code
        payload.reason.CopyFrom(common_pb2.LocalizedText(ar=event.reason.ar, en=event.reason.en))
    if event.respond_by is not None:
        payload.respond_by.CopyFrom(timestamp(event.respond_by))
    if event.due_at is not None:
        payload.due_at.CopyFrom(timestamp(event.due_at))
    if event.appeal_until is not None:
        payload.appeal_until.CopyFrom(timestamp(event.appeal_until))
    return payload
