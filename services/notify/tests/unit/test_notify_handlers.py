"""Notify's use cases on in-memory fakes of its ports: a unit of work whose writes land at
commit, and channels that keep providers' contracts (a repeated idempotency key sends nothing
twice; a refusal is an outcome; an outage is ChannelUnavailable)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Self

import pytest
from tawasul_notify.app import handlers
from tawasul_notify.app.ports import ChannelUnavailable, MessageFailed
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
    delivery_id_for,
)
from tawasul_notify.domain.templates import Kind
from tawasul_platform.errors import InvalidArgument, NotFound, PermissionDenied
from tawasul_platform.identity import Principal, Role
from tawasul_platform.testing import FakeInbox

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
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

    async def intend_all(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        return [await self.intend(d) for d in deliveries]

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

    async def awaiting_receipt(self, limit: int, *, sent_after: datetime) -> list[Delivery]:
        waiting = [
            d
            for d in self._rows.values()
            if d.status is DeliveryStatus.SENT
            and d.channel is Channel.SMS
            and d.updated_at > sent_after
        ]
        return sorted(waiting, key=lambda d: self.checked_at.get(d.id, NOW - timedelta(days=9)))[
            :limit
        ]

    async def checked(self, delivery_ids: list[uuid.UUID], at: datetime) -> None:
        for key in delivery_ids:
            self.checked_at[key] = at


class FakeInapp:
    def __init__(self) -> None:
        self.messages: dict[uuid.UUID, InboxMessage] = {}

    async def add_all(self, messages: Sequence[InboxMessage]) -> None:
        for message in messages:
            self.messages.setdefault(message.id, message)

    async def list_for(self, owner_id: str, *, limit: int) -> list[InboxMessage]:
        mine = [m for m in self.messages.values() if m.owner_id == owner_id]
        return sorted(mine, key=lambda m: m.created_at, reverse=True)[:limit]

    async def mark_read(self, owner_id: str, message_ids: list[uuid.UUID], at: datetime) -> int:
        marked = 0
        for key in message_ids:
            message = self.messages.get(key)
            if message and message.owner_id == owner_id and message.read_at is None:
                self.messages[key] = InboxMessage(**{**vars(message), "read_at": at})
                marked += 1
        return marked


class FakeAccess:
    def __init__(self) -> None:
        self.requests: dict[uuid.UUID, RequestAccess] = {}

    async def record_all(self, accesses: Sequence[RequestAccess]) -> None:
        assert len({a.request_id for a in accesses}) == len(accesses), "one row each"
        self.requests.update((a.request_id, a) for a in accesses)

    async def get(self, request_id: uuid.UUID) -> RequestAccess | None:
        return self.requests.get(request_id)


class FakeUnitOfWork(FakeInbox):
    """Deliveries and their events land together at commit; a failing commit lands nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[uuid.UUID, Delivery] = {}
        self.checked_at: dict[uuid.UUID, datetime] = {}
        self.deliveries = FakeDeliveries(self.rows, self.checked_at)
        self.inapp = FakeInapp()
        self.access = FakeAccess()
        self.published: list[tuple[DeliveryStatus, Channel, uuid.UUID]] = []
        self.fail_commit: int | None = None
        self.commits = 0

    async def __aenter__(self) -> Self:
        self.deliveries = FakeDeliveries(self.rows, self.checked_at)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deliveries.pending.clear()

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

    def status(self, channel: Channel, recipient: str, notice: Notice) -> DeliveryStatus:
        return self.rows[delivery_id_for(notice.event_id, channel, recipient)].status


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

    async def delivered(self, provider_message_ids: list[str]) -> set[str]:
        return self.delivered_ids & set(provider_message_ids)


def notice(
    kind: Kind = Kind.SUBMITTED,
    *,
    values: Mapping[str, object] | None = None,
    recipients: tuple[Recipient, ...] = (Recipient(MOBILE, EMAIL, APPLICANT),),
    audience: Audience = Audience.BENEFICIARY,
    locale: str = "ar",
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
    )


async def tell(
    uow: FakeUnitOfWork, sender: FakeChannel | None, n: Notice, channel: Channel = Channel.SMS
) -> list[Delivery]:
    return await handlers.notify(
        uow=uow, channel=channel, sender=sender, notice=n, now=NOW, budget=3
    )


# --- sending, once --------------------------------------------------------------------------------


async def test_a_submission_is_texted_once_and_its_result_published() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice()
    (delivery,) = await tell(uow, sms, n)
    (message,) = sms.sent.values()
    assert (message.to, message.key) == (MOBILE, str(delivery.id))
    assert NUMBER in message.text
    assert delivery.status is DeliveryStatus.SENT
    assert delivery.provider_message_id == f"p-{str(delivery.id)[:8]}"
    assert uow.published == [(DeliveryStatus.SENT, Channel.SMS, delivery.id)]


