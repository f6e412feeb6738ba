"""Notify's use cases on in-memory fakes of its ports: a unit of work whose writes land at
commit, and channels that keep providers' contracts (a repeated idempotency key sends nothing
twice; a refusal is an outcome; an outage is ChannelUnavailable)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Self

import pytest
from asyncpg.exceptions import DeadlockDetectedError, SerializationError
from tawasul_calendar import Locale as CalendarLocale
from tawasul_calendar import format_date
from tawasul_notify.app import handlers
from tawasul_notify.app.ports import ChannelUnavailable
from tawasul_notify.domain.model import (
    Audience,
    Channel,
    Delivery,
    DeliveryStatus,
    InboxMessage,
    Notice,
    Outgoing,
    Recipient,
    RequestAccess,
    SendOutcome,
    Told,
    delivery_id_for,
)
from tawasul_notify.domain.templates import Kind, sample_values
from tawasul_notify.entrypoints.senders import ChannelSender
from tawasul_platform.errors import InvalidArgument, NotFound, PermissionDenied
from tawasul_platform.i18n import in_locale
from tawasul_platform.identity import Principal, Role
from tawasul_platform.testing import FakeInbox, FakeStaffRecords

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# How often the receipts loop runs.
RECEIPTS_EVERY = timedelta(seconds=5)
# How long a message the channel cannot take is tried again.
RETRY_FOR = timedelta(minutes=10)
APPLICANT = "1000000008"
MOBILE = "+966512345678"
OTHER_MOBILE = "+966598765432"
EMAIL = "amal@example.sa"
NUMBER = "TW-1447-000042"
REQUEST = uuid.UUID("6f1c8a3e-2b7d-4c59-9e10-3a4b5c6d7e8f")
CITIZEN = Principal(APPLICANT, Role.CITIZEN)
REVIEWER = Principal("E1001", Role.REVIEWER, frozenset({"residents"}))


# --- fakes of the ports -------------------------------------------------------------------------


class FakeDeliveries:
    def __init__(
        self, rows: dict[uuid.UUID, Delivery], checked_at: dict[uuid.UUID, datetime]
    ) -> None:
        self._rows = rows
        self.pending: dict[uuid.UUID, Delivery] = {}
        # When each was last asked about: a column of the rows, outliving a transaction.
        self.checked_at = checked_at

    async def intend(self, delivery: Delivery) -> Delivery:
        found = self.pending.get(delivery.id) or self._rows.get(delivery.id)
        stored = copy.deepcopy(found or delivery)
        self.pending[stored.id] = stored
        return copy.deepcopy(stored)

    async def add_all(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        fresh = [d for d in deliveries if d.id not in self._rows and d.id not in self.pending]
        for delivery in fresh:
            self.pending[delivery.id] = delivery
        return fresh

    async def due(self, channel: Channel, limit: int, now: datetime) -> list[Delivery]:
        due = [
            copy.deepcopy(d)
            for d in self._rows.values()
            if d.channel is channel
            and d.status is DeliveryStatus.PENDING
            and d.kind != Kind.ONE_TIME_CODE
            and (d.retry_at is None or d.retry_at <= now)
        ]
        return sorted(due, key=lambda d: d.created_at)[:limit]

    async def save(self, delivery: Delivery) -> None:
        self.pending[delivery.id] = delivery

    async def save_all(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            await self.save(delivery)

    async def list_for_request(
        self, request_id: uuid.UUID, audience: Audience | None
    ) -> list[Delivery]:
        found = [
            d
            for d in self._rows.values()
            if d.request_id == request_id and audience in (None, d.audience)
        ]
        return sorted(found, key=lambda d: (d.created_at, d.id))

    async def awaiting_receipt(
        self, limit: int, *, sent_after: datetime, checked_before: datetime
    ) -> list[Delivery]:
        waiting = [
            d
            for d in self._rows.values()
            if d.status is DeliveryStatus.SENT
            and d.channel is Channel.SMS
            and d.updated_at > sent_after
            and self.checked_at.get(d.id, checked_before) <= checked_before
        ]
        return sorted(waiting, key=lambda d: self.checked_at.get(d.id, NOW - timedelta(days=9)))[
            :limit
        ]

    async def still_sent(self, delivery_ids: list[uuid.UUID]) -> list[Delivery]:
        found = (self._rows[key] for key in delivery_ids)
        return [copy.deepcopy(d) for d in found if d.status is DeliveryStatus.SENT]

    async def checked(self, delivery_ids: list[uuid.UUID], at: datetime) -> None:
        for key in delivery_ids:
            self.checked_at[key] = at


def _owned(message: InboxMessage, owner_id: str, staff: bool) -> bool:
    return message.owner_id == owner_id and (message.audience is not Audience.BENEFICIARY) == staff


class FakeInapp:
    def __init__(self) -> None:
        self.messages: dict[uuid.UUID, InboxMessage] = {}

    async def add_all(self, messages: Sequence[InboxMessage]) -> None:
        for message in messages:
            self.messages.setdefault(message.id, message)

    async def list_for(self, owner_id: str, *, staff: bool, limit: int) -> list[InboxMessage]:
        mine = [m for m in self.messages.values() if _owned(m, owner_id, staff)]
        return sorted(mine, key=lambda m: m.created_at, reverse=True)[:limit]

    async def mark_read(
        self, owner_id: str, message_ids: list[uuid.UUID], at: datetime, *, staff: bool
    ) -> int:
        marked = 0
        for key in message_ids:
            message = self.messages.get(key)
            if message and _owned(message, owner_id, staff) and message.read_at is None:
                self.messages[key] = InboxMessage(**{**vars(message), "read_at": at})
                marked += 1
        return marked


class FakeAccess:
    def __init__(self) -> None:
        self.requests: dict[uuid.UUID, RequestAccess] = {}

    async def record_all(self, accesses: Sequence[RequestAccess]) -> list[RequestAccess]:
        assert len({a.request_id for a in accesses}) == len(accesses), "one row each"
        outdated = []
        for a in accesses:
            known = self.requests.get(a.request_id)
            if known is not None and known.outdated_by(a):
                outdated.append(a)
            self.requests[a.request_id] = a if known is None else known.then(a)
        return outdated

    async def get(self, request_id: uuid.UUID) -> RequestAccess | None:
        return self.requests.get(request_id)

    async def establishments(self, request_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return {
            r
            for r in request_ids
            if r in self.requests and self.requests[r].applicant_kind is Role.ESTABLISHMENT
        }


class FakeTold:
    def __init__(self) -> None:
        self.latest: dict[uuid.UUID, Told] = {}
        self.pending: dict[uuid.UUID, Told] = {}

    async def hold(self, request_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Told]:
        return {r: self.latest[r] for r in request_ids if r in self.latest}

    async def record(self, told: Mapping[uuid.UUID, Told]) -> None:
        self.pending.update(told)


class FakeUnitOfWork(FakeInbox):
    """Deliveries and their events land together at commit, then what waited for the commit
    is called; a failing commit lands nothing and calls nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[uuid.UUID, Delivery] = {}
        self.checked_at: dict[uuid.UUID, datetime] = {}
        self.deliveries = FakeDeliveries(self.rows, self.checked_at)
        self.inapp = FakeInapp()
        self.access = FakeAccess()
        self.told = FakeTold()
        self.staff = FakeStaffRecords()
        self.published: list[tuple[DeliveryStatus, Channel, uuid.UUID]] = []
        self.fail_commit: int | None = None
        self.commits = 0
        self._committed: list[Callable[[], None]] = []

    async def __aenter__(self) -> Self:
        self.deliveries = FakeDeliveries(self.rows, self.checked_at)
        self._committed = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deliveries.pending.clear()
        self.told.pending.clear()

    def on_commit(self, callback: Callable[[], None]) -> None:
        self._committed.append(callback)

    async def commit(self) -> None:
        self.commits += 1
        if self.commits == self.fail_commit:
            raise ConnectionError("the database went away")
        for delivery in self.deliveries.pending.values():
            for event in delivery.events:
                d = event.delivery
                self.published.append((d.status, d.channel, d.id))
            delivery.events.clear()
            self.rows[delivery.id] = copy.deepcopy(delivery)
        self.deliveries.pending.clear()
        self.told.latest.update(self.told.pending)
        for callback in self._committed:
            callback()
        self._committed = []

    def delivery(self, channel: Channel, recipient: str, notice: Notice) -> Delivery:
        return self.rows[delivery_id_for(notice.event_id, channel, recipient)]

    def status(self, channel: Channel, recipient: str, notice: Notice) -> DeliveryStatus:
        return self.delivery(channel, recipient, notice).status


