"""Notify's use cases."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime

from tawasul_platform.errors import InvalidArgument, PermissionDenied
from tawasul_platform.identity import Principal, Role

from tawasul_notify.app.ports import SmsGateway, UnitOfWork
from tawasul_notify.domain.model import (
    Channel,
    Delivery,
    Notice,
    compose_sms,
    delivery_id_for,
    locale_of,
    one_time_code_sms,
    record_one_time_code,
)

log = logging.getLogger(__name__)

CONSUMER = "notify"


async def notify_beneficiary(
    *, uow: UnitOfWork, gateway: SmsGateway, notice: Notice, now: datetime
) -> Delivery | None:
    """Sends the SMS for a request event once and records its delivery; None when skipped.

    At least once: a crash between the gateway's answer and the commit sends the SMS again on
    redelivery, under the same delivery id (the gateway's `reference`). A gateway refusal is
    recorded as a failed delivery; GatewayUnavailable propagates so the consumer retries.
    """
    text = compose_sms(notice)
    if text is None:
        log.info("nothing to tell for %s (%s)", notice.event_id, notice.status)
        return None
    event_id = str(notice.event_id)
    async with uow:
        if await uow.seen_event(CONSUMER, event_id):
            return None
    channel = Channel.SMS
    outcome = await gateway.send(
        to=notice.mobile, text=text, reference=str(delivery_id_for(notice.event_id, channel))
    )
    if not outcome.accepted:
        log.warning("SMS for event %s refused by the gateway: %s", event_id, outcome.detail)
    delivery = Delivery.record(notice=notice, channel=channel, text=text, outcome=outcome, now=now)
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            # A concurrent redelivery recorded it first.
            return None
        await uow.deliveries.add(delivery)
        await uow.commit()
    return delivery


async def list_deliveries(*, uow: UnitOfWork, caller: Principal, request_id: str) -> list[Delivery]:
    """What was sent about a request, oldest first; for employees only."""
    if caller.role != Role.REVIEWER:
        raise PermissionDenied("only employees see deliveries")
    try:
        key = uuid.UUID(request_id)
    except ValueError:
        raise InvalidArgument({"request_id": "not a request id"}) from None
    async with uow:
        return await uow.deliveries.list_for_request(key)


_E164_SAUDI_MOBILE = re.compile(r"^\+9665[0-9]{8}$")
_CODE = re.compile(r"^[0-9]{4,8}$")


async def send_one_time_code(
    *,
    uow: UnitOfWork,
    gateway: SmsGateway,
    request_id: str,
    mobile: str,
    code: str,
    locale: str,
    valid_minutes: int,
    now: datetime,
) -> Delivery:
    """Sends a tracking code; the delivery row keeps the text with the code masked."""
    problems: dict[str, str] = {}
    try:
        request_key = uuid.UUID(request_id[:36])
    except ValueError:
        problems["request_id"] = "not a request id"
    if not _E164_SAUDI_MOBILE.match(mobile):
        problems["mobile"] = "a Saudi mobile number in E.164 form"
    if not _CODE.match(code):
        problems["code"] = "4 to 8 digits"
    if not 1 <= valid_minutes <= 30:
        problems["valid_minutes"] = "from 1 to 30"
    if problems:
        raise InvalidArgument(problems)
    text, masked = one_time_code_sms(code=code, minutes=valid_minutes, locale=locale_of(locale))
    delivery_id = uuid.uuid4()
    outcome = await gateway.send(to=mobile, text=text, reference=str(delivery_id))
    if not outcome.accepted:
        log.warning("tracking code for %s refused by the gateway: %s", request_id, outcome.detail)
    delivery = record_one_time_code(
        delivery_id=delivery_id,
        request_id=request_key,
        mobile=mobile,
        masked_text=masked,
        outcome=outcome,
        now=now,
    )
    async with uow:
        await uow.deliveries.add(delivery)
        await uow.commit()
    return delivery
