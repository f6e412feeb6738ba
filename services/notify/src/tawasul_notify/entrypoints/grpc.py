"""NotifyService over gRPC: translates wire messages to use-case calls and back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from tawasul.notify.v1 import notify_pb2, notify_pb2_grpc
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import caller

from tawasul_notify.app import handlers
from tawasul_notify.app.ports import SmsGateway, UnitOfWork
from tawasul_notify.domain.model import Delivery, DeliveryStatus

Context = grpc.aio.ServicerContext[Any, Any]

STATUS_TO_WIRE = {
    DeliveryStatus.ACCEPTED: notify_pb2.DELIVERY_STATUS_ACCEPTED,
    DeliveryStatus.FAILED: notify_pb2.DELIVERY_STATUS_FAILED,
}


def to_wire(delivery: Delivery) -> notify_pb2.Delivery:
    return notify_pb2.Delivery(
        delivery_id=str(delivery.id),
        request_id=str(delivery.request_id),
        channel=delivery.channel.value,
        recipient=delivery.recipient,
        text=delivery.text,
        status=STATUS_TO_WIRE[delivery.status],
        provider_message_id=delivery.provider_message_id,
        cause_event_type=delivery.cause_event_type,
        created_at=timestamp(delivery.created_at),
    )


class NotifyServicer(notify_pb2_grpc.NotifyServiceServicer):
    def __init__(self, *, uow: Callable[[], UnitOfWork], gateway: SmsGateway, secret: str) -> None:
        self._uow = uow
        self._gateway = gateway
        self._secret = secret

    async def ListDeliveries(
        self, request: notify_pb2.ListDeliveriesRequest, context: Context
    ) -> notify_pb2.ListDeliveriesResponse:
        found = await handlers.list_deliveries(
            uow=self._uow(), caller=caller(context, self._secret), request_id=request.request_id
        )
        return notify_pb2.ListDeliveriesResponse(deliveries=[to_wire(d) for d in found])

    async def SendOneTimeCode(
        self, request: notify_pb2.SendOneTimeCodeRequest, context: Context
    ) -> notify_pb2.SendOneTimeCodeResponse:
        delivery = await handlers.send_one_time_code(
            uow=self._uow(),
            gateway=self._gateway,
            request_id=request.request_id,
            mobile=request.mobile,
            code=request.code,
            locale=request.locale,
            valid_minutes=request.valid_minutes,
            now=datetime.now(UTC),
        )
        return notify_pb2.SendOneTimeCodeResponse(delivery_id=str(delivery.id))