class FakeChannel:
    """A provider: a repeated key is answered with the first answer and sends nothing."""

    def __init__(self, channel: Channel = Channel.SMS) -> None:
        self._channel = channel
        self.sent: dict[str, Outgoing] = {}
        self.calls = 0
        self.refused: set[str] = set()
        self.broken_for: set[str] = set()
        self.down = False

    @property
    def channel(self) -> Channel:
        return self._channel

    async def send(self, message: Outgoing) -> SendOutcome:
        self.calls += 1
        if self.down or message.to in self.broken_for:
            raise ChannelUnavailable("503 from the provider")
        if message.to in self.refused:
            return SendOutcome(accepted=False, detail="400: unknown number")
        self.sent.setdefault(message.key, message)
        return SendOutcome(accepted=True, provider_message_id=f"p-{message.key[:8]}")

    async def healthy(self) -> bool:
        return not self.down


class FakeReceipts:
    def __init__(self) -> None:
        self.delivered_ids: set[str] = set()
        self.undelivered_ids: set[str] = set()
        self.asked: list[str] = []

    async def settled(self, provider_message_ids: list[str]) -> dict[str, str]:
        self.asked.extend(provider_message_ids)
        return {
            **dict.fromkeys(self.delivered_ids & set(provider_message_ids), "delivered"),
            **dict.fromkeys(self.undelivered_ids & set(provider_message_ids), "expired"),
        }


def notice(
    kind: Kind = Kind.SUBMITTED,
    *,
    values: Mapping[str, object] | None = None,
    recipients: tuple[Recipient, ...] = (Recipient(MOBILE, EMAIL, APPLICANT),),
    audience: Audience = Audience.BENEFICIARY,
    locale: str = "ar",
    sequence: int = 0,
    cancelled_at: datetime | None = None,
    deadline: datetime | None = None,
) -> Notice:
    return Notice.create(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        kind=kind,
        request_id=str(REQUEST),
        locale=locale,
        recipients=recipients,
        values=values or {"number": NUMBER, "due": date(2026, 3, 10)},
        audience=audience,
        sequence=sequence,
        cancelled_at=cancelled_at,
        deadline=deadline,
    )


async def take(uow: FakeUnitOfWork, *notices: Notice, now: datetime = NOW) -> list[Channel]:
    """Records the notices' messages as the consumer group does; returns the senders woken."""
    woken: list[Channel] = []
    await handlers.take(uow=uow, notices=notices, now=now, wake=woken.append)
    return woken


async def send(
    uow: FakeUnitOfWork,
    sender: FakeChannel,
    *,
    now: datetime = NOW,
    limit: int = 100,
    retry_for: timedelta = RETRY_FOR,
) -> handlers.Sent:
    """One pass of the channel's sender."""
    return await handlers.send_due(
        uow=uow,
        sender=sender,
        now=now,
        limit=limit,
        retry_for=retry_for,
        first_wait=timedelta(seconds=1),
        concurrency=4,
    )


async def collect(
    uow: FakeUnitOfWork, receipts: FakeReceipts, *, now: datetime, batch: int = 100
) -> bool:
    """One pass of the receipts loop."""
    return await handlers.collect_receipts(
        uow=uow, receipts=receipts, now=now, interval=RECEIPTS_EVERY, batch=batch
    )


SMS_ONLY = (Recipient(MOBILE),)


# --- recording, then sending once -----------------------------------------------------------


async def test_a_submission_is_recorded_on_every_channel_then_texted_once() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice()
    assert await take(uow, n) == [Channel.EMAIL, Channel.SMS]
    assert [uow.status(c, r, n) for c, r in ((Channel.SMS, MOBILE), (Channel.EMAIL, EMAIL))] == [
        DeliveryStatus.PENDING
    ] * 2
    (message,) = uow.inapp.messages.values()
    assert (message.owner_id, message.request_id) == (APPLICANT, REQUEST)
    in_app = uow.delivery(Channel.INAPP, APPLICANT, n)
    assert (message.id, in_app.status) == (in_app.id, DeliveryStatus.DELIVERED)
    assert uow.commits == 1

    assert await send(uow, sms) == handlers.Sent(tried=1)
    texted = uow.delivery(Channel.SMS, MOBILE, n)
    (sent,) = sms.sent.values()
    assert (sent.to, sent.key) == (MOBILE, str(texted.id))
    assert NUMBER in sent.text
    assert (texted.status, texted.provider_message_id) == (
        DeliveryStatus.SENT,
        f"p-{str(texted.id)[:8]}",
    )
    assert uow.published == [
        (DeliveryStatus.DELIVERED, Channel.INAPP, in_app.id),
        (DeliveryStatus.SENT, Channel.SMS, texted.id),
    ]
    assert await send(uow, sms) == handlers.Sent(tried=0)
    assert sms.calls == 1


async def test_senders_are_woken_once_the_messages_are_committed_and_never_without() -> None:
    uow = FakeUnitOfWork()
    uow.fail_commit = 1
    with pytest.raises(ConnectionError):
        await take(uow, notice())
    assert uow.rows == {}
    uow.fail_commit = None
    assert await take(uow, notice()) == [Channel.EMAIL, Channel.SMS]


async def test_an_event_read_again_records_and_sends_nothing_more() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice()
    assert await take(uow, n, n) == [Channel.EMAIL, Channel.SMS]  # twice in one poll
    assert await take(uow, n) == []  # and in the next
    await send(uow, sms)
    assert await take(uow, n) == []  # and after it was sent
    await send(uow, sms)
    assert (sms.calls, [m.to for m in sms.sent.values()]) == (1, [MOBILE])
    assert len(uow.inapp.messages) == 1
    assert sorted(p[1] for p in uow.published) == [Channel.INAPP, Channel.SMS]


async def test_a_status_change_older_than_one_told_is_not_told() -> None:
    """A status change replayed from the dead letters, or late, after a later one the
    beneficiary was told of would tell them something no longer true: under review after
    they were asked for a document. Changes of one poll are told in order; one without a
    sequence (published before review stamped them) is told as ever."""
    uow = FakeUnitOfWork()
    asked = {
        "number": NUMBER,
        "note": "",
        "missing": ["passport copy"],
        "respond_by": date(2026, 3, 5),
    }
    under_review, needs_more_info = (
        notice(Kind.UNDER_REVIEW, values={"number": NUMBER}, sequence=1),
        notice(Kind.NEEDS_MORE_INFO, values=asked, sequence=2),
    )
    await take(uow, under_review, needs_more_info)
    told = {(d.kind, d.channel) for d in uow.rows.values()}
    assert (Kind.UNDER_REVIEW.value, Channel.SMS) in told
    assert (Kind.NEEDS_MORE_INFO.value, Channel.SMS) in told

    replayed = notice(Kind.UNDER_REVIEW, values={"number": NUMBER}, sequence=1)
    before = set(uow.rows)
    await take(uow, replayed)
    assert set(uow.rows) == before
    assert not [d for d in uow.rows.values() if d.cause_event_id == replayed.event_id]

    unstamped = notice(Kind.UNDER_REVIEW, values={"number": NUMBER})
    await take(uow, unstamped)
    assert {d.channel for d in uow.rows.values() if d.cause_event_id == unstamped.event_id} == {
        Channel.SMS,
        Channel.EMAIL,
        Channel.INAPP,
    }


