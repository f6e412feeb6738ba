"""Notify's use cases."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from tawasul_platform.errors import InvalidArgument, NotFound, PermissionDenied
from tawasul_platform.i18n import Bilingual
from tawasul_platform.identity import BENEFICIARY_ROLES, Principal, Role
from tawasul_platform.ports import claim_each

from tawasul_notify.app.ports import DELIVERED, ChannelUnavailable, Receipts, Sender, UnitOfWork
from tawasul_notify.domain.model import (
    Audience,
    Channel,
    Delivery,
    InboxMessage,
    Locale,
    Notice,
    Outgoing,
    Recipient,
    RequestAccess,
    SendOutcome,
    Told,
    locale_of,
)
from tawasul_notify.domain.templates import (
    PORTAL_WORDS,
    Kind,
    Rendered,
    channels_for,
    render,
    sample_values,
    variables,
)

log = logging.getLogger(__name__)

# The consumer group that keeps who may read a request's deliveries.
CONSUMER = "notify"
ONE_TIME_CODE_EVENT = "tawasul.tracking.one-time-code"


# Review's status changes short of an outcome, which do not reopen a cancelled request (intake's
# Request.track): one read after a cancellation that stands crossed it, and review withdrew the
# request. Intake's own events (a follow-up, an appeal) come in order with its cancellation and
# never after one that stands.
SHORT_OF_AN_OUTCOME = frozenset(
    {
        Kind.UNDER_REVIEW,
        Kind.NEEDS_MORE_INFO,
        Kind.ANSWER_RECEIVED,
        Kind.REOPENED,
        Kind.TRANSFERRED,
        Kind.MESSAGE,
    }
)
# What tells of a request's cancellation, the beneficiary's or the office's (the person off the
# account's record): one cancellation, told once.
CANCELLED = frozenset({Kind.CANCELLED, Kind.CANCELLED_OFF_RECORD})
# What tells of a request's cancellation, or undoes it: read with what was told before.
_CANCELLING = CANCELLED | {Kind.CANCEL_TOO_LATE} | SHORT_OF_AN_OUTCOME
# Read with what was told before, and recorded: a cancel-too-late restating a rejection tells
# again the last day it may be appealed, which only the rejection carried.
_HELD = _CANCELLING | {Kind.REJECTED}


async def take(
    *,
    uow: UnitOfWork,
    notices: Sequence[Notice],
    now: datetime,
    wake: Callable[[Channel], None],
) -> None:
    """Records every message the notices call for, on every channel, in one transaction, each
    once (an event read again records nothing more). In-app messages are stored and delivered
    with it; the others are left pending for their channel's sender, woken by `wake` once
    they are committed. A status change no later than one its request's beneficiary was told
    of (a dead letter replayed, a late event) is not told: it is no longer true. Nor is a
    cancellation told twice (review restates one a closure overtook), a closure for want of an
    answer once a cancellation made by its deadline is known (the cancellation stands), or a
    change short of an outcome after a cancellation (it crossed it). A cancellation stands
    until review says it came too late (cancel-too-late): then the request goes on, and so
    does what its beneficiary is told. Review says so on its own topic, which may be read
    before intake's: a cancellation read after the cancel-too-late that answered it (made no
    later than the one it answered) is not told, and does not stand. A cancel-too-late asks the
    beneficiary to disregard the message that the request was cancelled only when they were
    told it (in this poll or before), and gives the last day a rejection may be appealed as the
    rejection told it."""
    held = sorted({n.request_id for n in notices if n.sequence or n.kind in _HELD})
    async with uow:
        before = await uow.told.hold(held)
        earliest = _standing(notices, before, now)
        heard = {r: t.cancelled_at for r, t in before.items() if t.cancelled_at}
        answered = {r: t.too_late_at for r, t in before.items() if t.too_late_at}
        appealable: dict[uuid.UUID, date | None] = {
            r: t.appeal_until for r, t in before.items() if t.appeal_until
        }
        fresh: list[Notice] = []
        for notice in notices:
            # Read before _cancellation_told: a cancel-too-late undoes the cancellation heard.
            cancelled_told = notice.request_id in heard
            if _stale(notice, before) or _cancellation_told(notice, heard, answered, earliest, now):
                continue
            fresh.append(_as_told(notice, cancelled_told, appealable))
        latest = {r: before.get(r, Told()).sequence for r in held}
        for notice in notices:
            if notice.request_id in latest:
                latest[notice.request_id] = max(latest[notice.request_id], notice.sequence)
        told = {
            r: Told(s, heard.get(r), answered.get(r), appealable.get(r)) for r, s in latest.items()
        }
        await uow.told.record({r: t for r, t in told.items() if t != before.get(r, Told())})
        await _record(uow, await _in_portal_words(uow, fresh), now, wake)
        await uow.commit()


def _as_told(
    notice: Notice, cancelled_told: bool, appealable: dict[uuid.UUID, date | None]
) -> Notice:
    """The notice as told: a rejection records in `appealable` the last day it may be
    appealed; a cancel-too-late says whether the cancellation it answers was told
    (`cancelled_told`), and the last day the rejection it restates may be appealed, as the
    rejection told it (the restatement does not carry it)."""
    if notice.kind == Kind.REJECTED:
        until = notice.values.get("appeal_until")
        appealable[notice.request_id] = until if isinstance(until, date) else None
    elif notice.kind == Kind.CANCEL_TOO_LATE:
        until = notice.values.get("appeal_until") or appealable.get(notice.request_id)
        return replace(
            notice,
            values={**notice.values, "cancelled_told": cancelled_told, "appeal_until": until},
        )
    return notice


def _standing(
    notices: Sequence[Notice], before: Mapping[uuid.UUID, Told], now: datetime
) -> dict[uuid.UUID, datetime]:
    """The earliest cancellation of each request that stands once the poll is read: told before
    or in the poll, with no cancel-too-late after it or before it that answered it (a closure
    it was made by is not told)."""
    made = {r: [t.cancelled_at] for r, t in before.items() if t.cancelled_at}
    answered = {r: t.too_late_at for r, t in before.items() if t.too_late_at}
    for notice in notices:
        if notice.kind in CANCELLED and not _answered(notice, answered, now):
            made.setdefault(notice.request_id, []).append(notice.cancelled_at or now)
        elif notice.kind == Kind.CANCEL_TOO_LATE and not _outdated(notice, before):
            # It answers the cancellation made at its time: one made after that still stands.
            answers = notice.cancelled_at
            later = [t for t in made.pop(notice.request_id, []) if answers and t > answers]
            if later:
                made[notice.request_id] = later
            _answer(notice, answered)
    return {r: min(times) for r, times in made.items()}


def _answer(too_late: Notice, answered: dict[uuid.UUID, datetime]) -> None:
    """Records the cancellation a cancel-too-late answered, the latest of its request's."""
    if too_late.cancelled_at is not None:
        at = answered.get(too_late.request_id, too_late.cancelled_at)
        answered[too_late.request_id] = max(at, too_late.cancelled_at)


