"""Notify's use cases."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from tawasul_platform.errors import InvalidArgument, NotFound, PermissionDenied
from tawasul_platform.identity import Principal, Role
from tawasul_platform.ports import claim_each

from tawasul_notify.app.ports import (
    ChannelUnavailable,
    MessageFailed,
    Receipts,
    Sender,
    UnitOfWork,
)
from tawasul_notify.domain.model import (
    Audience,
    Channel,
    Delivery,
    DeliveryStatus,
    InboxMessage,
    Locale,
    Notice,
    Outgoing,
    Recipient,
    RequestAccess,
    SendOutcome,
    locale_of,
)
from tawasul_notify.domain.templates import Kind, Rendered, channels_for, render, sample_values

log = logging.getLogger(__name__)

# The consumer group that keeps who may read a request's deliveries.
CONSUMER = "notify"
ONE_TIME_CODE_EVENT = "tawasul.tracking.one-time-code"


async def notify(
    *,
    uow: UnitOfWork,
    channel: Channel,
    sender: Sender | None,
    notice: Notice,
    now: datetime,
    budget: int,
) -> list[Delivery]:
    """Sends the notice's messages on one channel, at most once each; returns their deliveries.

    In-app messages are stored in the transaction that records them. The others are recorded
    pending first, then sent under their delivery id, then settled. A channel that cannot
    answer raises ChannelUnavailable (waited out) until the message has spent `budget`
    attempts while the channel works for others: then it is failed. Failed messages raise
    MessageFailed once all of the notice's messages are settled.
    """
    kind = Kind(notice.kind)
    if channel not in channels_for(kind):
        return []
    rendered = render(kind, channel, notice.locale, notice.values)
    deliveries, failed = [], []
    for recipient in notice.addresses(channel):
        delivery = await _intend(uow, notice, channel, recipient, rendered, now)
        if not delivery.settled:
            if sender is None:
                raise RuntimeError(f"no sender for {channel}")
            message = _message(delivery, recipient, rendered)
            await _send(uow, sender, delivery, message, now=now, budget=budget)
            if delivery.status is DeliveryStatus.FAILED:
                failed.append(delivery)
        deliveries.append(delivery)
    if failed:
        # Ids only: the errors quote gateway replies, which may name the recipient, and this
        # message reaches the logs and the dead-letter headers. The rows keep the errors.
        raise MessageFailed(
            f"{channel} deliveries {', '.join(str(d.id) for d in failed)} of event "
            f"{notice.event_id} failed"
        )
    return deliveries


async def notify_many(
    *,
    uow: UnitOfWork,
    channel: Channel,
    sender: Sender,
    notices: Sequence[Notice],
    now: datetime,
    concurrency: int,
) -> None:
    """`notify`'s way for a poll of notices on a channel that sends: every intent recorded in
    one transaction, the messages sent at once (at most `concurrency`), every answer settled in
    one transaction. A message the channel did not take raises once the others are settled;
    the caller then goes through `notify` notice by notice, which skips what is settled,
    sends what is still pending under the same key, and counts the attempts."""
    intents = _intents(notices, channel, now)
    async with uow:
        stored = await uow.deliveries.intend_all([intent for intent, _ in intents.values()])
        await uow.commit()
    planned = [
        (delivery, message)
        for delivery, (_, message) in zip(stored, intents.values(), strict=True)
        if not delivery.settled
    ]
    slots = asyncio.Semaphore(concurrency)

    async def attempt(message: Outgoing) -> SendOutcome:
        async with slots:
            return await sender.send(message)

    answers = await asyncio.gather(*(attempt(m) for _, m in planned), return_exceptions=True)
    untaken: BaseException | None = None
    settled = []
    for (delivery, _), answer in zip(planned, answers, strict=True):
        if isinstance(answer, BaseException):
            untaken = untaken or answer
            continue
        delivery.sent(answer, now)
        if not answer.accepted:
            log.warning("%s delivery %s refused by the channel", delivery.channel, delivery.id)
        settled.append(delivery)
    async with uow:
        await uow.deliveries.save_all(settled)
        await uow.commit()
    if untaken is not None:
        raise untaken


async def store_many(*, uow: UnitOfWork, notices: Sequence[Notice], now: datetime) -> None:
    """`notify`'s way for a poll of notices in-app: the messages stored with their deliveries,
    all in one transaction."""
    intents = _intents(notices, Channel.INAPP, now)
    async with uow:
        stored = await uow.deliveries.intend_all([intent for intent, _ in intents.values()])
        fresh = [delivery for delivery in stored if not delivery.settled]
        await uow.inapp.add_all([InboxMessage.of(delivery) for delivery in fresh])
        for delivery in fresh:
            delivery.delivered(now)
        await uow.deliveries.save_all(fresh)
        await uow.commit()


def _intents(
    notices: Sequence[Notice], channel: Channel, now: datetime
) -> dict[uuid.UUID, tuple[Delivery, Outgoing]]:
    """The deliveries the notices call for on the channel, and their messages, by id."""
    intents: dict[uuid.UUID, tuple[Delivery, Outgoing]] = {}
    for notice in notices:
        kind = Kind(notice.kind)
        if channel not in channels_for(kind):
            continue
        rendered = render(kind, channel, notice.locale, notice.values)
        for recipient in notice.addresses(channel):
            intent = _intent(notice, channel, recipient, rendered, now)
            # An event published twice may come twice in one poll: one message still.
            intents[intent.id] = (intent, _message(intent, recipient, rendered))
    return intents


def _intent(
    notice: Notice, channel: Channel, recipient: str, rendered: Rendered, now: datetime
) -> Delivery:
    return Delivery.intend(
        notice=notice,
        channel=channel,
        recipient=recipient,
        subject=rendered.subject,
        text=rendered.body,
        parts=rendered.parts,
        now=now,
    )


def _message(delivery: Delivery, recipient: str, rendered: Rendered) -> Outgoing:
    return Outgoing(
        to=recipient, text=rendered.body, key=str(delivery.id), subject=rendered.subject
    )


async def _intend(
    uow: UnitOfWork,
    notice: Notice,
    channel: Channel,
    recipient: str,
    rendered: Rendered,
    now: datetime,
) -> Delivery:
    async with uow:
        delivery = await uow.deliveries.intend(_intent(notice, channel, recipient, rendered, now))
        if channel is Channel.INAPP and not delivery.settled:
            await uow.inapp.add_all([InboxMessage.of(delivery)])
            delivery.delivered(now)
            await uow.deliveries.save(delivery)
        await uow.commit()
    return delivery


async def _send(
    uow: UnitOfWork,
    sender: Sender,
    delivery: Delivery,
    message: Outgoing,
    *,
    now: datetime,
    budget: int,
) -> None:
    try:
        outcome = await sender.send(message)
    except ChannelUnavailable as exc:
        delivery.tried(str(exc), now)
        spent = delivery.attempts >= budget and await sender.healthy()
        if spent:
            delivery.fail(f"{exc} after {delivery.attempts} attempts", now)
        async with uow:
            await uow.deliveries.save(delivery)
            await uow.commit()
        if not spent:
            raise
        log.warning(
            "%s delivery %s failed after %d attempts",
            delivery.channel,
            delivery.id,
            delivery.attempts,
        )
        return
    delivery.sent(outcome, now)
    if not outcome.accepted:
        log.warning("%s delivery %s refused by the channel", delivery.channel, delivery.id)
    async with uow:
        await uow.deliveries.save(delivery)
        await uow.commit()


async def record_access(*, uow: UnitOfWork, accesses: Sequence[tuple[str, RequestAccess]]) -> None:
    """Who may read what was sent about each request, from the events (id and what it says)
    in their order: its applicant and its department, a later one replacing an earlier one.
    Events applied before change nothing."""
    async with uow:
        latest = {a.request_id: a for a in await claim_each(uow, CONSUMER, accesses)}
        await uow.access.record_all(list(latest.values()))
        await uow.commit()


def request_key(request_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(request_id)
    except ValueError:
        raise InvalidArgument({"request_id": "not a request id"}) from None


async def list_deliveries(*, uow: UnitOfWork, caller: Principal, request_id: str) -> list[Delivery]:
    """What was sent about a request, oldest first: to its applicant, their messages; to a
    reviewer of its department, every message. Anyone else: not found."""
    key = request_key(request_id)
    async with uow:
        access = await uow.access.get(key)
        if access is None:
            raise NotFound(f"no request {request_id!r}")
        if caller.role is Role.REVIEWER and access.department in caller.departments:
            audience = None
        elif caller.is_beneficiary and caller.subject == access.applicant_id:
            audience = Audience.BENEFICIARY
        else:
            raise NotFound(f"no request {request_id!r}")
        return await uow.deliveries.list_for_request(key, audience)


async def list_inbox(*, uow: UnitOfWork, caller: Principal, limit: int) -> list[InboxMessage]:
    """The caller's own in-app messages, newest first."""
    async with uow:
        return await uow.inapp.list_for(caller.subject, limit=max(1, min(limit or 50, 200)))