# The race of a cancellation made by the information deadline with review's sweep, which
# closed the request at the deadline before the cancellation reached it: intake's
# cancellation, review's closure naming the deadline, and review's restatement of the
# cancellation at the time intake took it.
DEADLINE = NOW - timedelta(minutes=3)
CANCELLED_IN_TIME = DEADLINE - timedelta(seconds=20)


def cancelled(at: datetime = CANCELLED_IN_TIME, sequence: int = 0) -> Notice:
    return notice(Kind.CANCELLED, values={"number": NUMBER}, cancelled_at=at, sequence=sequence)


def closed(deadline: datetime = DEADLINE, sequence: int = 4) -> Notice:
    return notice(
        Kind.CLOSED,
        values={"number": NUMBER, "reason": "—", "note": ""},
        deadline=deadline,
        sequence=sequence,
    )


def sms_kinds(uow: FakeUnitOfWork) -> list[str]:
    """The kinds of the texts recorded, in the order of the polls that recorded them."""
    texts = sorted(
        (d for d in uow.rows.values() if d.channel is Channel.SMS), key=lambda d: d.created_at
    )
    return [d.kind for d in texts]


@pytest.mark.parametrize(
    "polls",
    [
        "intake, closure, restatement",
        "intake + closure + restatement",
        "closure + intake, restatement",
        "restatement, intake + closure",
        "closure + restatement + intake",
    ],
)
async def test_a_cancellation_made_by_the_deadline_is_told_once_and_the_closure_never(
    polls: str,
) -> None:
    """However the three events fall into polls, the beneficiary who cancelled in time hears
    "cancelled" once: not "cancelled, closed, cancelled"."""
    uow = FakeUnitOfWork()
    events = {
        "intake": cancelled(),
        "closure": closed(),
        "restatement": cancelled(sequence=5),
    }
    for minute, poll in enumerate(polls.split(", ")):
        await take(
            uow, *(events[e] for e in poll.split(" + ")), now=NOW + timedelta(minutes=minute)
        )
    assert sms_kinds(uow) == [Kind.CANCELLED.value]


async def test_a_closure_told_before_the_cancellation_is_followed_by_it_once() -> None:
    """The closure reached notify in an earlier poll than the cancellation: it was told, and
    the cancellation that stands is told after it, once."""
    uow = FakeUnitOfWork()
    await take(uow, closed())
    await take(uow, cancelled(), now=NOW + timedelta(minutes=1))
    await take(uow, cancelled(sequence=5), now=NOW + timedelta(minutes=2))
    assert sms_kinds(uow) == [Kind.CLOSED.value, Kind.CANCELLED.value]


async def test_a_cancellation_after_the_deadline_leaves_the_closure_told_as_cancel_too_late() -> (
    None
):
    """Made after the deadline, the cancellation came too late: the closure stands, told by
    review's cancel-too-late restating it. The closure itself, read while the cancellation
    stands, is not told: an answer made in time may yet reopen the request, and the
    cancellation then withdraws it (what intake's tracking shows)."""
    made = DEADLINE + timedelta(seconds=1)
    uow = FakeUnitOfWork()
    await take(uow, cancelled(at=made))
    await take(uow, closed(), now=NOW + timedelta(minutes=1))
    await take(uow, too_late(5, answers=made), now=NOW + timedelta(minutes=2))
    assert sms_kinds(uow) == [Kind.CANCELLED.value, Kind.CANCEL_TOO_LATE.value]


def too_late(sequence: int, *, answers: datetime) -> Notice:
    """Review's cancel-too-late of the cancellation made at `answers` (as intake took it)."""
    return notice(
        Kind.CANCEL_TOO_LATE,
        values=sample_values(Kind.CANCEL_TOO_LATE),
        sequence=sequence,
        cancelled_at=answers,
    )


def change(kind: Kind, sequence: int) -> Notice:
    return notice(kind, values=sample_values(kind), sequence=sequence)


# The last day the sample rejection may be appealed: what was told records it.
APPEAL_UNTIL = date(2026, 12, 16)


@pytest.mark.parametrize("one_poll", [False, True])
async def test_a_closure_after_an_appeal_is_told_though_a_cancellation_came_too_late_before(
    one_poll: bool,
) -> None:
    """Rejected; the beneficiary cancels, too late (told "cancelled", then "not cancelled");
    appeals; is asked for more information; does not answer by the new deadline. Review's
    cancel-too-late undid the cancellation: the closure at that deadline is told."""
    respond_by = NOW + timedelta(days=10)
    made = NOW + timedelta(minutes=5)
    events = [
        change(Kind.REJECTED, 3),
        cancelled(at=made),
        too_late(4, answers=made),
        change(Kind.APPEAL_RECEIVED, 0),
        change(Kind.NEEDS_MORE_INFO, 5),
        closed(deadline=respond_by, sequence=6),
    ]
    uow = FakeUnitOfWork()
    if one_poll:
        await take(uow, *events, now=respond_by)
    else:
        for day, event in enumerate(events):
            await take(uow, event, now=NOW + timedelta(days=day))
    assert sms_kinds(uow) == [
        Kind.REJECTED.value,
        Kind.CANCELLED.value,
        Kind.CANCEL_TOO_LATE.value,
        Kind.APPEAL_RECEIVED.value,
        Kind.NEEDS_MORE_INFO.value,
        Kind.CLOSED.value,
    ]
    assert uow.told.latest[REQUEST] == Told(6, None, made, APPEAL_UNTIL)


async def test_a_cancel_too_late_replayed_does_not_undo_a_later_cancellation() -> None:
    """After the appeal the beneficiary cancels again, in time: a dead letter of the old
    cancel-too-late is stale, and the new cancellation still keeps the closure untold."""
    uow = FakeUnitOfWork()
    first = NOW - timedelta(days=2)
    await take(uow, cancelled(at=first), too_late(4, answers=first), change(Kind.UNDER_REVIEW, 5))
    await take(uow, cancelled(), now=NOW + timedelta(minutes=1))
    await take(uow, too_late(4, answers=first), closed(sequence=6), now=NOW + timedelta(minutes=2))
    assert sms_kinds(uow) == [
        Kind.CANCELLED.value,
        Kind.CANCEL_TOO_LATE.value,
        Kind.UNDER_REVIEW.value,
        Kind.CANCELLED.value,
    ]
    assert uow.told.latest[REQUEST] == Told(6, CANCELLED_IN_TIME, first)