def _answered(cancelled: Notice, answered: Mapping[uuid.UUID, datetime], now: datetime) -> bool:
    """Whether a cancellation is one a cancel-too-late already answered (one made no later:
    review answers each as intake took it, in order), not one made since."""
    made = answered.get(cancelled.request_id)
    return made is not None and (cancelled.cancelled_at or now) <= made


async def _in_portal_words(uow: UnitOfWork, notices: Sequence[Notice]) -> list[Notice]:
    """The notices, each of a kind whose words depend on the portal (templates: PORTAL_WORDS)
    in Muqeem's when an establishment filed its request, as the submission or routing recorded,
    and in Absher's otherwise. The events of a status change do not say who filed it; one read
    before the submission and routing (a poll applies its topics at once, and may hold the
    change first) is told in Absher's words, as when those events did not say either."""
    worded = {n.request_id for n in notices if PORTAL_WORDS in variables(Kind(n.kind))}
    establishments = await uow.access.establishments(sorted(worded))
    return [
        replace(n, values={**n.values, PORTAL_WORDS: n.request_id in establishments})
        if PORTAL_WORDS in variables(Kind(n.kind))
        else n
        for n in notices
    ]


def _outdated(notice: Notice, told: Mapping[uuid.UUID, Told]) -> bool:
    before = told[notice.request_id].sequence if notice.request_id in told else 0
    return 0 < notice.sequence <= before


def _stale(notice: Notice, told: Mapping[uuid.UUID, Told]) -> bool:
    if _outdated(notice, told):
        log.info(
            "not telling request %s's status change %d: %d was told already",
            notice.request_id,
            notice.sequence,
            told[notice.request_id].sequence,
        )
        return True
    return False