async def mark_read(
    *, uow: UnitOfWork, caller: Principal, message_ids: list[str], now: datetime
) -> int:
    try:
        keys = [uuid.UUID(m) for m in message_ids[:200]]
    except ValueError:
        raise InvalidArgument({"message_ids": "not message ids"}) from None
    async with uow:
        marked = await uow.inapp.mark_read(caller.subject, keys, now)
        await uow.commit()
    return marked


async def collect_receipts(
    *, uow: UnitOfWork, receipts: Receipts, now: datetime, batch: int = 100
) -> bool:
    """Marks SMS whose receipts came back delivered; True while a full batch was looked at.

    Messages are looked at for a day after they were sent; the ones looked at go to the back
    of the line, so those without a receipt yet do not hold up the others.
    """
    async with uow:
        waiting = await uow.deliveries.awaiting_receipt(batch, sent_after=now - timedelta(days=1))
        if not waiting:
            return False
        await uow.deliveries.checked([d.id for d in waiting], now)
        await uow.commit()
    delivered = await receipts.delivered([d.provider_message_id for d in waiting])
    arrived = [d for d in waiting if d.provider_message_id in delivered]
    if arrived:
        async with uow:
            for delivery in arrived:
                delivery.delivered(now)
            await uow.deliveries.save_all(arrived)
            await uow.commit()
    return len(waiting) == batch


