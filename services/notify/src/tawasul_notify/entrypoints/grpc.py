"""NotifyService over gRPC: translates wire messages to use-case calls and back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from tawasul.notify.v1 import notify_pb2, notify_pb2_grpc
from tawasul_platform.authz import SIGNED_IN, STAFF, Rule, services
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import caller

from tawasul_notify.app import handlers
from tawasul_notify.app.ports import Sender, UnitOfWork
from tawasul_notify.domain.model import Delivery, DeliveryStatus, InboxMessage, mask

Context = grpc.aio.ServicerContext[Any, Any]

# One-time codes go out only when intake asks (its client certificate says so): anyone else
# could text any number. Deliveries are read by the applicant or the department's reviewers;
# everyone signed in has an inbox (supervisors get SLA breaches in theirs).
ACCESS: dict[str, Rule] = {
    "SendOneTimeCode": services("intake"),
    "ListDeliveries": SIGNED_IN,
    "ListInbox": SIGNED_IN,
    "MarkInboxRead": SIGNED_IN,
    "PreviewTemplate": STAFF,
}

STATUS_TO_WIRE = {
    DeliveryStatus.PENDING: notify_pb2.DELIVERY_STATUS_PENDING,
    DeliveryStatus.SENT: notify_pb2.DELIVERY_STATUS_ACCEPTED,
    DeliveryStatus.DELIVERED: notify_pb2.DELIVERY_STATUS_DELIVERED,
    DeliveryStatus.FAILED: notify_pb2.DELIVERY_STATUS_FAILED,
}


def to_wire(delivery: Delivery) -> notify_pb2.Delivery:
    return notify_pb2.Delivery(
        delivery_id=str(delivery.id),
        request_id=str(delivery.request_id),
        channel=delivery.channel.value,
        recipient=mask(delivery.recipient, delivery.channel),
        text=delivery.text,
        status=STATUS_TO_WIRE[delivery.status],
        provider_message_id=delivery.provider_message_id,
        cause_event_type=delivery.cause_event_type,
        created_at=timestamp(delivery.created_at),
        kind=delivery.kind,
        audience=delivery.audience.value,
        subject=delivery.subject,
        parts=delivery.parts,
        error=delivery.error,
        updated_at=timestamp(delivery.updated_at),
        attempts=delivery.attempts,
    )


def _message(message: InboxMessage) -> notify_pb2.InboxMessage:
    wire = notify_pb2.InboxMessage(
        message_id=str(message.id),
        request_id=str(message.request_id),
        kind=message.kind,
        text=message.text,
        created_at=timestamp(message.created_at),
    )
    if message.read_at is not None:
        wire.read_at.CopyFrom(timestamp(message.read_at))
    return wire


class NotifyServicer(notify_pb2_grpc.NotifyServiceServicer):
    def __init__(self, *, uow: Callable[[], UnitOfWork], sms: Sender) -> None:
        self._uow = uow
        self._sms = sms

    async def ListDeliveries(
        self, request: notify_pb2.ListDeliveriesRequest, context: Context
    ) -> notify_pb2.ListDeliveriesResponse:
        found = await handlers.list_deliveries(
            uow=self._uow(), caller=caller(), request_id=request.request_id
        )
        return notify_pb2.ListDeliveriesResponse(deliveries=[to_wire(d) for d in found])

    async def SendOneTimeCode(
        self, request: notify_pb2.SendOneTimeCodeRequest, context: Context
    ) -> notify_pb2.SendOneTimeCodeResponse:
        delivery = await handlers.send_one_time_code(
            uow=self._uow(),
            sender=self._sms,
            request_id=request.request_id,
            mobile=request.mobile,
            code=request.code,
            locale=request.locale,
            valid_minutes=request.valid_minutes,
            now=datetime.now(UTC),
        )
        return notify_pb2.SendOneTimeCodeResponse(delivery_id=str(delivery.id))

    async def ListInbox(
        self, request: notify_pb2.ListInboxRequest, context: Context
    ) -> notify_pb2.ListInboxResponse:
        found = await handlers.list_inbox(uow=self._uow(), caller=caller(), limit=request.limit)
        return notify_pb2.ListInboxResponse(
            messages=[_message(m) for m in found],
            unread=sum(m.read_at is None for m in found),
        )

    async def MarkInboxRead(
        self, request: notify_pb2.MarkInboxReadRequest, context: Context
    ) -> notify_pb2.MarkInboxReadResponse:
        marked = await handlers.mark_read(
            uow=self._uow(),
            caller=caller(),
            message_ids=list(request.message_ids),
            now=datetime.now(UTC),
        )
        return notify_pb2.MarkInboxReadResponse(marked=marked)

    async def PreviewTemplate(
        self, request: notify_pb2.PreviewTemplateRequest, context: Context
    ) -> notify_pb2.PreviewTemplateResponse:
        rendered = handlers.preview(
            caller=caller(),
            kind=request.kind,
            channel=request.channel,
            locale=request.locale,
            applicant_kind=request.applicant_kind,
        )
        return notify_pb2.PreviewTemplateResponse(
            subject=rendered.subject,
            text=rendered.body,
            encoding=rendered.encoding,
            parts=rendered.parts,
        )