def _cancellation_told(
    notice: Notice,
    heard: dict[uuid.UUID, datetime],
    answered: dict[uuid.UUID, datetime],
    earliest: Mapping[uuid.UUID, datetime],
    now: datetime,
) -> bool:
    """Whether the notice says again a cancellation told (`heard`, as it changes through the
    poll's notices: a cancel-too-late undoes it), says one a cancel-too-late told already
    answered (`answered`, likewise), answers a cancellation a later one replaced, says a
    change short of an outcome after a cancellation, or closes a request while a cancellation
    stands (an answer made in time may reopen it, and the cancellation then withdraws it; a
    closure that stands is told by review's cancel-too-late) or that a cancellation made by the
    closure's deadline (`earliest`: the earliest standing, told before or in this poll) keeps
    cancelled."""
    request_id = notice.request_id
    if notice.kind == Kind.CANCEL_TOO_LATE:
        _answer(notice, answered)
        standing = heard.get(request_id)
        if standing is not None and notice.cancelled_at and standing > notice.cancelled_at:
            log.info(
                "not telling request %s's cancel-too-late: a later cancellation stands", request_id
            )
            return True
        heard.pop(request_id, None)
        return False
    if notice.kind in CANCELLED:
        if _answered(notice, answered, now):
            log.info("not telling request %s's cancellation: it came too late, as told", request_id)
            return True
        at = notice.cancelled_at or now
        if request_id in heard and at <= heard[request_id]:
            log.info("not telling request %s's cancellation again", request_id)
            return True
        heard[request_id] = at
        return False
    if notice.kind in SHORT_OF_AN_OUTCOME and request_id in heard:
        log.info(
            "not telling request %s's %s: it crossed the cancellation", request_id, notice.kind
        )
        return True
    if notice.kind == Kind.CLOSED and request_id in heard:
        log.info("not telling request %s's closure: a cancellation stands", request_id)
        return True
    made = earliest.get(request_id)
    if notice.deadline is not None and made is not None and made <= notice.deadline:
        log.info("not telling request %s's closure: cancelled by its deadline", request_id)
        return True
    return False


async def _record(
    uow: UnitOfWork, notices: Sequence[Notice], now: datetime, wake: Callable[[Channel], None]
) -> None:
    intents: dict[uuid.UUID, Delivery] = {}
    for position, notice in enumerate(notices):
        kind = Kind(notice.kind)
        # Each notice a microsecond after the one before it in the poll: a request's messages
        # go out one at a time in the order they were recorded (deliveries.due holds one back
        # while an earlier one waits), and a claim and a decision read in one poll recorded at
        # the same instant went out together, "accepted" then "under review" on the phone.
        recorded = now + timedelta(microseconds=position)
        for channel in channels_for(kind):
            rendered = render(kind, channel, notice.locale, notice.values)
            for recipient in notice.addresses(channel):
                intent = _intent(notice, channel, recipient, rendered, recorded)
                if channel is Channel.INAPP:
                    intent.delivered(recorded)
                # An event published twice may come twice in one poll: one message still.
                intents.setdefault(intent.id, intent)
    fresh = await uow.deliveries.add_all(list(intents.values()))
    await uow.inapp.add_all([InboxMessage.of(d) for d in fresh if d.channel is Channel.INAPP])
    for channel in sorted({d.channel for d in fresh if not d.settled}):
        uow.on_commit(functools.partial(wake, channel))


@dataclass(frozen=True)
class Sent:
    """What one pass of a channel's sender did."""

    # The messages it took from the table.
    tried: int
    # The channel answered none of them and does not work for anyone.
    outage: bool = False
    # When the ones that met the channel unavailable are due again.
    retries: tuple[datetime, ...] = ()


