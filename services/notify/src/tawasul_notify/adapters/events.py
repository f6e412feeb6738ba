"""Notify's wire events: the request events it tells people about, and its delivery results."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_calendar import RIYADH
from tawasul_platform.catalog import load_catalog
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import OutgoingEvent, envelope
from tawasul_platform.topics import NOTIFICATION_EVENTS

from tawasul_notify.domain.model import (
    Audience,
    DeliveryRecorded,
    Locale,
    Notice,
    Recipient,
    Status,
    locale_of,
)
from tawasul_notify.domain.templates import PORTAL_WORDS, Kind, variables

STATUS_FROM_WIRE = {
    common_pb2.REQUEST_STATUS_SUBMITTED: Status.SUBMITTED,
    common_pb2.REQUEST_STATUS_UNDER_REVIEW: Status.UNDER_REVIEW,
    common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO: Status.NEEDS_MORE_INFO,
    common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT: Status.RETURNED_BY_APPLICANT,
    common_pb2.REQUEST_STATUS_ACCEPTED: Status.ACCEPTED,
    common_pb2.REQUEST_STATUS_REJECTED: Status.REJECTED,
    common_pb2.REQUEST_STATUS_PROCESSED: Status.PROCESSED,
    common_pb2.REQUEST_STATUS_CLOSED: Status.CLOSED,
    common_pb2.REQUEST_STATUS_CANCELLED: Status.CANCELLED,
    common_pb2.REQUEST_STATUS_TRANSFERRED: Status.TRANSFERRED,
}
# The statuses the beneficiary is told about (an answer that reopened a request they were
# told was closed: Kind.REOPENED); back to submitted (an internal step) says nothing.
STATUS_KINDS = {
    Status.UNDER_REVIEW: Kind.UNDER_REVIEW,
    Status.NEEDS_MORE_INFO: Kind.NEEDS_MORE_INFO,
    Status.RETURNED_BY_APPLICANT: Kind.ANSWER_RECEIVED,
    Status.ACCEPTED: Kind.ACCEPTED,
    Status.REJECTED: Kind.REJECTED,
    Status.PROCESSED: Kind.PROCESSED,
    Status.TRANSFERRED: Kind.TRANSFERRED,
    Status.CLOSED: Kind.CLOSED,
    Status.CANCELLED: Kind.CANCELLED,
}
# What review may have reached before a cancellation reached it (an acceptance it may have
# processed since).
OUTCOMES = frozenset({Status.ACCEPTED, Status.REJECTED, Status.PROCESSED, Status.CLOSED})
# Review's actor for what the office did itself: on a cancellation it restates, or one it says
# came too late, the office's cancellation of a request whose person is off the account's
# record (intake's RequestCancelled.off_record), which the account never asked for.
OFFICE = "system"
BREACH = 100


def _beneficiary(contact: common_pb2.Contact, applicant_id: str) -> tuple[Recipient, ...]:
    return (Recipient(mobile=contact.mobile, email=contact.email, account=applicant_id),)


def _when(stamp: Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def _riyadh_day(stamp: Timestamp, present: bool) -> date | None:
    when = _when(stamp, present)
    return when.astimezone(RIYADH).date() if when else None


def _department(code: str, locale: Locale) -> str:
    """The department as the office names it (the catalog's), else its code."""
    department = load_catalog().departments.get(code)
    return department.name.in_locale(locale) if department else code


def notice_from(event: events_pb2.Envelope, staff: Mapping[str, str]) -> Notice | None:
    """The notice an event gives, or None when it tells nobody anything."""
    payload = event.WhichOneof("payload")
    if payload == "request_submitted":
        s = event.request_submitted
        return Notice.create(
            event_id=event.event_id,
            event_type=event.event_type,
            kind=Kind.SUBMITTED,
            request_id=s.request_id or event.request_id,
            locale=s.contact.locale,
            recipients=_beneficiary(s.contact, s.applicant_id),
            values={
                "number": s.request_number,
                "due": _riyadh_day(s.expected_completion_at, s.HasField("expected_completion_at")),
            },
        )
    if payload == "request_status_changed":
        c = event.request_status_changed
        status = STATUS_FROM_WIRE.get(c.status)
        if status is None:
            raise InvalidArgument({"status": f"not a request status: {c.status}"})
        kind = STATUS_KINDS.get(status)
        if c.reopened and status is Status.RETURNED_BY_APPLICANT:
            kind = Kind.REOPENED
        elif c.cancel_too_late:
            kind = Kind.CANCEL_TOO_LATE if status in OUTCOMES else None
        elif status is Status.CANCELLED and c.actor_id == OFFICE:
            kind = Kind.CANCELLED_OFF_RECORD
        elif c.reviewer_message:
            kind = Kind.MESSAGE
        if kind is None:
            return None
        locale = locale_of(c.contact.locale)
        # What a status change can say; each kind's templates take their part of it.
        values = {
            "number": c.request_number,
            "note": c.message,
            "reason": c.reason.en if locale is Locale.EN else c.reason.ar,
            "missing": [m.description or m.name for m in c.missing],
            "respond_by": _riyadh_day(c.respond_by, c.HasField("respond_by")),
            "outcome": status.value,
            "due": _riyadh_day(c.due_at, c.HasField("due_at")),
            "appeal": not c.decides_appeal,
            "appeal_until": _riyadh_day(c.appeal_until, c.HasField("appeal_until")),
            "office": c.actor_id == OFFICE,
            # Whether the beneficiary was told the request was cancelled: what notify told
            # says (handlers.take).
            "cancelled_told": False,
            # The event does not say who filed the request: Absher's words, unless what its
            # submission recorded says an establishment did (handlers.take).
            PORTAL_WORDS: False,
        }
        return Notice.create(
            event_id=event.event_id,
            event_type=event.event_type,
            kind=kind,
            request_id=c.request_id or event.request_id,
            locale=locale,
            recipients=_beneficiary(c.contact, c.applicant_id),
            values={name: v for name, v in values.items() if name in variables(kind)},
            sequence=c.sequence,
            # Review restates a cancellation a closure overtook, or says one came too late, at
            # the time intake took it (WorkItem.withdraw).
            cancelled_at=_when(event.occurred_at, event.HasField("occurred_at"))
            if kind in (Kind.CANCELLED, Kind.CANCELLED_OFF_RECORD, Kind.CANCEL_TOO_LATE)
            else None,
            deadline=_when(c.respond_by, c.HasField("respond_by")) if kind == Kind.CLOSED else None,
        )
    if payload == "request_followed_up":
        f = event.request_followed_up
        return Notice.create(
            event_id=event.event_id,
            event_type=event.event_type,
            kind=Kind.FOLLOWED_UP,
            request_id=f.request_id or event.request_id,
            locale=f.contact.locale,
            recipients=_beneficiary(f.contact, f.applicant_id),
            values={"number": f.request_number, "count": f.follow_up_count},
        )
    if payload == "request_cancelled":
        x = event.request_cancelled
        # The office's cancellation is not "as you asked": it says why, in Muqeem's words when
        # an establishment filed the request (handlers.take).
        cancelled = Kind.CANCELLED_OFF_RECORD if x.off_record else Kind.CANCELLED
        told = {"number": x.request_number, PORTAL_WORDS: False}
        return Notice.create(
            event_id=event.event_id,
            event_type=event.event_type,
            kind=cancelled,
            request_id=x.request_id or event.request_id,
            locale=x.contact.locale,
            recipients=_beneficiary(x.contact, x.applicant_id),
            values={name: v for name, v in told.items() if name in variables(cancelled)},
            cancelled_at=_when(event.occurred_at, event.HasField("occurred_at")),
        )
    if payload == "sla_alert":
        a = event.sla_alert
        breach = a.percent >= BREACH
        # A warning is for whoever holds the request; held by no one, review names the
        # supervisors, as it does for a breach.
        warns = "" if breach else a.assignee_id
        accounts = [warns] if warns else list(a.supervisor_ids)
        if not accounts:
            return None
        facts: dict[str, object] = {
            "number": a.request_number,
            "department": _department(a.department_code, Locale.AR),
            "due_at": a.due_at.ToDatetime(tzinfo=UTC),
            "assignee": a.assignee_id,
        }
        return Notice.create(
            event_id=event.event_id,
            event_type=event.event_type,
            kind=Kind.SLA_BREACH if breach else Kind.SLA_WARNING,
            request_id=a.request_id or event.request_id,
            locale=Locale.AR,
            audience=Audience.REVIEWER if warns else Audience.SUPERVISOR,
            recipients=tuple(Recipient(email=staff.get(s, ""), account=s) for s in accounts),
            values=facts if breach else facts | {"percent": a.percent},
        )
    if payload == "request_appealed":
        # Intake takes the appeal and the request is back under review, but review says
        # nothing until another reviewer claims it: the beneficiary is told it arrived.
        p = event.request_appealed
        return Notice.create(
            event_id=event.event_id,
            event_type=event.event_type,
            kind=Kind.APPEAL_RECEIVED,
            request_id=p.request_id or event.request_id,
            locale=p.contact.locale,
            recipients=_beneficiary(p.contact, p.applicant_id),
            values={
                "number": p.request_number,
                "due": _riyadh_day(p.expected_completion_at, p.HasField("expected_completion_at")),
            },
        )
    if payload == "request_answered":
        return None
    raise InvalidArgument({"payload": f"nothing notify reads: {event.event_type}"})


def to_event(event: DeliveryRecorded) -> OutgoingEvent:
    """The result, without the recipient's number or address."""
    d = event.delivery
    payload = events_pb2.NotificationSent(
        delivery_id=str(d.id),
        request_id=str(d.request_id),
        channel=d.channel.value,
        status=d.status.value,
        provider_message_id=d.provider_message_id,
        cause_event_id=str(d.cause_event_id),
        cause_event_type=d.cause_event_type,
        kind=d.kind,
        audience=d.audience.value,
        parts=d.parts,
    )
    return envelope(
        topic=NOTIFICATION_EVENTS,
        event_type="tawasul.notifications.sent",
        producer="notify",
        request_id=str(d.request_id),
        occurred_at=d.updated_at,
        fill=events_pb2.Envelope(notification_sent=payload),
    )