@pytest.mark.parametrize(
    "polls",
    [
        "intake, review",
        "review, intake",
        "intake + review",
        "review + intake",
    ],
)
async def test_a_cancellation_review_said_came_too_late_does_not_stand_whichever_is_read_first(
    polls: str,
) -> None:
    """Rejected; the beneficiary cancels, too late. Review's cancel-too-late, on its own topic,
    may be read before intake's cancellation it answers (at the time intake took it): then the
    beneficiary is not told "cancelled" after "not cancelled", and the request goes on. The
    appeal is asked for more information, which is told; a cancellation made since stands."""
    made = NOW + timedelta(minutes=5)
    uow = FakeUnitOfWork()
    await take(uow, change(Kind.REJECTED, 3), now=NOW)
    events = {"intake": cancelled(at=made), "review": too_late(4, answers=made)}
    for minute, poll in enumerate(polls.split(", "), start=6):
        await take(
            uow, *(events[e] for e in poll.split(" + ")), now=NOW + timedelta(minutes=minute)
        )
    told = [Kind.REJECTED.value, Kind.CANCELLED.value, Kind.CANCEL_TOO_LATE.value]
    assert sms_kinds(uow) == (told if polls.startswith("intake") else told[::2])
    assert uow.told.latest[REQUEST] == Told(4, None, made, APPEAL_UNTIL)

    await take(uow, change(Kind.APPEAL_RECEIVED, 0), now=NOW + timedelta(days=1))
    await take(uow, change(Kind.NEEDS_MORE_INFO, 5), now=NOW + timedelta(days=2))
    assert sms_kinds(uow)[-2:] == [Kind.APPEAL_RECEIVED.value, Kind.NEEDS_MORE_INFO.value]
    assert uow.told.latest[REQUEST] == Told(5, None, made, APPEAL_UNTIL)

    again = NOW + timedelta(days=3)
    await take(uow, cancelled(at=again), now=again)
    await take(uow, change(Kind.UNDER_REVIEW, 6), now=again + timedelta(seconds=1))
    assert sms_kinds(uow)[-1] == Kind.CANCELLED.value
    assert uow.told.latest[REQUEST] == Told(6, again, made, APPEAL_UNTIL)


def restated(sequence: int, *, answers: datetime) -> Notice:
    """Review's cancel-too-late of a rejection, as it comes: without the rejection's last day
    of appeal, nor whether the cancellation was told."""
    values = sample_values(Kind.CANCEL_TOO_LATE) | {"appeal_until": None, "cancelled_told": False}
    return notice(Kind.CANCEL_TOO_LATE, values=values, sequence=sequence, cancelled_at=answers)


def said_too_late(uow: FakeUnitOfWork) -> str:
    (text,) = [
        d.text
        for d in uow.rows.values()
        if d.kind == Kind.CANCEL_TOO_LATE.value and d.channel is Channel.INAPP
    ]
    return text


@pytest.mark.parametrize(
    "polls", ["intake, review", "review, intake", "intake + review", "review + intake"]
)
async def test_a_cancel_too_late_asks_to_disregard_the_cancellation_only_once_it_was_told(
    polls: str,
) -> None:
    """Read after the cancellation it answers, told in an earlier poll or earlier in its own,
    the cancel-too-late asks the beneficiary to disregard it; read before, it does not (the
    cancellation is then never told)."""
    made = NOW + timedelta(minutes=5)
    uow = FakeUnitOfWork()
    events = {"intake": cancelled(at=made), "review": restated(4, answers=made)}
    for minute, poll in enumerate(polls.split(", "), start=6):
        await take(
            uow, *(events[e] for e in poll.split(" + ")), now=NOW + timedelta(minutes=minute)
        )
    told_first = polls.startswith("intake")
    assert (Kind.CANCELLED.value in sms_kinds(uow)) == told_first
    assert ("تجاهل رسالة إلغائه" in said_too_late(uow)) == told_first


@pytest.mark.parametrize("one_poll", [False, True])
async def test_a_cancel_too_late_names_the_last_day_of_appeal_its_rejection_told(
    one_poll: bool,
) -> None:
    """Review's restatement carries no day: the rejection told before it, in an earlier poll
    or its own, gives it."""
    uow = FakeUnitOfWork()
    events = [change(Kind.REJECTED, 3), restated(4, answers=NOW)]
    for poll in [events] if one_poll else [[e] for e in events]:
        await take(uow, *poll)
    assert format_date(APPEAL_UNTIL, CalendarLocale.AR) in said_too_late(uow)
    assert uow.told.latest[REQUEST].appeal_until == APPEAL_UNTIL


async def test_a_cancel_too_late_of_a_rejection_not_known_names_no_day() -> None:
    uow = FakeUnitOfWork()
    await take(uow, restated(4, answers=NOW))
    assert "المدة المتاحة" in said_too_late(uow)


@pytest.mark.parametrize("kind", sorted(handlers.SHORT_OF_AN_OUTCOME))
@pytest.mark.parametrize("one_poll", [False, True])
async def test_a_change_short_of_an_outcome_that_crossed_a_cancellation_is_not_told(
    kind: Kind, one_poll: bool
) -> None:
    """The beneficiary cancels as a reviewer claims, asks, transfers or writes: review
    withdraws the request when the cancellation reaches it, and intake keeps it cancelled.
    Read after the cancellation, the change is not told; an outcome that crossed it is, as
    review's cancel-too-late after it."""
    uow = FakeUnitOfWork()
    crossed = (cancelled(at=NOW), change(kind, 3))
    if one_poll:
        await take(uow, *crossed)
    else:
        for second, event in enumerate(crossed):
            await take(uow, event, now=NOW + timedelta(seconds=second))
    assert sms_kinds(uow) == [Kind.CANCELLED.value]
    await take(
        uow, change(Kind.ACCEPTED, 4), too_late(5, answers=NOW), now=NOW + timedelta(minutes=1)
    )
    assert sms_kinds(uow)[1:] == [Kind.ACCEPTED.value, Kind.CANCEL_TOO_LATE.value]


async def test_a_change_read_before_the_cancellation_is_told_before_it() -> None:
    uow = FakeUnitOfWork()
    await take(uow, change(Kind.UNDER_REVIEW, 3), cancelled(at=NOW))
    assert sms_kinds(uow) == [Kind.UNDER_REVIEW.value, Kind.CANCELLED.value]


async def test_the_oldest_due_messages_go_first_a_batch_at_a_time() -> None:
    uow, sms = FakeUnitOfWork(), FakeChannel()
    numbers = ["+966500000001", "+966500000002", "+966500000003"]
    for minute, mobile in reversed(list(enumerate(numbers))):
        later = NOW + timedelta(minutes=minute)
        await take(uow, notice(recipients=(Recipient(mobile),)), now=later)
    assert await send(uow, sms, limit=2) == handlers.Sent(tried=2)
    assert [m.to for m in sms.sent.values()] == numbers[:2]
    assert await send(uow, sms, limit=2) == handlers.Sent(tried=1)
    assert [m.to for m in sms.sent.values()] == numbers


async def test_a_crash_between_the_gateways_answer_and_the_commit_sends_nothing_twice() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice(recipients=SMS_ONLY)
    await take(uow, n)
    uow.fail_commit = uow.commits + 1  # the pass that records the gateway's answer
    with pytest.raises(ConnectionError):
        await send(uow, sms)
    assert uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.PENDING
    await send(uow, sms)  # the next pass sends it again under the same key
    assert sms.calls == 2
    assert list(sms.sent) == [str(delivery_id_for(n.event_id, Channel.SMS, MOBILE))]
    assert uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.SENT


async def test_a_refused_number_is_recorded_failed_and_never_tried_again() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice(recipients=SMS_ONLY)
    sms.refused.add(MOBILE)
    await take(uow, n)
    assert await send(uow, sms) == handlers.Sent(tried=1)
    failed = uow.delivery(Channel.SMS, MOBILE, n)
    assert (failed.status, failed.error) == (DeliveryStatus.FAILED, "400: unknown number")
    assert uow.published == [(DeliveryStatus.FAILED, Channel.SMS, failed.id)]
    await send(uow, sms)
    assert sms.calls == 1