_E164_SAUDI_MOBILE = re.compile(r"\+9665[0-9]{8}")
_CODE = re.compile(r"[0-9]{4,8}")


async def send_one_time_code(
    *,
    uow: UnitOfWork,
    sender: Sender,
    request_id: str,
    mobile: str,
    code: str,
    locale: str,
    valid_minutes: int,
    now: datetime,
) -> Delivery:
    """Sends a tracking code now; the delivery row keeps the text with the code masked.

    Not retried: the caller (intake) answers UNAVAILABLE and the beneficiary asks again.
    """
    problems: dict[str, str] = {}
    try:
        request_key = uuid.UUID(request_id[:36])
    except ValueError:
        problems["request_id"] = "not a request id"
    if not _E164_SAUDI_MOBILE.fullmatch(mobile):
        problems["mobile"] = "a Saudi mobile number in E.164 form"
    if not _CODE.fullmatch(code):
        problems["code"] = "4 to 8 digits"
    if not 1 <= valid_minutes <= 30:
        problems["valid_minutes"] = "from 1 to 30"
    if problems:
        raise InvalidArgument(problems)
    language = locale_of(locale)
    kind = Kind.ONE_TIME_CODE
    rendered = render(kind, Channel.SMS, language, {"code": code, "minutes": valid_minutes})
    masked = render(
        kind, Channel.SMS, language, {"code": "•" * len(code), "minutes": valid_minutes}
    )
    notice = Notice(
        event_id=uuid.uuid4(),
        event_type=ONE_TIME_CODE_EVENT,
        kind=kind.value,
        request_id=request_key,
        locale=language,
        audience=Audience.BENEFICIARY,
        recipients=(Recipient(mobile=mobile),),
        values={},
    )
    delivery = await _intend(uow, notice, Channel.SMS, mobile, masked, now)
    try:
        outcome = await sender.send(Outgoing(to=mobile, text=rendered.body, key=str(delivery.id)))
    except ChannelUnavailable as exc:
        delivery.fail(str(exc), now)
        async with uow:
            await uow.deliveries.save(delivery)
            await uow.commit()
        raise
    delivery.sent(outcome, now)
    async with uow:
        await uow.deliveries.save(delivery)
        await uow.commit()
    return delivery


def preview(*, caller: Principal, kind: str, channel: str, locale: str) -> Rendered:
    """Any template, rendered with sample data, for the staff who write them."""
    if caller.role is not Role.REVIEWER:
        raise PermissionDenied("only employees preview templates")
    problems: dict[str, str] = {}
    try:
        which = Kind(kind)
    except ValueError:
        problems["kind"] = f"one of {', '.join(k.value for k in Kind)}"
    try:
        way = Channel(channel)
    except ValueError:
        problems["channel"] = f"one of {', '.join(c.value for c in Channel)}"
    if locale not in {lang.value for lang in Locale}:
        problems["locale"] = "ar or en"
    if problems:
        raise InvalidArgument(problems)
    if way not in channels_for(which):
        raise InvalidArgument({"channel": f"{which} is not sent by {way}"})
    return render(which, way, Locale(locale), sample_values(which))