async def test_a_batch_records_every_intent_sends_them_all_then_settles_them_at_once() -> None:
    uow, sms = FakeUnitOfWork(), FakeChannel()
    batch = [notice(), notice(recipients=(Recipient(OTHER_MOBILE),)), notice()]
    await handlers.notify_many(
        uow=uow, channel=Channel.SMS, sender=sms, notices=batch, now=NOW, concurrency=2
    )
    assert sorted(m.to for m in sms.sent.values()) == sorted([MOBILE, OTHER_MOBILE, MOBILE])
    assert [
        uow.status(Channel.SMS, r, n)
        for n, r in zip(batch, [MOBILE, OTHER_MOBILE, MOBILE], strict=True)
    ] == [DeliveryStatus.SENT] * 3
    assert uow.commits == 2  # the intents, then the answers
    await handlers.notify_many(
        uow=uow, channel=Channel.SMS, sender=sms, notices=batch, now=NOW, concurrency=2
    )
    assert sms.calls == 3  # redelivered: nothing more sent


async def test_a_poll_in_app_stores_each_message_once_with_its_delivery() -> None:
    uow = FakeUnitOfWork()
    mine, again = notice(), notice()
    await handlers.store_many(uow=uow, notices=[mine, again, mine], now=NOW)
    await handlers.store_many(uow=uow, notices=[again], now=NOW)
    assert sorted(m.request_id for m in uow.inapp.messages.values()) == [REQUEST, REQUEST]
    assert [uow.status(Channel.INAPP, APPLICANT, n) for n in (mine, again)] == [
        DeliveryStatus.DELIVERED
    ] * 2
    assert uow.published == [
        (DeliveryStatus.DELIVERED, Channel.INAPP, d) for d in uow.inapp.messages
    ]
    assert uow.commits == 2


async def test_an_event_twice_in_one_poll_is_texted_once() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice()
    await handlers.notify_many(
        uow=uow, channel=Channel.SMS, sender=sms, notices=[n, n], now=NOW, concurrency=2
    )
    assert (sms.calls, [m.to for m in sms.sent.values()]) == (1, [MOBILE])
    assert uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.SENT


async def test_a_message_the_batch_could_not_send_is_left_to_the_one_by_one_way() -> None:
    uow, sms = FakeUnitOfWork(), FakeChannel()
    mine, theirs = notice(), notice(recipients=(Recipient(OTHER_MOBILE),))
    sms.broken_for = {OTHER_MOBILE}
    with pytest.raises(ChannelUnavailable):
        await handlers.notify_many(
            uow=uow, channel=Channel.SMS, sender=sms, notices=[mine, theirs], now=NOW, concurrency=4
        )
    assert uow.status(Channel.SMS, MOBILE, mine) is DeliveryStatus.SENT
    assert uow.status(Channel.SMS, OTHER_MOBILE, theirs) is DeliveryStatus.PENDING
    sms.broken_for = set()
    for n in (mine, theirs):
        await tell(uow, sms, n)
    assert sorted(m.to for m in sms.sent.values()) == [MOBILE, OTHER_MOBILE]
    assert sms.calls == 3  # the broken attempt, then each number once


async def test_a_redelivered_event_sends_nothing_more() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice()
    await tell(uow, sms, n)
    await tell(uow, sms, n)
    assert sms.calls == 1
    assert len(uow.published) == 1


async def test_a_crash_between_the_gateways_answer_and_the_commit_sends_nothing_twice() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice()
    uow.fail_commit = 2  # the first records the intent; the second would record the answer
    with pytest.raises(ConnectionError):
        await tell(uow, sms, n)
    assert uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.PENDING
    await tell(uow, sms, n)  # redelivered: sent again under the same key
    assert sms.calls == 2
    assert list(sms.sent) == [str(delivery_id_for(n.event_id, Channel.SMS, MOBILE))]
    assert uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.SENT


async def test_a_refused_number_is_recorded_failed_and_dead_lettered() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice()
    sms.refused.add(MOBILE)
    with pytest.raises(MessageFailed) as caught:
        await tell(uow, sms, n)
    assert str(caught.value) == (
        f"sms deliveries {delivery_id_for(n.event_id, Channel.SMS, MOBILE)} of event "
        f"{n.event_id} failed"
    )
    assert uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.FAILED
    assert uow.rows[delivery_id_for(n.event_id, Channel.SMS, MOBILE)].error == (
        "400: unknown number"
    )
    assert [p[0] for p in uow.published] == [DeliveryStatus.FAILED]
    await tell(uow, sms, n)  # a replay finds it settled: no second attempt, no second failure
    assert sms.calls == 1


async def test_an_outage_for_everyone_is_waited_out_past_the_budget() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice()
    sms.down = True
    for _ in range(5):
        with pytest.raises(ChannelUnavailable):
            await tell(uow, sms, n)
    assert uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.PENDING
    sms.down = False
    (delivery,) = await tell(uow, sms, n)
    assert delivery.status is DeliveryStatus.SENT
    assert delivery.attempts == 5
    assert len(sms.sent) == 1