async def test_an_outage_for_everyone_is_waited_out_past_the_window_each_wait_twice_as_long() -> (
    None
):
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice(recipients=SMS_ONLY)
    sms.down = True
    await take(uow, n)
    now, waits = NOW, []
    for _ in range(5):
        sent = await send(uow, sms, now=now, retry_for=timedelta(seconds=20))
        (retry_at,) = sent.retries
        assert (sent.tried, sent.outage) == (1, True)
        assert (await send(uow, sms, now=retry_at - timedelta(microseconds=1))).tried == 0
        waits.append((retry_at - now).total_seconds())
        now = retry_at
    assert waits == [1, 2, 4, 8, 16]
    assert uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.PENDING
    sms.down = False
    assert await send(uow, sms, now=now, retry_for=timedelta(seconds=20)) == handlers.Sent(tried=1)
    delivery = uow.delivery(Channel.SMS, MOBILE, n)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 5)
    assert len(sms.sent) == 1


async def test_a_recipient_the_channel_keeps_failing_is_failed_past_the_window() -> None:
    uow, sms = FakeUnitOfWork(), FakeChannel()
    mine, other = notice(recipients=SMS_ONLY), notice(recipients=(Recipient(OTHER_MOBILE),))
    sms.broken_for.add(MOBILE)
    await take(uow, mine, other)
    first = await send(uow, sms)
    assert (first.tried, first.outage) == (2, False)  # the other went through
    assert uow.status(Channel.SMS, OTHER_MOBILE, other) is DeliveryStatus.SENT
    now = first.retries[0]
    second = await send(uow, sms, now=now)  # alone: the gateway's health says it works
    assert (second.tried, second.outage) == (1, False)
    assert uow.status(Channel.SMS, MOBILE, mine) is DeliveryStatus.PENDING
    # The window runs from the message's recording (NOW): a second short, it waits again.
    third = await send(uow, sms, now=NOW + RETRY_FOR - timedelta(seconds=1))
    assert uow.status(Channel.SMS, MOBILE, mine) is DeliveryStatus.PENDING
    assert await send(uow, sms, now=third.retries[0]) == handlers.Sent(tried=1)
    failed = uow.delivery(Channel.SMS, MOBILE, mine)
    assert (failed.status, failed.attempts, failed.error) == (
        DeliveryStatus.FAILED,
        4,
        "503 from the provider after 4 attempts",
    )
    assert [m.to for m in sms.sent.values()] == [OTHER_MOBILE]


async def test_a_provider_throttling_or_greylisting_a_while_is_waited_out() -> None:
    # A 429 to part of a burst, a mail server's 451: "later", for minutes, not the
    # recipient's fault. Three tries in four seconds were all these had.
    uow, sms = FakeUnitOfWork(), FakeChannel()
    mine = notice(recipients=SMS_ONLY)
    sms.broken_for.add(MOBILE)
    await take(uow, mine)
    now = NOW
    for _ in range(6):
        sent = await send(uow, sms, now=now)
        assert uow.status(Channel.SMS, MOBILE, mine) is DeliveryStatus.PENDING
        now = sent.retries[0]
    sms.broken_for.clear()
    await send(uow, sms, now=now)
    taken = uow.delivery(Channel.SMS, MOBILE, mine)
    assert (taken.status, taken.attempts) == (DeliveryStatus.SENT, 6)
    assert [m.to for m in sms.sent.values()] == [MOBILE]


async def test_one_failing_supervisor_does_not_stop_the_others() -> None:
    uow, mail = FakeUnitOfWork(), FakeChannel(Channel.EMAIL)
    mail.refused.add("s1@passports.example")
    n = notice(
        Kind.SLA_BREACH,
        values={
            "number": NUMBER,
            "department": "residents",
            "due_at": NOW,
            "assignee": "",
        },
        recipients=(
            Recipient(email="s1@passports.example", account="S1"),
            Recipient(email="s2@passports.example", account="S2"),
        ),
        audience=Audience.SUPERVISOR,
    )
    assert await take(uow, n) == [Channel.EMAIL]
    await send(uow, mail)
    assert [m.to for m in mail.sent.values()] == ["s2@passports.example"]
    assert uow.status(Channel.EMAIL, "s1@passports.example", n) is DeliveryStatus.FAILED
    assert sorted(m.owner_id for m in uow.inapp.messages.values()) == ["S1", "S2"]


async def test_a_channel_a_message_is_not_sent_by_records_nothing_there() -> None:
    uow = FakeUnitOfWork()
    n = notice(
        Kind.SLA_BREACH,
        values={"number": NUMBER, "department": "residents", "due_at": NOW, "assignee": "E1"},
        recipients=(Recipient(mobile=MOBILE, account="S1"),),
        audience=Audience.SUPERVISOR,
    )
    assert await take(uow, n) == []
    assert [d.channel for d in uow.rows.values()] == [Channel.INAPP]


async def test_recipients_without_an_address_on_a_channel_are_skipped_there() -> None:
    uow = FakeUnitOfWork()
    assert await take(uow, notice(recipients=SMS_ONLY)) == [Channel.SMS]
    assert [d.channel for d in uow.rows.values()] == [Channel.SMS]


# --- receipts, the inbox, who reads deliveries -------------------------------------------------


async def test_receipts_mark_sms_delivered() -> None:
    uow, sms, receipts = FakeUnitOfWork(), FakeChannel(), FakeReceipts()
    one, two = notice(recipients=SMS_ONLY), notice(recipients=SMS_ONLY)
    await take(uow, one, two)
    await send(uow, sms)
    first, second = uow.delivery(Channel.SMS, MOBILE, one), uow.delivery(Channel.SMS, MOBILE, two)
    receipts.delivered_ids = {first.provider_message_id}
    later = NOW + timedelta(seconds=5)
    assert not await collect(uow, receipts, now=later)
    assert uow.rows[first.id].status is DeliveryStatus.DELIVERED
    assert uow.rows[second.id].status is DeliveryStatus.SENT
    assert uow.published[-1] == (DeliveryStatus.DELIVERED, Channel.SMS, first.id)


async def test_a_receipt_that_says_undelivered_fails_the_sms() -> None:
    # A phone off past the provider's validity period: the SMS never reached it, and the
    # case history must not keep saying "sent".
    uow, sms, receipts = FakeUnitOfWork(), FakeChannel(), FakeReceipts()
    one = notice(recipients=SMS_ONLY)
    await take(uow, one)
    await send(uow, sms)
    sent = uow.delivery(Channel.SMS, MOBILE, one)
    receipts.undelivered_ids = {sent.provider_message_id}
    assert not await collect(uow, receipts, now=NOW + timedelta(seconds=5))
    failed = uow.rows[sent.id]
    assert (failed.status, failed.error) == (
        DeliveryStatus.FAILED,
        "not delivered: the SMS provider reported expired",
    )
    assert uow.published[-1] == (DeliveryStatus.FAILED, Channel.SMS, sent.id)
    # Settled: not asked about again.
    receipts.asked.clear()
    await collect(uow, receipts, now=NOW + timedelta(minutes=5))
    assert receipts.asked == []


async def test_receipt_passes_rest_once_every_waiting_sms_was_asked_about_this_round() -> None:
    uow, sms, receipts = FakeUnitOfWork(), FakeChannel(), FakeReceipts()
    await take(uow, *(notice(recipients=SMS_ONLY) for _ in range(3)))
    await send(uow, sms)
    later = NOW + timedelta(seconds=5)
    # More than a batch: the loop goes again at once, until each was asked about once.
    passes = [
        await collect(uow, receipts, now=later + timedelta(seconds=n), batch=2) for n in range(3)
    ]
    assert passes == [True, False, False]
    ids = sorted(d.provider_message_id for d in uow.rows.values())
    assert sorted(receipts.asked) == ids
    # The next round asks again.
    assert await collect(uow, receipts, now=later + RECEIPTS_EVERY, batch=2)
    assert len(receipts.asked) == 5


