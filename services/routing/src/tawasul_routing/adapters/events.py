"""Routing's wire events: reading `submitted`, `status-changed` and the beneficiary's
follow-ups and answers, writing `routed`.

An event that cannot be applied is refused with InvalidArgument, which the consumer
dead-letters at once: a plain ValueError would be retried, holding up the poll, in vain.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import OutgoingEvent, envelope, timestamp
from tawasul_platform.topics import REQUEST_ROUTED

from tawasul_routing.domain.model import (
    Answer,
    FollowUp,
    IncomingRequest,
    RequestRouted,
    Transfer,
)

# Counts and sequences go in PostgreSQL's integer columns; the wire's uint32 may not fit.
MAX_INT = 2**31 - 1


def event_id_of(event: events_pb2.Envelope) -> str:
    """The event's id, which the inbox keys by: it must be a UUID."""
    try:
        uuid.UUID(event.event_id)
    except ValueError as exc:
        raise InvalidArgument({"event_id": "not a UUID"}) from exc
    return event.event_id


def _request_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise InvalidArgument({"request_id": "not a UUID"}) from exc


def _time(stamp: Timestamp, name: str) -> datetime:
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except ValueError as exc:  # seconds or nanos outside what a timestamp may hold
        raise InvalidArgument({name: "not a valid time"}) from exc


def _at_most_int(value: int, name: str) -> int:
    if value > MAX_INT:
        raise InvalidArgument({name: f"at most {MAX_INT}"})
    return value


def from_submitted(event: events_pb2.Envelope, now: datetime) -> IncomingRequest:
    if not event.HasField("request_submitted"):
        raise InvalidArgument({"payload": f"not a submitted request: {event.event_type}"})
    s = event.request_submitted
    # Older producers left submitted_at out; the event's own time is the next best, and the
    # time it arrives the last resort (never the epoch an unset timestamp reads as).
    submitted_at = now
    for stamp, present, name in (
        (s.submitted_at, s.HasField("submitted_at"), "submitted_at"),
        (event.occurred_at, event.HasField("occurred_at"), "occurred_at"),
    ):
        if present:
            submitted_at = _time(stamp, name)
            break
    return IncomingRequest(
        request_id=_request_id(s.request_id),
        request_number=s.request_number,
        sub_service_code=s.sub_service_code,
        description=s.description,
        applicant_id=s.applicant_id,
        document_ids=tuple(s.document_ids),
        mobile=s.contact.mobile,
        email=s.contact.email,
        locale=s.contact.locale,
        submitted_at=submitted_at,
        catalog_version=s.catalog_version,
        subject_id=s.subject_id or s.applicant_id,
        fields=dict(s.fields),
        applicant_kind=s.applicant_kind,
        subject_nationality=s.subject_nationality,
        channel=s.channel,
        subject_name_ar=s.subject_name_ar,
        subject_name_en=s.subject_name_en,
        cites_request_number=s.cites_request_number,
        department_code=s.department_code,
    )


def transfer_of(event: events_pb2.Envelope) -> Transfer | None:
    """The transfer a status change orders, or None for every other change."""
    if not event.HasField("request_status_changed"):
        raise InvalidArgument({"payload": f"not a status change: {event.event_type}"})
    change = event.request_status_changed
    if change.status != common_pb2.REQUEST_STATUS_TRANSFERRED or not change.transfer_to_department:
        return None
    return Transfer(
        request_id=_request_id(change.request_id),
        to_department=change.transfer_to_department,
        reason=change.internal.note,
        sequence=_at_most_int(change.sequence, "sequence"),
        catalog_version=change.catalog_version,
    )


def follow_up_of(event: events_pb2.Envelope) -> FollowUp | None:
    """The follow-up a beneficiary's action is, or None for their other actions."""
    if not event.HasField("request_followed_up"):
        return None
    followed = event.request_followed_up
    if followed.follow_up_count < 1:
        raise InvalidArgument({"follow_up_count": "at least 1: it counts this follow-up"})
    return FollowUp(
        request_id=_request_id(followed.request_id),
        count=_at_most_int(followed.follow_up_count, "follow_up_count"),
    )


def answer_of(event: events_pb2.Envelope) -> Answer | None:
    """The answer to an information request a beneficiary's action is, or None for their
    other actions."""
    if not event.HasField("request_answered"):
        return None
    answer = event.request_answered
    return Answer(request_id=_request_id(answer.request_id), fields=dict(answer.fields))


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
        priority=d.priority,
        rule=d.rule,
        submitted_at=timestamp(r.submitted_at),
        catalog_version=r.catalog_version,
        subject_id=r.subject_id,
        fields=dict(r.fields),
        applicant_kind=r.applicant_kind,
        subject_nationality=r.subject_nationality,
        channel=r.channel,
        transfer_reason=d.transfer_reason,
        transferred_from=d.transferred_from,
        subject_name_ar=r.subject_name_ar,
        subject_name_en=r.subject_name_en,
        cites_request_number=r.cites_request_number,
        sequence=d.sequence,
        transfer_sequence=d.status_sequence,
    )
    return envelope(
        topic=REQUEST_ROUTED,
        event_type="tawasul.requests.routed",
        producer="routing",
        request_id=str(r.request_id),
        occurred_at=d.decided_at,
        fill=events_pb2.Envelope(request_routed=payload),
    )