async def test_repeated_errors_for_one_recipient_spend_its_budget_then_fail() -> None:
    uow, sms, n = FakeUnitOfWork(), FakeChannel(), notice()
    sms.broken_for.add(MOBILE)
    for _ in range(2):
        with pytest.raises(ChannelUnavailable):
            await tell(uow, sms, n)
    with pytest.raises(MessageFailed):
        await tell(uow, sms, n)
    assert uow.status(Channel.SMS, MOBILE, n) is DeliveryStatus.FAILED
    failed = uow.rows[delivery_id_for(n.event_id, Channel.SMS, MOBILE)]
    assert (failed.attempts, failed.error) == (3, "503 from the provider after 3 attempts")
    other = notice(recipients=(Recipient(OTHER_MOBILE),))
    (delivery,) = await tell(uow, sms, other)
    assert delivery.status is DeliveryStatus.SENT


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
    with pytest.raises(MessageFailed):
        await tell(uow, mail, n, Channel.EMAIL)
    assert [m.to for m in mail.sent.values()] == ["s2@passports.example"]
    assert uow.status(Channel.EMAIL, "s1@passports.example", n) is DeliveryStatus.FAILED


async def test_in_app_messages_land_in_the_inbox_once() -> None:
    uow, n = FakeUnitOfWork(), notice()
    (delivery,) = await tell(uow, None, n, Channel.INAPP)
    await tell(uow, None, n, Channel.INAPP)
    (message,) = uow.inapp.messages.values()
    assert (message.owner_id, message.id, message.request_id) == (APPLICANT, delivery.id, REQUEST)
    assert NUMBER in message.text
    assert delivery.status is DeliveryStatus.DELIVERED
    assert uow.published == [(DeliveryStatus.DELIVERED, Channel.INAPP, delivery.id)]


async def test_a_channel_a_message_is_not_sent_by_sends_nothing() -> None:
    uow, sms = FakeUnitOfWork(), FakeChannel()
    n = notice(
        Kind.SLA_BREACH,
        values={"number": NUMBER, "department": "residents", "due_at": NOW, "assignee": "E1"},
        recipients=(Recipient(mobile=MOBILE, account="S1"),),
        audience=Audience.SUPERVISOR,
    )
    assert await tell(uow, sms, n) == []
    assert sms.calls == 0


async def test_recipients_without_an_address_on_the_channel_are_skipped() -> None:
    uow, mail = FakeUnitOfWork(), FakeChannel(Channel.EMAIL)
    assert await tell(uow, mail, notice(recipients=(Recipient(MOBILE),)), Channel.EMAIL) == []
    assert uow.rows == {}


# --- receipts, the inbox, who reads deliveries -------------------------------------------------


async def test_receipts_mark_sms_delivered() -> None:
    uow, sms, receipts = FakeUnitOfWork(), FakeChannel(), FakeReceipts()
    (first,) = await tell(uow, sms, notice())
    (second,) = await tell(uow, sms, notice())
    receipts.delivered_ids = {first.provider_message_id}
    later = NOW + timedelta(seconds=5)
    assert not await handlers.collect_receipts(uow=uow, receipts=receipts, now=later)
    assert uow.rows[first.id].status is DeliveryStatus.DELIVERED
    assert uow.rows[second.id].status is DeliveryStatus.SENT
    assert uow.published[-1] == (DeliveryStatus.DELIVERED, Channel.SMS, first.id)


async def test_the_inbox_is_its_owners_and_marking_read_touches_only_theirs() -> None:
    uow = FakeUnitOfWork()
    (mine,) = await tell(uow, None, notice(), Channel.INAPP)
    theirs = notice(recipients=(Recipient(account="2000000007"),))
    (other,) = await tell(uow, None, theirs, Channel.INAPP)
    listed = await handlers.list_inbox(uow=uow, caller=CITIZEN, limit=0)
    assert [m.id for m in listed] == [mine.id]
    marked = await handlers.mark_read(
        uow=uow, caller=CITIZEN, message_ids=[str(mine.id), str(other.id)], now=NOW
    )
    assert marked == 1
    assert uow.inapp.messages[other.id].read_at is None
    with pytest.raises(InvalidArgument):
        await handlers.mark_read(uow=uow, caller=CITIZEN, message_ids=["x"], now=NOW)


async def test_deliveries_are_read_by_the_applicant_and_their_departments_reviewers() -> None:
    uow, sms = FakeUnitOfWork(), FakeChannel()
    await handlers.record_access(
        uow=uow, accesses=[(str(uuid.uuid4()), RequestAccess(REQUEST, APPLICANT, "residents"))]
    )
    (to_applicant,) = await tell(uow, sms, notice())
    breach = notice(
        Kind.SLA_BREACH,
        values={"number": NUMBER, "department": "residents", "due_at": NOW, "assignee": ""},
        recipients=(Recipient(account="S1"),),
        audience=Audience.SUPERVISOR,
    )
    (to_supervisor,) = await tell(uow, None, breach, Channel.INAPP)
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
        handlers.preview(caller=REVIEWER, kind="nope", channel="fax", locale="fr")
    assert set(caught.value.violations) == {"kind", "channel", "locale"}
    with pytest.raises(InvalidArgument) as caught:
        handlers.preview(caller=REVIEWER, kind="one_time_code", channel="email", locale="ar")
    assert set(caught.value.violations) == {"channel"}