async def test_the_inbox_is_its_owners_and_marking_read_touches_only_theirs() -> None:
    uow = FakeUnitOfWork()
    yours, theirs = notice(), notice(recipients=(Recipient(account="2000000007"),))
    await take(uow, yours, theirs)
    mine = uow.delivery(Channel.INAPP, APPLICANT, yours)
    other = uow.delivery(Channel.INAPP, "2000000007", theirs)
    listed = await handlers.list_inbox(uow=uow, caller=CITIZEN, limit=0)
    assert [m.id for m in listed] == [mine.id]
    marked = await handlers.mark_read(
        uow=uow, caller=CITIZEN, message_ids=[str(mine.id), str(other.id)], now=NOW
    )
    assert marked == 1
    assert uow.inapp.messages[other.id].read_at is None
    with pytest.raises(InvalidArgument):
        await handlers.mark_read(uow=uow, caller=CITIZEN, message_ids=["x"], now=NOW)


async def test_more_message_ids_than_a_call_marks_are_refused_not_cut_short() -> None:
    """Past the 200th, ids were dropped unread and unchecked, and the caller told nothing."""
    uow = FakeUnitOfWork()
    n = notice()
    await take(uow, n)
    mine = str(uow.delivery(Channel.INAPP, APPLICANT, n).id)
    others = [str(uuid.uuid4()) for _ in range(handlers.MAX_MARKED)]
    with pytest.raises(InvalidArgument) as refused:
        await handlers.mark_read(uow=uow, caller=CITIZEN, message_ids=[*others, mine], now=NOW)
    (said,) = refused.value.violations.items()
    assert said == ("message_ids", "at most 200 message ids a call")
    assert in_locale(said[1], "ar") == "200 معرّف رسالة على الأكثر في كل طلب"
    assert all(m.read_at is None for m in uow.inapp.messages.values())
    with pytest.raises(InvalidArgument) as refused:
        await handlers.mark_read(uow=uow, caller=CITIZEN, message_ids=[*others[1:], "x"], now=NOW)
    assert refused.value.violations == {"message_ids": "not message ids"}
    assert in_locale(refused.value.violations["message_ids"], "ar") == "ليست معرّفات رسائل"
    marked = await handlers.mark_read(
        uow=uow, caller=CITIZEN, message_ids=[*others[1:], mine], now=NOW
    )
    assert marked == 1


async def test_a_negative_inbox_limit_is_refused_not_read_as_one() -> None:
    with pytest.raises(InvalidArgument) as refused:
        await handlers.list_inbox(uow=FakeUnitOfWork(), caller=CITIZEN, limit=-5)
    assert refused.value.violations == {"limit": "must not be negative"}


async def test_a_submission_never_replaces_the_department_routing_decided() -> None:
    uow = FakeUnitOfWork()
    submitted = RequestAccess(REQUEST, APPLICANT, "residents")
    routed = RequestAccess(REQUEST, APPLICANT, "visas", routed=True)
    transferred = RequestAccess(REQUEST, APPLICANT, "passports", routed=True)

    await handlers.record_access(uow=uow, accesses=[("e1", routed), ("e2", submitted)])
    assert uow.access.requests[REQUEST] == routed
    await handlers.record_access(uow=uow, accesses=[("e3", submitted)])
    assert uow.access.requests[REQUEST] == routed
    await handlers.record_access(uow=uow, accesses=[("e4", transferred)])
    assert uow.access.requests[REQUEST] == transferred


ASKED = {"number": NUMBER, "note": "", "missing": ["passport copy"], "respond_by": date(2026, 3, 5)}


@pytest.mark.parametrize(
    ("filed_by", "said", "unsaid"),
    [
        # Muqeem's words (SPEC §2: returned to applicant, معاد لمقدم الطلب), as its portal shows.
        (Role.ESTABLISHMENT, "أُعيد طلبك رقم", "بحاجة لإجراءات إضافية"),
        (Role.CITIZEN, "بحاجة لإجراءات إضافية", "أُعيد"),
        (Role.RESIDENT, "بحاجة لإجراءات إضافية", "أُعيد"),
        # The events did not say who filed it.
        (None, "بحاجة لإجراءات إضافية", "أُعيد"),
    ],
)
async def test_a_request_waiting_on_its_beneficiary_is_said_in_their_portals_words(
    filed_by: Role | None, said: str, unsaid: str
) -> None:
    uow = FakeUnitOfWork()
    filed = RequestAccess(REQUEST, APPLICANT, "residents", applicant_kind=filed_by)
    await handlers.record_access(uow=uow, accesses=[("e1", filed)])
    asked = notice(Kind.NEEDS_MORE_INFO, values=ASKED | {"establishment": False}, sequence=1)
    await take(uow, asked)
    texts = [d.text for d in uow.rows.values()] + [d.subject for d in uow.rows.values()]
    assert len(uow.rows) == 3
    assert all(said in t and unsaid not in t for t in texts if t)


async def test_a_status_change_read_before_its_submission_is_said_in_abshers_words() -> None:
    """A poll applies its topics at once: the change may be told before the submission that
    says an establishment filed the request is recorded. Later changes know it."""
    uow = FakeUnitOfWork()
    early = notice(Kind.NEEDS_MORE_INFO, values=ASKED, sequence=1)
    await take(uow, early)
    filed = RequestAccess(REQUEST, APPLICANT, "residents", applicant_kind=Role.ESTABLISHMENT)
    # Routing's event without the kind keeps the submission's.
    routed = RequestAccess(REQUEST, APPLICANT, "visas", routed=True)
    await handlers.record_access(uow=uow, accesses=[("e1", filed), ("e2", routed)])
    assert uow.access.requests[REQUEST].applicant_kind is Role.ESTABLISHMENT
    later = notice(Kind.NEEDS_MORE_INFO, values=ASKED, sequence=3)
    await take(uow, later)
    assert [
        uow.delivery(Channel.INAPP, APPLICANT, n).text.split("،")[0] for n in (early, later)
    ] == [
        f"طلبك رقم \u2066{NUMBER}\u2069 بحاجة لإجراءات إضافية",
        f"أُعيد طلبك رقم \u2066{NUMBER}\u2069 إليك لاستكماله",
    ]


async def test_deliveries_are_read_by_the_applicant_and_their_departments_reviewers() -> None:
    uow, sms = FakeUnitOfWork(), FakeChannel()
    await handlers.record_access(
        uow=uow, accesses=[(str(uuid.uuid4()), RequestAccess(REQUEST, APPLICANT, "residents"))]
    )
    told = notice(recipients=SMS_ONLY)
    await take(uow, told)
    await send(uow, sms)
    to_applicant = uow.delivery(Channel.SMS, MOBILE, told)
    breach = notice(
        Kind.SLA_BREACH,
        values={"number": NUMBER, "department": "residents", "due_at": NOW, "assignee": ""},
        recipients=(Recipient(account="S1"),),
        audience=Audience.SUPERVISOR,
    )
    await take(uow, breach)
    to_supervisor = uow.delivery(Channel.INAPP, "S1", breach)
    for_applicant = await handlers.list_deliveries(uow=uow, caller=CITIZEN, request_id=str(REQUEST))
    assert [d.id for d in for_applicant] == [to_applicant.id]
    for_reviewer = await handlers.list_deliveries(uow=uow, caller=REVIEWER, request_id=str(REQUEST))
    assert {d.id for d in for_reviewer} == {to_applicant.id, to_supervisor.id}
    outsiders = (
        Principal("1000000016", Role.CITIZEN),
        Principal("E2002", Role.REVIEWER, frozenset({"visas"})),
    )
    for outsider in outsiders:
        with pytest.raises(NotFound):
            await handlers.list_deliveries(uow=uow, caller=outsider, request_id=str(REQUEST))
    with pytest.raises(NotFound):
        await handlers.list_deliveries(uow=uow, caller=REVIEWER, request_id=str(uuid.uuid4()))
    with pytest.raises(InvalidArgument):
        await handlers.list_deliveries(uow=uow, caller=REVIEWER, request_id="nope")


