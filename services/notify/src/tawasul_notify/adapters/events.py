"""Notify's domain events as tawasul.events.v1 envelopes, and its wire status mapping."""

from __future__ import annotations

from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_platform.events import OutgoingEvent, envelope
from tawasul_platform.topics import NOTIFICATION_EVENTS

from tawasul_notify.domain.model import DeliveryRecorded, Status

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


def to_event(event: DeliveryRecorded) -> OutgoingEvent:
    d = event.delivery
    payload = events_pb2.NotificationSent(
        delivery_id=str(d.id),
        request_id=str(d.request_id),
        channel=d.channel.value,
        recipient=d.recipient,
        status=d.status.value,
        provider_message_id=d.provider_message_id,
        cause_event_id=str(d.cause_event_id),
    )
    return envelope(
        topic=NOTIFICATION_EVENTS,
        event_type="tawasul.notifications.sent",
        producer="notify",
        request_id=str(d.request_id),
        occurred_at=d.created_at,
        fill=events_pb2.Envelope(notification_sent=payload),
    )