async def send_due(
    *,
    uow: UnitOfWork,
    sender: Sender,
    now: datetime,
    limit: int,
    retry_for: timedelta,
    first_wait: timedelta,
    concurrency: int,
) -> Sent:
    """Sends up to `limit` of the channel's messages that are due, at most `concurrency` at
    once, and records every answer, in one transaction that holds the messages meanwhile
    (another replica's sender skips them; a sender that dies lets them go with its
    connection, and they are sent again under the same key, which the provider takes once).

    A message the channel could not take now waits twice as long each time (up to
    RETRY_WAIT_MOST). It is failed once it has waited `retry_for` since it was recorded, and
    only while the channel works for others: a provider throttling a burst or a mail server
    greylisting takes it within that, and an outage for everyone is waited out however long."""
    async with uow:
        due = await uow.deliveries.due(sender.channel, limit, now)
        if not due:
            return Sent(tried=0)
        slots = asyncio.Semaphore(concurrency)

        async def attempt(delivery: Delivery) -> SendOutcome:
            async with slots:
                return await sender.send(_message(delivery))

        answers = await asyncio.gather(*(attempt(d) for d in due), return_exceptions=True)
        unavailable: list[Delivery] = []
        for delivery, answer in zip(due, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer
                if not isinstance(answer, ChannelUnavailable):
                    log.error("%s delivery %s: %r", delivery.channel, delivery.id, answer)
                delivery.tried(str(answer), now, first_wait=first_wait)
                unavailable.append(delivery)
                continue
            delivery.sent(answer, now)
            if not answer.accepted:
                log.warning("%s delivery %s refused by the channel", delivery.channel, delivery.id)
        # A message the channel answered in this pass shows that it works for others.
        works = len(unavailable) < len(due) or await sender.healthy()
        if works:
            for delivery in (d for d in unavailable if now - d.created_at >= retry_for):
                delivery.fail(f"{delivery.error} after {delivery.attempts} attempts", now)
                log.warning(
                    "%s delivery %s failed after %d attempts",
                    delivery.channel,
                    delivery.id,
                    delivery.attempts,
                )
        await uow.deliveries.save_all(due)
        await uow.commit()
    retries = tuple(d.retry_at for d in unavailable if not d.settled and d.retry_at is not None)
    return Sent(tried=len(due), outage=not works, retries=retries)


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


def _message(delivery: Delivery) -> Outgoing:
    return Outgoing(
        to=delivery.recipient, text=delivery.text, key=str(delivery.id), subject=delivery.subject
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
        await uow.commit()
    return delivery


async def record_access(*, uow: UnitOfWork, accesses: Sequence[tuple[str, RequestAccess]]) -> None:
    """Who may read what was sent about each request, from the events (id and what it says)
    in their order: its applicant and its department, a later one replacing an earlier one,
    except that a submission never replaces routing's department and a routing no later than
    one applied (a dead letter replayed, a late one) is skipped (RequestAccess.then).
    Events applied before change nothing."""
    async with uow:
        latest: dict[uuid.UUID, RequestAccess] = {}
        for access in await claim_each(uow, CONSUMER, accesses):
            known = latest.get(access.request_id)
            if known is not None and known.outdated_by(access):
                _skipped(access, known.sequence)
            latest[access.request_id] = access if known is None else known.then(access)
        # Rows locked in one order: a poll's submitted and routed requests are recorded at
        # once, in two transactions, and in any other order they deadlock.
        for access in await uow.access.record_all(
            sorted(latest.values(), key=lambda a: a.request_id)
        ):
            _skipped(access, None)
        await uow.commit()


def _skipped(access: RequestAccess, applied: int | None) -> None:
    log.warning(
        "skipping routing of request %s to %s: its sequence %d is no later than %s, applied"
        " already",
        access.request_id,
        access.department,
        access.sequence,
        "one" if applied is None else applied,
    )


def request_key(request_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(request_id)
    except ValueError:
        raise InvalidArgument({"request_id": "not a request id"}) from None


async def list_deliveries(*, uow: UnitOfWork, caller: Principal, request_id: str) -> list[Delivery]:
    """What was sent about a request, oldest first: to its applicant, their messages; to a
    reviewer of its department (as review's record of them leaves them), every message.
    Anyone else: not found."""
    key = request_key(request_id)
    async with uow:
        access = await uow.access.get(key)
        if access is None:
            raise NotFound(f"no request {request_id!r}")
        if caller.role is Role.REVIEWER and access.department in caller.departments:
            # Their token names the department; review's record of them may have taken it away.
            record = await uow.staff.get(caller.subject)
            if access.department not in caller.narrowed(record).departments:
                raise NotFound(f"no request {request_id!r}")
            audience = None
        elif caller.is_beneficiary and caller.subject == access.applicant_id:
            audience = Audience.BENEFICIARY
        else:
            raise NotFound(f"no request {request_id!r}")
        return await uow.deliveries.list_for_request(key, audience)


async def list_inbox(*, uow: UnitOfWork, caller: Principal, limit: int) -> list[InboxMessage]:
    """The caller's own in-app messages, newest first."""
    if limit < 0:
        raise InvalidArgument({"limit": "must not be negative"})
    async with uow:
        return await uow.inapp.list_for(
            caller.subject, staff=not caller.is_beneficiary, limit=min(limit or 50, 200)
        )


MAX_MARKED = 200
TOO_MANY_MARKED = Bilingual(
    f"at most {MAX_MARKED} message ids a call", f"{MAX_MARKED} معرّف رسالة على الأكثر في كل طلب"
)
NOT_MESSAGE_IDS = Bilingual("not message ids", "ليست معرّفات رسائل")


async def mark_read(
    *, uow: UnitOfWork, caller: Principal, message_ids: list[str], now: datetime
) -> int:
    """Marks the caller's own in-app messages read, at most MAX_MARKED a call (more are
    refused, not cut short: the caller would take the rest for read); how many of them were
    unread and the caller's."""
    if len(message_ids) > MAX_MARKED:
        raise InvalidArgument({"message_ids": TOO_MANY_MARKED})
    try:
        keys = [uuid.UUID(m) for m in message_ids]
    except ValueError:
        raise InvalidArgument({"message_ids": NOT_MESSAGE_IDS}) from None
    async with uow:
        marked = await uow.inapp.mark_read(
            caller.subject, keys, now, staff=not caller.is_beneficiary
        )
        await uow.commit()
    return marked


async def collect_receipts(
    *, uow: UnitOfWork, receipts: Receipts, now: datetime, interval: timedelta, batch: int = 100
) -> bool:
    """Marks SMS whose receipts came back final, delivered or undelivered (a number switched
    off past the provider's validity period); True while a full batch was looked at.

    Messages are looked at for a day after they were sent, each at most once an `interval`:
    the ones looked at go to the back of the line, so those without a receipt yet do not hold
    up the others, and once all have been looked at the passes rest until the next round.
    The gateway is asked outside a transaction, so another replica's pass may take the same
    messages meanwhile: only those still sent are marked, and each is reported once.
    """
    async with uow:
        waiting = await uow.deliveries.awaiting_receipt(
            batch, sent_after=now - timedelta(days=1), checked_before=now - interval
        )
        if not waiting:
            return False
        await uow.deliveries.checked([d.id for d in waiting], now)
        await uow.commit()
    final = await receipts.settled([d.provider_message_id for d in waiting])
    said = {d.id: final[d.provider_message_id] for d in waiting if d.provider_message_id in final}
    if said:
        async with uow:
            still_sent = await uow.deliveries.still_sent(list(said))
            for delivery in still_sent:
                if said[delivery.id] == DELIVERED:
                    delivery.delivered(now)
                else:
                    delivery.fail(
                        f"not delivered: the SMS provider reported {said[delivery.id]}", now
                    )
            await uow.deliveries.save_all(still_sent)
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

    Not retried: intake does not wait for this answer (it would tell a guesser which details
    match); a beneficiary who receives nothing asks again.
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


def preview(
    *, caller: Principal, kind: str, channel: str, locale: str, applicant_kind: str = ""
) -> Rendered:
    """Any template, rendered with sample data, for the staff who write them: a kind told in
    the portal's words (PORTAL_WORDS) in Muqeem's when `applicant_kind` is an establishment."""
    if caller.role is not Role.REVIEWER:
        raise PermissionDenied("only employees preview templates")
    problems: dict[str, str] = {}
    try:
        which = Kind(kind)
    except ValueError:
        kinds = ", ".join(k.value for k in Kind)
        problems["kind"] = Bilingual(f"one of {kinds}", f"أحد الأنواع: {kinds}")
    try:
        way = Channel(channel)
    except ValueError:
        channels = ", ".join(c.value for c in Channel)
        problems["channel"] = Bilingual(f"one of {channels}", f"إحدى القنوات: {channels}")
    if locale not in {lang.value for lang in Locale}:
        problems["locale"] = Bilingual("ar or en", "ar أو en")
    if applicant_kind and applicant_kind not in BENEFICIARY_ROLES:
        problems["applicant_kind"] = Bilingual(
            "citizen, resident or establishment (empty: an individual)",
            "citizen أو resident أو establishment (فارغ: فرد)",
        )
    if problems:
        raise InvalidArgument(problems)
    if way not in channels_for(which):
        raise InvalidArgument(
            {"channel": Bilingual(f"{which} is not sent by {way}", f"لا يُرسل {which} عبر {way}")}
        )
    values = sample_values(which)
    if PORTAL_WORDS in variables(which):
        values[PORTAL_WORDS] = applicant_kind == Role.ESTABLISHMENT
    return render(which, way, Locale(locale), values)