# --- a channel's sender, running -------------------------------------------------------------


class HeldChannel(FakeChannel):
    """Holds every send until `release` is set; `sending` is set once one has started."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message: Outgoing) -> SendOutcome:
        self.sending.set()
        await self.release.wait()
        return await super().send(message)


def running(
    uow: FakeUnitOfWork, channel: FakeChannel, *, first_wait: float = 0.05
) -> ChannelSender:
    return ChannelSender(
        lambda: uow,
        channel,
        batch=10,
        retry_for=RETRY_FOR,
        first_wait=timedelta(seconds=0.05),
        concurrency=2,
        sweep_seconds=60.0,
    )


async def until(done: Callable[[], bool]) -> None:
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 5 s")


async def test_a_sender_woken_at_the_commit_sends_and_a_retry_comes_when_due_unwoken() -> None:
    uow, sms = FakeUnitOfWork(), FakeChannel()
    sender = running(uow, sms)
    task = asyncio.create_task(sender.run())
    try:
        n = notice(recipients=SMS_ONLY)
        sms.broken_for.add(MOBILE)
        await handlers.take(
            uow=uow, notices=[n], now=datetime.now(UTC), wake=lambda _: sender.wake()
        )
        await until(lambda: sms.calls == 1)  # the sweep is a minute away: the wake did it
        sms.broken_for.clear()
        await until(lambda: uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.SENT)
        assert (sms.calls, uow.delivery(Channel.SMS, MOBILE, n).attempts) == (2, 1)
    finally:
        task.cancel()


async def test_a_sender_stopped_while_it_sends_finishes_the_pass_and_records_the_answers() -> None:
    uow, sms = FakeUnitOfWork(), HeldChannel()
    sender = running(uow, sms)
    n = notice(recipients=SMS_ONLY)
    await take(uow, n)
    task = asyncio.create_task(sender.run())
    await sms.sending.wait()
    task.cancel()
    await asyncio.sleep(0.01)
    assert not task.done()  # waiting for the gateway's answer, not cut short
    sms.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.SENT


async def test_a_pass_undone_in_a_conflict_is_a_warning_and_tried_again(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL undid the pass's transaction for a concurrent one's sake (another replica's
    # pass, a consumer's batch): not a bug, the next pass goes through.
    sender = running(FakeUnitOfWork(), FakeChannel())
    script = [
        DeadlockDetectedError("deadlock detected"),
        SerializationError("could not serialize access"),
        asyncio.CancelledError(),
    ]
    tried: list[BaseException] = []

    async def send_due() -> handlers.Sent:
        tried.append(script[len(tried)])
        raise tried[-1]

    monkeypatch.setattr(sender, "send_due", send_due)
    with (
        caplog.at_level(logging.WARNING, logger="tawasul_notify.entrypoints.senders"),
        pytest.raises(asyncio.CancelledError),
    ):
        await sender.run()
    assert tried == script
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert all(r.exc_info is None for r in caplog.records)


# --- one-time codes and previews ----------------------------------------------------------------


async def test_a_tracking_code_is_sent_whole_and_recorded_masked() -> None:
    uow, sms = FakeUnitOfWork(), FakeChannel()
    delivery = await handlers.send_one_time_code(
        uow=uow,
        sender=sms,
        request_id=str(REQUEST),
        mobile=MOBILE,
        code="482913",
        locale="en",
        valid_minutes=5,
        now=NOW,
    )
    (message,) = sms.sent.values()
    assert "482913" in message.text
    assert "482913" not in uow.rows[delivery.id].text
    assert "••••••" in uow.rows[delivery.id].text
    assert uow.rows[delivery.id].status is DeliveryStatus.SENT


async def test_a_tracking_code_the_gateway_cannot_take_is_failed_not_left_pending() -> None:
    uow, sms = FakeUnitOfWork(), FakeChannel()
    sms.down = True
    with pytest.raises(ChannelUnavailable):
        await handlers.send_one_time_code(
            uow=uow,
            sender=sms,
            request_id=str(REQUEST),
            mobile=MOBILE,
            code="482913",
            locale="ar",
            valid_minutes=5,
            now=NOW,
        )
    (row,) = uow.rows.values()
    assert row.status is DeliveryStatus.FAILED


async def test_bad_tracking_code_requests_are_refused_field_by_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        await handlers.send_one_time_code(
            uow=FakeUnitOfWork(),
            sender=FakeChannel(),
            request_id="x",
            mobile="0512345678",
            code="12",
            locale="ar",
            valid_minutes=90,
            now=NOW,
        )
    assert set(caught.value.violations) == {"request_id", "mobile", "code", "valid_minutes"}


@pytest.mark.parametrize(
    ("mobile", "code"),
    [
        # `$` would match before a trailing newline; the whole value must be the pattern.
        (MOBILE + "\n", "482913"),
        (MOBILE, "482913\n"),
        (MOBILE, "٤٨٢٩١٣"),
    ],
)
async def test_a_tracking_code_request_is_matched_whole_and_in_ascii_digits(
    mobile: str, code: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await handlers.send_one_time_code(
            uow=FakeUnitOfWork(),
            sender=FakeChannel(),
            request_id=str(REQUEST),
            mobile=mobile,
            code=code,
            locale="ar",
            valid_minutes=5,
            now=NOW,
        )
    assert len(caught.value.violations) == 1


def test_previews_are_for_employees_and_name_what_is_wrong() -> None:
    rendered = handlers.preview(caller=REVIEWER, kind="submitted", channel="sms", locale="en")
    assert rendered.encoding == "gsm-7"
    assert rendered.parts >= 1
    with pytest.raises(PermissionDenied):
        handlers.preview(caller=CITIZEN, kind="submitted", channel="sms", locale="en")
    with pytest.raises(InvalidArgument) as caught:
        handlers.preview(
            caller=REVIEWER, kind="nope", channel="fax", locale="fr", applicant_kind="company"
        )
    assert set(caught.value.violations) == {"kind", "channel", "locale", "applicant_kind"}
    # Each in Arabic too: one in English only would leave the whole refusal so.
    assert all(in_locale(said, "ar") for said in caught.value.violations.values())
    with pytest.raises(InvalidArgument) as caught:
        handlers.preview(caller=REVIEWER, kind="one_time_code", channel="email", locale="ar")
    assert set(caught.value.violations) == {"channel"}
    assert in_locale(caught.value.violations["channel"], "ar") == "لا يُرسل one_time_code عبر email"


@pytest.mark.parametrize("one_poll", [False, True])
async def test_a_cancel_too_late_of_an_earlier_cancellation_leaves_a_later_one_standing(
    one_poll: bool,
) -> None:
    """Rejected; cancelled at T1, too late (review: cancel-too-late for T1); appealed; claimed
    (under review) and cancelled again at T3, which stands (review withdraws; tracking shows
    cancelled). Intake's topic read first (notify lagging: a poll applies both topics in either
    order): review's answer to T1 must not undo T3, nor the claim T3 crossed be told."""
    t1 = NOW + timedelta(minutes=5)
    t3 = NOW + timedelta(days=2)
    intake = [cancelled(at=t1), change(Kind.APPEAL_RECEIVED, 0), cancelled(at=t3)]
    review = [change(Kind.REJECTED, 1), too_late(2, answers=t1), change(Kind.UNDER_REVIEW, 3)]
    uow = FakeUnitOfWork()
    later = t3 + timedelta(minutes=1)
    if one_poll:
        await take(uow, *intake, now=later)
        await take(uow, *review, now=later)
    else:
        for minute, each in enumerate(intake + review):
            await take(uow, each, now=later + timedelta(minutes=minute))
    assert Kind.UNDER_REVIEW.value not in sms_kinds(uow)
    assert uow.told.latest[REQUEST].cancelled_at == t3


async def test_a_closure_an_answer_reopened_is_not_the_last_word_after_a_cancellation() -> None:
    """Asked for information by D: answered at D-30 s, cancelled at D+30 s (intake: the answer
    still open). Review's sweep closes at D+2 min before the answer reaches it, the answer
    reopens the request and the cancellation withdraws it, publishing nothing: tracking shows
    cancelled. Notify reads the cancellation first: its last word is not "closed"."""
    uow = FakeUnitOfWork()
    await take(uow, change(Kind.NEEDS_MORE_INFO, 3), now=NOW - timedelta(days=3))
    await take(uow, cancelled(at=NOW + timedelta(seconds=30)), now=NOW + timedelta(minutes=1))
    await take(
        uow, closed(deadline=NOW, sequence=4), change(Kind.REOPENED, 5), now=NOW + timedelta(2)
    )
    assert sms_kinds(uow) == [Kind.NEEDS_MORE_INFO.value, Kind.CANCELLED.value]


T1 = NOW + timedelta(minutes=5)
T3 = NOW + timedelta(days=2)
D = NOW + timedelta(days=1)
# name: intake's notices, review's, the cancellation standing at the end, the last word.
SCENARIOS: dict[str, tuple[list[Notice], list[Notice], datetime | None, Kind]] = {
    "too late against a rejection": (
        [cancelled(at=T1)],
        [change(Kind.REJECTED, 1), too_late(2, answers=T1)],
        None,
        Kind.CANCEL_TOO_LATE,
    ),
    "too late, appealed, a second cancellation stands": (
        [cancelled(at=T1), change(Kind.APPEAL_RECEIVED, 0), cancelled(at=T3)],
        [change(Kind.REJECTED, 1), too_late(2, answers=T1), change(Kind.UNDER_REVIEW, 3)],
        T3,
        Kind.CANCELLED,
    ),
    "accepted, too late, processed": (
        [cancelled(at=T1)],
        [change(Kind.ACCEPTED, 1), too_late(2, answers=T1), change(Kind.PROCESSED, 3)],
        None,
        Kind.PROCESSED,
    ),
    "a closure overtook a cancellation in time": (
        [cancelled(at=D - timedelta(seconds=30))],
        [
            change(Kind.NEEDS_MORE_INFO, 1),
            closed(deadline=D, sequence=2),
            cancelled(at=D - timedelta(seconds=30)),
        ],
        D - timedelta(seconds=30),
        Kind.CANCELLED,
    ),
    "answered in time, cancelled after the deadline, closed, reopened": (
        [cancelled(at=D + timedelta(seconds=30))],
        [change(Kind.NEEDS_MORE_INFO, 1), closed(deadline=D, sequence=2), change(Kind.REOPENED, 3)],
        D + timedelta(seconds=30),
        Kind.CANCELLED,
    ),
    "a cancellation crossed a claim": (
        [cancelled(at=T1)],
        [change(Kind.UNDER_REVIEW, 1)],
        T1,
        Kind.CANCELLED,
    ),
    "two cancellations, both too late": (
        [cancelled(at=T1), change(Kind.APPEAL_RECEIVED, 0), cancelled(at=T3)],
        [
            change(Kind.REJECTED, 1),
            too_late(2, answers=T1),
            change(Kind.UNDER_REVIEW, 3),
            change(Kind.REJECTED, 4),
            too_late(5, answers=T3),
        ],
        None,
        Kind.CANCEL_TOO_LATE,
    ),
    "too late, appealed, asked, closed": (
        [cancelled(at=T1), change(Kind.APPEAL_RECEIVED, 0)],
        [
            change(Kind.REJECTED, 1),
            too_late(2, answers=T1),
            change(Kind.NEEDS_MORE_INFO, 3),
            closed(deadline=T3, sequence=4),
        ],
        None,
        Kind.CLOSED,
    ),
    "cancelled after the deadline, the closure stands": (
        [cancelled(at=D + timedelta(seconds=30))],
        [
            change(Kind.NEEDS_MORE_INFO, 1),
            closed(deadline=D, sequence=2),
            too_late(3, answers=D + timedelta(seconds=30)),
        ],
        None,
        Kind.CANCEL_TOO_LATE,
    ),
}


def interleavings(intake: list[Notice], review: list[Notice]) -> list[list[tuple[str, Notice]]]:
    """Every order of the two topics' notices that keeps each topic's own order."""
    n = len(intake) + len(review)
    orders = []
    for at in itertools.combinations(range(n), len(intake)):
        from_intake, from_review = iter(intake), iter(review)
        orders.append(
            [
                ("intake", next(from_intake)) if i in at else ("review", next(from_review))
                for i in range(n)
            ]
        )
    return orders


INTERLEAVINGS = [
    (name, k, polls)
    for name, (intake, review, _, _) in SCENARIOS.items()
    for k in range(len(interleavings(intake, review)))
    for polls in ("one at a time", "each topic's run in one poll")
]


@pytest.mark.parametrize(("name", "k", "polls"), INTERLEAVINGS)
async def test_every_order_of_the_two_topics_tells_what_tracking_shows(
    name: str, k: int, polls: str
) -> None:
    """Intake's and review's topics read in every order (notify lagging on either), one
    notice a poll or each topic's run in one: the last word agrees with tracking, the
    cancellation standing is the one that stands, "cancelled" is told once a cancellation,
    and every notice replayed after tells nothing and changes nothing."""
    intake, review, standing, last = SCENARIOS[name]
    order = interleavings(intake, review)[k]
    if polls == "one at a time":
        batches = [[each] for _, each in order]
    else:
        batches = [[each for _, each in run] for _, run in itertools.groupby(order, lambda o: o[0])]
    uow = FakeUnitOfWork()
    later = T3 + timedelta(hours=1)
    for minute, batch in enumerate(batches):
        await take(uow, *batch, now=later + timedelta(minutes=minute))
    kinds = [kind for kind in sms_kinds(uow) if kind != Kind.APPEAL_RECEIVED.value]
    # Review's topic so far behind that its rejection comes after every cancellation: the
    # rejection is told last, and nothing review sends later may undo the standing one.
    late = order[-len(review) :] == [("review", each) for each in review] and name.startswith(
        "too late, appealed, a second"
    )
    assert kinds[-1] in ({last.value, Kind.REJECTED.value} if late else {last.value}), kinds
    told = uow.told.latest[REQUEST]
    assert told.cancelled_at == standing
    made = {each.cancelled_at for each in intake if each.kind == Kind.CANCELLED}
    assert kinds.count(Kind.CANCELLED.value) <= len(made), kinds
    rows = set(uow.rows)
    for minute, (_, each) in enumerate(order):
        await take(uow, each, now=later + timedelta(hours=1, minutes=minute))
    assert set(uow.rows) == rows
    assert uow.told.latest[REQUEST] == told
