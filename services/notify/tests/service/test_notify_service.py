"""Notify's real handlers, senders and gRPC server, built by its composition root, on a real
PostgreSQL, with the development SMS gateway (HTTP, in a thread) and a real SMTP server
(aiosmtpd) in process. Kafka stands outside this tier: events are handed to the handler of
their topic as the consumer group would, and each channel's sender makes its passes."""

from __future__ import annotations

import asyncio
import mailbox
import threading
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import tawasul_notify
from aiosmtpd.smtp import SMTP
from google.rpc import error_details_pb2
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from prometheus_client import REGISTRY
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul.notify.v1 import notify_pb2, notify_pb2_grpc
from tawasul_devstack.identity import throwaway
from tawasul_devstack.journey import eventually
from tawasul_devstack.procs import free_port
from tawasul_devstack.sms_gateway import MessageStore, SmsGatewayServer
from tawasul_devstack.smtp_server import MaildirHandler, received
from tawasul_notify import bootstrap
from tawasul_notify.adapters import tables
from tawasul_notify.adapters.metrics import DeliveryGauge
from tawasul_notify.adapters.repository import NotifyUnitOfWork
from tawasul_notify.app import handlers
from tawasul_notify.app.ports import Receipts, Sender
from tawasul_notify.domain.model import Channel, Outgoing, SendOutcome, Told
from tawasul_notify.entrypoints.senders import ChannelSender
from tawasul_notify.settings import NotifySettings
from tawasul_platform.consumer import Subscriptions
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import GrpcServer, bearer, status_details
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine, emptied, on_loop, reviewer_recorded
from tawasul_platform.tls import open_channel
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    NOTIFICATION_EVENTS,
    REQUEST_ROUTED,
    REQUEST_STATUS_CHANGED,
    REQUEST_SUBMITTED,
    SLA_ALERTS,
    STAFF_REVIEWERS,
)

MIGRATIONS = Path(tawasul_notify.__file__).resolve().parent / "migrations"
GOLDEN = Path(__file__).resolve().parent.parent / "unit" / "golden"
IDENTITY = throwaway()
APPLICANT = "1000000008"
MOBILE = "+966512345678"
EMAIL = "amal@example.sa"
OWNER = IDENTITY.token_for(Principal(APPLICANT, Role.CITIZEN))
REVIEWER = IDENTITY.token_for(Principal("E1001", Role.REVIEWER, frozenset({"residents"})))
STAFF = {"S1": "s1@passports.example"}
RECEIPTS_EVERY = timedelta(seconds=5)


class Crashing:
    """A process that dies while it sends: the one-time code stays pending."""

    channel = Channel.SMS

    async def send(self, message: Outgoing) -> SendOutcome:
        raise RuntimeError("the process died here")

    async def healthy(self) -> bool:
        return True


class Notify:
    def __init__(
        self,
        *,
        channel: grpc.aio.Channel,
        engine: AsyncEngine,
        uow: Any,
        subscriptions: Subscriptions,
        senders: Mapping[Channel, ChannelSender],
        gateway: httpx.AsyncClient,
        receipts: Any,
        maildir: Path,
    ) -> None:
        self.stub = notify_pb2_grpc.NotifyServiceStub(channel)
        self.engine = engine
        self.uow = uow
        self.subscriptions = subscriptions
        self.senders = senders
        self.woken: list[Channel] = []
        self.gateway = gateway
        self.receipts = receipts
        self.maildir = maildir

    async def consume(self, *events: events_pb2.Envelope, topic: str = REQUEST_SUBMITTED) -> None:
        """The group's handler takes the events as one poll; each woken sender makes its
        passes."""
        await self.consume_at_once((topic, events))

    async def consume_at_once(self, *polls: tuple[str, Sequence[events_pb2.Envelope]]) -> None:
        """One poll of several topics: each topic's events applied at once with the others', as
        the group does; then each woken sender makes its passes, as its run does: another
        while the last sent something (a request's next message waits for the one before)."""
        await asyncio.gather(*(self.subscriptions.deliver(t, *events) for t, events in polls))
        woken, self.woken[:] = set(self.woken), []
        for channel in sorted(woken):
            while (sent := await self.senders[channel].send_due()).tried and not sent.outage:
                pass

    async def sms(self) -> list[dict[str, str]]:
        answer = await self.gateway.get("/v1/messages")
        answer.raise_for_status()
        messages: list[dict[str, str]] = answer.json()
        return messages

    async def results(self) -> list[events_pb2.NotificationSent]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(tables.outbox)
                    .where(tables.outbox.c.topic == NOTIFICATION_EVENTS)
                    .order_by(tables.outbox.c.id)
                )
            ).all()
        return [events_pb2.Envelope.FromString(r.payload).notification_sent for r in rows]


@pytest.fixture
async def notify(database_url: str, tmp_path: Path) -> AsyncIterator[Notify]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = async_engine(database_url, pool_size=4)
    database = Database(engine.sync_engine)

    def uow() -> NotifyUnitOfWork:
        return NotifyUnitOfWork(database)

    gateway = SmsGatewayServer(
        ("127.0.0.1", 0), MessageStore(tmp_path / "sms.jsonl"), ("sms-user", "sms-password")
    )
    serving = threading.Thread(target=gateway.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    maildir = tmp_path / "maildir"
    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    smtp_port = free_port()
    smtp = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, hostname="localhost", loop=loop),
        "127.0.0.1",
        smtp_port,
    )
    settings = NotifySettings(
        database_url=database_url,
        kafka_bootstrap="127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        identity_issuers=IDENTITY.issuers(),
        sms_gateway_url=f"http://127.0.0.1:{gateway.server_address[1]}",
        sms_gateway_user="sms-user",
        sms_gateway_password="sms-password",
        smtp_port=smtp_port,
        message_retry_seconds=0.8,
    )
    sms, pool = bootstrap.sms_gateway(settings)
    # The test's own look at the stand-in: what it received, and the faults it should act.
    http = httpx.AsyncClient(
        base_url=settings.sms_gateway_url, auth=("sms-user", "sms-password"), timeout=5.0
    )
    channels: dict[Channel, Sender] = {Channel.SMS: sms, Channel.EMAIL: bootstrap.smtp(settings)}
    senders = bootstrap.senders(settings, uow=uow, channels=channels)
    woken: list[Channel] = []
    subscriptions = bootstrap.subscriptions(uow=uow, staff=STAFF, wake=woken.append)
    server: GrpcServer = bootstrap.grpc_server(
        settings, bootstrap.servicer(settings, uow=uow, sms=sms)
    )
    await server.start()
    await server.serving(True)
    channel = open_channel(f"127.0.0.1:{server.port}", None)
    try:
        notify = Notify(
            channel=channel,
            engine=engine,
            uow=uow,
            subscriptions=subscriptions,
            senders=senders,
            gateway=http,
            receipts=sms,
            maildir=maildir,
        )
        notify.woken = woken
        yield notify
    finally:
        await channel.close()
        await server.stop(1)
        await http.aclose()
        await pool.aclose()
        smtp.close()
        await smtp.wait_closed()
        gateway.shutdown()
        gateway.server_close()
        serving.join()
        await engine.dispose()


def submitted(
    *, mobile: str = MOBILE, locale: str = "ar", applicant: str = APPLICANT, kind: str = ""
) -> events_pb2.Envelope:
    """Intake's submission; `kind`: who filed it (citizen, resident, establishment; "": not
    said)."""
    request_id = str(uuid.uuid4())
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        request_id=request_id,
        request_submitted=events_pb2.RequestSubmitted(
            request_id=request_id,
            request_number="TW482913578",
            applicant_id=applicant,
            applicant_kind=kind,
            department_code="residents",
            contact=common_pb2.Contact(mobile=mobile, email=EMAIL, locale=locale),
            expected_completion_at=timestamp(datetime.now(UTC) + timedelta(days=7)),
        ),
    )


def routed(
    event: events_pb2.Envelope, department: str, sequence: int = 0, transfer: int = 0
) -> events_pb2.Envelope:
    """Routing's decision `sequence` (0: from before routing counted them) on the request,
    after review's transfer `transfer` (its status change's sequence; 0: none yet)."""
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.routed",
        request_id=event.request_id,
        request_routed=events_pb2.RequestRouted(
            request_id=event.request_id,
            applicant_id=APPLICANT,
            department_code=department,
            sequence=sequence,
            transfer_sequence=transfer,
        ),
    )


async def test_a_submission_is_told_once_on_each_channel(notify: Notify) -> None:
    event = submitted(locale="en")
    await notify.consume(event)
    await notify.consume(event)  # read again
    assert notify.woken == []
    (sms,) = await notify.sms()
    assert (sms["to"], sms["from"]) == (MOBILE, "Tawasul")
    assert "TW482913578" in sms["text"]
    (mail,) = await asyncio.to_thread(received, notify.maildir)
    assert mail["To"] == EMAIL
    assert "TW482913578" in str(mail["Subject"])
    body = mail.get_body(("plain",))
    assert body is not None
    assert "TW482913578" in body.get_content()
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert [(m.kind, m.request_id) for m in inbox.messages] == [("submitted", event.request_id)]
    assert inbox.unread == 1

    listed = await notify.stub.ListDeliveries(
        notify_pb2.ListDeliveriesRequest(request_id=event.request_id), metadata=bearer(OWNER)
    )
    by_channel = {d.channel: d for d in listed.deliveries}
    assert set(by_channel) == {"sms", "email", "inapp"}
    assert by_channel["sms"].recipient == "+9665•••••678"
    assert by_channel["sms"].provider_message_id == sms["id"]
    assert by_channel["email"].subject == str(mail["Subject"])
    assert by_channel["inapp"].status == notify_pb2.DELIVERY_STATUS_DELIVERED
    results = await notify.results()
    assert sorted((r.channel, r.status) for r in results) == [
        ("email", "sent"),
        ("inapp", "delivered"),
        ("sms", "sent"),
    ]
    assert all(MOBILE[4:] not in r.SerializeToString().decode("latin-1") for r in results)


def status_changed(
    request: events_pb2.Envelope, status: common_pb2.RequestStatus.ValueType, **more: Any
) -> events_pb2.Envelope:
    """Review's status change of the submitted `request`, in English."""
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.status-changed",
        request_id=request.request_id,
        request_status_changed=events_pb2.RequestStatusChanged(
            request_id=request.request_id,
            request_number=request.request_submitted.request_number,
            status=status,
            contact=common_pb2.Contact(mobile=MOBILE, email=EMAIL, locale="en"),
            applicant_id=request.request_submitted.applicant_id,
            **more,
        ),
    )


def cancelled_by_intake(
    request: events_pb2.Envelope,
    at: datetime | None = None,
    applicant_id: str = APPLICANT,
    **more: Any,
) -> events_pb2.Envelope:
    """Intake's cancellation of the submitted `request`, taken `at`, in English."""
    cancelled = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.cancelled",
        request_id=request.request_id,
        request_cancelled=events_pb2.RequestCancelled(
            request_id=request.request_id,
            request_number="TW482913578",
            contact=common_pb2.Contact(mobile=MOBILE, email=EMAIL, locale="en"),
            applicant_id=applicant_id,
            **more,
        ),
    )
    if at is not None:
        cancelled.occurred_at.CopyFrom(timestamp(at))
    return cancelled


async def test_a_status_change_replayed_after_a_later_one_is_not_told(notify: Notify) -> None:
    """Asked for a document (review's change 2), the beneficiary must not then be texted that
    the request is under review (change 1, replayed from the dead letters)."""
    request = submitted(locale="en")
    await notify.consume(request)
    under_review = status_changed(request, common_pb2.REQUEST_STATUS_UNDER_REVIEW, sequence=1)
    asked = status_changed(
        request,
        common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
        sequence=2,
        missing=[common_pb2.MissingItem(kind="document", name="passport", description="Passport")],
    )
    await notify.consume(under_review, asked, topic=REQUEST_STATUS_CHANGED)
    await notify.consume(under_review, topic=REQUEST_STATUS_CHANGED)
    replayed = status_changed(request, common_pb2.REQUEST_STATUS_UNDER_REVIEW, sequence=1)
    await notify.consume(replayed, topic=REQUEST_STATUS_CHANGED)
    texts = [m["text"] for m in await notify.sms()]
    assert [("under review" in t, "Passport" in t) for t in texts] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert sorted(m.kind for m in inbox.messages) == [
        "needs_more_info",
        "submitted",
        "under_review",
    ]
    async with notify.engine.connect() as conn:
        told = (await conn.execute(select(tables.told_status))).one()
    assert (str(told.request_id), told.sequence) == (request.request_id, 2)


async def test_two_topics_telling_one_cancellation_at_once_tell_it_once(notify: Notify) -> None:
    """Intake's cancellation and review's restating of it, in one poll, are applied at once in
    two transactions: the second to read what was told waits for the first to commit, and so
    reads the cancellation as told."""
    request_id = uuid.UUID(submitted().request_id)
    at = datetime(2026, 3, 5, 20, 59, tzinfo=UTC)
    async with notify.uow() as first:
        assert await first.told.hold([request_id]) == {}
        await first.told.record({request_id: Told(0, at)})

        async def second() -> Any:
            async with notify.uow() as uow:
                told = await uow.told.hold([request_id])
                await uow.commit()
                return told

        reading = asyncio.create_task(second())

        async def waits_for_the_first() -> bool | None:
            async with notify.engine.connect() as conn:
                waiting = await conn.scalar(
                    text("select count(*) from pg_stat_activity where wait_event_type = 'Lock'")
                )
            return True if waiting else None

        await eventually(waits_for_the_first, what="the second to wait for the first")
        assert not reading.done()
        await first.commit()
    told = await reading
    assert told[request_id].cancelled_at == at


async def test_a_beneficiary_told_their_request_closed_is_told_when_it_reopens(
    notify: Notify,
) -> None:
    request = submitted(locale="en")
    await notify.consume(request)
    closed = status_changed(
        request, common_pb2.REQUEST_STATUS_CLOSED, message="The information was not received"
    )
    await notify.consume(closed, topic=REQUEST_STATUS_CHANGED)
    reopened = status_changed(
        request, common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT, reopened=True
    )
    await notify.consume(reopened, topic=REQUEST_STATUS_CHANGED)
    texts = [m["text"] for m in await notify.sms()]
    assert [("closed without" in t, "has been reopened" in t) for t in texts] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    assert "Please disregard the message that it was closed." in texts[2]
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert sorted(m.kind for m in inbox.messages) == ["closed", "reopened", "submitted"]
    mails = await asyncio.to_thread(received, notify.maildir)
    subjects = {str(m["Subject"]) for m in mails}
    assert "Your Tawasul request TW482913578 has been reopened" in subjects


async def test_a_reviewers_message_is_sent_on_every_channel_without_the_status_again(
    notify: Notify,
) -> None:
    request = submitted(locale="en")
    await notify.consume(request)
    under_review = status_changed(request, common_pb2.REQUEST_STATUS_UNDER_REVIEW)
    await notify.consume(under_review, topic=REQUEST_STATUS_CHANGED)
    said = "Please bring the original passport to the Riyadh office on Sunday"
    message = status_changed(
        request, common_pb2.REQUEST_STATUS_UNDER_REVIEW, message=said, reviewer_message=True
    )
    await notify.consume(message, topic=REQUEST_STATUS_CHANGED)
    texts = [m["text"] for m in await notify.sms()]
    assert [(said in t, "under review" in t) for t in texts[1:]] == [(False, True), (True, False)]
    mails = await asyncio.to_thread(received, notify.maildir)
    bodies = [m.get_body(("plain",)) for m in mails]
    assert sum(said in b.get_content() for b in bodies if b is not None) == 1
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert sorted(m.kind for m in inbox.messages) == ["message", "submitted", "under_review"]
    assert any(said in m.text for m in inbox.messages)


def appealed(request: events_pb2.Envelope, *, locale: str = "ar") -> events_pb2.Envelope:
    """Intake's appeal of the submitted `request`'s rejection."""
    r = request.request_submitted
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.appealed",
        request_id=request.request_id,
        request_appealed=events_pb2.RequestAppealed(
            request_id=r.request_id,
            request_number=r.request_number,
            reason="The passport copy I attached is clear",
            contact=common_pb2.Contact(mobile=MOBILE, email=EMAIL, locale=locale),
            applicant_id=APPLICANT,
        ),
    )


async def test_an_appeal_is_acknowledged_once_on_every_channel(notify: Notify) -> None:
    request = submitted()
    await notify.consume(request)
    rejected = status_changed(request, common_pb2.REQUEST_STATUS_REJECTED)
    await notify.consume(rejected, topic=REQUEST_STATUS_CHANGED)
    appeal = appealed(request)
    await notify.consume(appeal, topic=APPLICANT_ACTIONS)
    await notify.consume(appeal, topic=APPLICANT_ACTIONS)  # read again
    texts = [m["text"] for m in await notify.sms()]
    assert len(texts) == 3
    assert [t for t in texts if "تظلمك" in t and "TW482913578" in t] == [texts[2]]
    mails = await asyncio.to_thread(received, notify.maildir)
    assert sum("تظلمك" in str(m["Subject"]) for m in mails) == 1
    assert len(mails) == 3
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert sorted(m.kind for m in inbox.messages) == ["appeal_received", "rejected", "submitted"]


async def test_a_cancellation_that_crossed_the_decision_ends_with_the_decision_told(
    notify: Notify,
) -> None:
    request = submitted(locale="en")
    await notify.consume(request)
    rejected = status_changed(request, common_pb2.REQUEST_STATUS_REJECTED)
    await notify.consume(rejected, topic=REQUEST_STATUS_CHANGED)
    cancelled = cancelled_by_intake(request)
    await notify.consume(cancelled, topic=APPLICANT_ACTIONS)
    restated = status_changed(request, common_pb2.REQUEST_STATUS_REJECTED, cancel_too_late=True)
    await notify.consume(restated, topic=REQUEST_STATUS_CHANGED)
    texts = [m["text"] for m in await notify.sms()]
    assert [("cancelled" in t, "rejected" in t) for t in texts[1:]] == [
        (False, True),
        (True, False),
        (True, True),
    ]
    assert texts[-1].startswith("Your Tawasul request TW482913578 was not cancelled")
    assert "You may still appeal" in texts[-1]
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert sorted(m.kind for m in inbox.messages) == [
        "cancel_too_late",
        "cancelled",
        "rejected",
        "submitted",
    ]


async def test_a_closure_after_an_appeal_is_told_once_review_undid_the_cancellation(
    notify: Notify,
) -> None:
    """Rejected; cancelled too late (review restates the rejection); appealed; asked for more
    information and closed at its deadline: the closure is told, and what was told records no
    cancellation any more."""
    request = submitted(locale="en")
    await notify.consume(request)
    await notify.consume(
        status_changed(request, common_pb2.REQUEST_STATUS_REJECTED, sequence=3),
        topic=REQUEST_STATUS_CHANGED,
    )
    cancelled = cancelled_by_intake(request, datetime(2026, 3, 1, 9, 5, tzinfo=UTC))
    await notify.consume(cancelled, topic=APPLICANT_ACTIONS)
    restated = status_changed(
        request, common_pb2.REQUEST_STATUS_REJECTED, sequence=4, cancel_too_late=True
    )
    await notify.consume(restated, topic=REQUEST_STATUS_CHANGED)
    await notify.consume(appealed(request, locale="en"), topic=APPLICANT_ACTIONS)
    deadline = timestamp(datetime(2026, 3, 12, 21, 0, tzinfo=UTC))
    asked = status_changed(
        request,
        common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
        sequence=5,
        respond_by=deadline,
        missing=[common_pb2.MissingItem(kind="document", name="passport", description="Passport")],
    )
    closure = status_changed(
        request, common_pb2.REQUEST_STATUS_CLOSED, sequence=6, respond_by=deadline
    )
    await notify.consume(asked, topic=REQUEST_STATUS_CHANGED)
    await notify.consume(closure, topic=REQUEST_STATUS_CHANGED)
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert [m.kind for m in reversed(inbox.messages)] == [
        "submitted",
        "rejected",
        "cancelled",
        "cancel_too_late",
        "appeal_received",
        "needs_more_info",
        "closed",
    ]
    assert "closed" in (await notify.sms())[-1]["text"]
    async with notify.engine.connect() as conn:
        told = (await conn.execute(select(tables.told_status))).one()
    assert (told.sequence, told.cancelled_at) == (6, None)


@pytest.mark.parametrize("polls", ["intake, review", "review, intake", "intake + review"])
async def test_a_cancellation_read_after_review_said_it_came_too_late_does_not_stand(
    notify: Notify, polls: str
) -> None:
    """Rejected; cancelled too late. Review's cancel-too-late (at the time intake took the
    cancellation) may be read before intake's cancellation, or in the same poll: the beneficiary
    is not told "cancelled" after "not cancelled", nothing records the cancellation as standing,
    and the appeal's request for more information is told. A cancellation made since stands."""
    request = submitted(locale="en")
    await notify.consume(request)
    await notify.consume(
        status_changed(request, common_pb2.REQUEST_STATUS_REJECTED, sequence=3),
        topic=REQUEST_STATUS_CHANGED,
    )
    made = datetime(2026, 3, 1, 9, 5, 7, 123456, tzinfo=UTC)
    restated = status_changed(
        request, common_pb2.REQUEST_STATUS_REJECTED, sequence=4, cancel_too_late=True
    )
    restated.occurred_at.CopyFrom(timestamp(made))
    events = {
        "intake": (APPLICANT_ACTIONS, [cancelled_by_intake(request, made)]),
        "review": (REQUEST_STATUS_CHANGED, [restated]),
    }
    for poll in polls.split(", "):
        await notify.consume_at_once(*(events[e] for e in poll.split(" + ")))
    await notify.consume(appealed(request, locale="en"), topic=APPLICANT_ACTIONS)
    asked = status_changed(
        request,
        common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
        sequence=5,
        respond_by=timestamp(datetime(2026, 3, 12, 21, 0, tzinfo=UTC)),
        missing=[common_pb2.MissingItem(kind="document", name="passport", description="Passport")],
    )
    await notify.consume(asked, topic=REQUEST_STATUS_CHANGED)
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    kinds = [m.kind for m in reversed(inbox.messages)]
    answered = ["submitted", "rejected", "cancel_too_late", "appeal_received", "needs_more_info"]
    in_order = [*answered[:2], "cancelled", *answered[2:]]
    # Applied at once, either topic may read what was told first.
    expected = {
        "intake, review": [in_order],
        "review, intake": [answered],
        "intake + review": [in_order, answered],
    }
    assert kinds in expected[polls]
    async with notify.engine.connect() as conn:
        told = (await conn.execute(select(tables.told_status))).one()
    assert (told.sequence, told.cancelled_at, told.too_late_at) == (5, None, made)

    again = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    await notify.consume(cancelled_by_intake(request, again), topic=APPLICANT_ACTIONS)
    claimed = status_changed(request, common_pb2.REQUEST_STATUS_UNDER_REVIEW, sequence=6)
    await notify.consume(claimed, topic=REQUEST_STATUS_CHANGED)
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert [m.kind for m in reversed(inbox.messages)][len(kinds) :] == ["cancelled"]
    async with notify.engine.connect() as conn:
        told = (await conn.execute(select(tables.told_status))).one()
    assert (told.sequence, told.cancelled_at, told.too_late_at) == (6, again, made)


def in_language(event: events_pb2.Envelope, locale: str) -> events_pb2.Envelope:
    """The event, its beneficiary's language `locale`."""
    which = event.WhichOneof("payload")
    assert which is not None
    getattr(event, which).contact.locale = locale
    return event


async def told_too_late(notify: Notify) -> list[str]:
    """What the beneficiary was told of the cancellation that came too late, as it reached
    them: the last SMS, the last e-mail (its body) and the in-app message."""
    mails = await asyncio.to_thread(received, notify.maildir)
    body = mails[-1].get_body(("plain",))
    assert body is not None
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    (in_app,) = [m.text for m in inbox.messages if m.kind == "cancel_too_late"]
    return [(await notify.sms())[-1]["text"], body.get_content(), in_app]


# What asks the beneficiary to disregard the message that their request was cancelled.
DISREGARD = {"en": "disregard", "ar": "تجاهل"}


@pytest.mark.parametrize("locale", ["en", "ar"])
@pytest.mark.parametrize("polls", ["intake, review", "review, intake"])
async def test_a_cancel_too_late_asks_to_disregard_only_a_cancellation_that_was_told(
    notify: Notify, polls: str, locale: str
) -> None:
    """Rejected; cancelled too late. Read after intake's cancellation, told, review's
    cancel-too-late asks the beneficiary to disregard "cancelled"; read before it, the
    cancellation is never told, and neither is that request: on every channel."""
    request = submitted(locale=locale)
    await notify.consume(request)
    rejected = status_changed(request, common_pb2.REQUEST_STATUS_REJECTED, sequence=3)
    await notify.consume(in_language(rejected, locale), topic=REQUEST_STATUS_CHANGED)
    made = datetime(2026, 3, 1, 9, 5, tzinfo=UTC)
    restated = status_changed(
        request, common_pb2.REQUEST_STATUS_REJECTED, sequence=4, cancel_too_late=True
    )
    restated.occurred_at.CopyFrom(timestamp(made))
    events = {
        "intake": (APPLICANT_ACTIONS, [in_language(cancelled_by_intake(request, made), locale)]),
        "review": (REQUEST_STATUS_CHANGED, [in_language(restated, locale)]),
    }
    for poll in polls.split(", "):
        await notify.consume_at_once(events[poll])

    told_first = polls.startswith("intake")
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    kinds = [m.kind for m in reversed(inbox.messages)]
    cancelled = ["cancelled"] if told_first else []
    assert kinds == ["submitted", "rejected", *cancelled, "cancel_too_late"]
    assert len(await notify.sms()) == len(kinds)
    texts = await told_too_late(notify)
    assert [DISREGARD[locale] in t for t in texts] == [told_first] * 3, texts


@pytest.mark.parametrize("locale", ["en", "ar"])
async def test_the_offices_cancellation_never_told_is_not_to_be_disregarded(
    notify: Notify, locale: str
) -> None:
    """The office's cancellation reached review after the decision, and notify had told none
    (review's restatement is all it read): nothing asks the account to disregard it."""
    request = submitted(applicant=APPLICANT, kind="citizen", locale=locale)
    await notify.consume(request)
    restated = status_changed(
        request,
        common_pb2.REQUEST_STATUS_ACCEPTED,
        sequence=4,
        cancel_too_late=True,
        actor_id="system",
    )
    await notify.consume(in_language(restated, locale), topic=REQUEST_STATUS_CHANGED)
    texts = await told_too_late(notify)
    assert [DISREGARD[locale] in t for t in texts] == [False] * 3, texts


# The rejection's last day of appeal as each language writes it (tawasul_calendar).
APPEAL_DAY = {
    "en": "Wednesday 7 Rajab 1448 AH (16 December 2026)",
    "ar": "الأربعاء ٧ رجب ١٤٤٨ هـ الموافق ١٦ ديسمبر ٢٠٢٦ م",
}
# What says that it may be appealed with no day named.
IN_TIME_ALLOWED = {"en": "within the time allowed", "ar": "المدة المتاحة"}


@pytest.mark.parametrize("locale", ["en", "ar"])
@pytest.mark.parametrize("one_poll", [False, True])
async def test_a_cancel_too_late_gives_the_rejections_last_day_of_appeal(
    notify: Notify, one_poll: bool, locale: str
) -> None:
    """Rejected (the beneficiary told they may appeal by a day); cancelled too late: review's
    restatement of the rejection carries no day, and the beneficiary is told the one the
    rejection gave, on every channel, whether the two are read in one poll or two."""
    request = submitted(locale=locale)
    await notify.consume(request)
    until = datetime(2026, 12, 16, 20, 59, 59, 999999, tzinfo=UTC)  # its end in Riyadh
    rejected = status_changed(
        request, common_pb2.REQUEST_STATUS_REJECTED, sequence=3, appeal_until=timestamp(until)
    )
    made = datetime(2026, 12, 3, 9, 5, tzinfo=UTC)
    restated = status_changed(
        request, common_pb2.REQUEST_STATUS_REJECTED, sequence=4, cancel_too_late=True
    )
    restated.occurred_at.CopyFrom(timestamp(made))
    changes = [in_language(rejected, locale), in_language(restated, locale)]
    await notify.consume(
        in_language(cancelled_by_intake(request, made), locale), topic=APPLICANT_ACTIONS
    )
    for poll in [changes] if one_poll else [[c] for c in changes]:
        await notify.consume(*poll, topic=REQUEST_STATUS_CHANGED)

    texts = await told_too_late(notify)
    assert [APPEAL_DAY[locale] in t for t in texts] == [True] * 3, texts
    assert not [t for t in texts if IN_TIME_ALLOWED[locale] in t]
    async with notify.engine.connect() as conn:
        told = (await conn.execute(select(tables.told_status))).one()
    assert (told.sequence, told.appeal_until) == (4, until.date())


@pytest.mark.parametrize("locale", ["en", "ar"])
async def test_a_cancel_too_late_of_a_rejection_of_no_known_day_offers_the_time_allowed(
    notify: Notify, locale: str
) -> None:
    """The rejection told no last day (published before review stamped it): neither does the
    cancel-too-late restating it, which still offers the appeal."""
    request = submitted(locale=locale)
    await notify.consume(request)
    rejected = status_changed(request, common_pb2.REQUEST_STATUS_REJECTED, sequence=3)
    restated = status_changed(
        request, common_pb2.REQUEST_STATUS_REJECTED, sequence=4, cancel_too_late=True
    )
    await notify.consume(
        in_language(rejected, locale), in_language(restated, locale), topic=REQUEST_STATUS_CHANGED
    )
    sms, mail, in_app = await told_too_late(notify)
    assert IN_TIME_ALLOWED[locale] in mail
    assert IN_TIME_ALLOWED[locale] in in_app
    for said in (sms, mail, in_app):
        assert "appeal" in said or "التظلم" in said
        assert "2026" not in said
        assert "٢٠٢٦" not in said


async def test_a_cancellation_made_by_the_deadline_is_told_once_with_no_closure_between(
    notify: Notify,
) -> None:
    """Review's sweep closed the request at the information deadline before the beneficiary's
    cancellation, made by it, reached review; review then withdrew the request and restated
    the cancellation. The beneficiary hears "cancelled" once, nothing of the closure."""
    request = submitted(locale="en")
    await notify.consume(request)
    deadline = datetime(2026, 3, 5, 21, 0, tzinfo=UTC)
    made = deadline - timedelta(seconds=20)
    cancelled = cancelled_by_intake(request, made)
    closure = status_changed(
        request, common_pb2.REQUEST_STATUS_CLOSED, sequence=3, respond_by=timestamp(deadline)
    )
    restated = status_changed(request, common_pb2.REQUEST_STATUS_CANCELLED, sequence=4)
    restated.occurred_at.CopyFrom(timestamp(made))
    await notify.consume(cancelled, topic=APPLICANT_ACTIONS)
    await notify.consume(closure, restated, topic=REQUEST_STATUS_CHANGED)
    texts = [m["text"] for m in await notify.sms()]
    assert ["cancelled" in t for t in texts] == [False, True]
    assert not [t for t in texts if "closed" in t]
    mails = await asyncio.to_thread(received, notify.maildir)
    assert ["cancelled" in str(m["Subject"]) for m in mails] == [False, True]
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert sorted(m.kind for m in inbox.messages) == ["cancelled", "submitted"]
    async with notify.engine.connect() as conn:
        told = (await conn.execute(select(tables.told_status))).one()
    assert (str(told.request_id), told.sequence, told.cancelled_at) == (
        request.request_id,
        4,
        made,
    )


async def test_receipts_from_the_gateway_mark_the_sms_delivered(notify: Notify) -> None:
    event = submitted()
    await notify.consume(event)
    later = datetime.now(UTC) + timedelta(seconds=2)
    assert not await handlers.collect_receipts(
        uow=notify.uow(), receipts=notify.receipts, now=later, interval=RECEIPTS_EVERY
    )
    results = await notify.results()
    assert [(r.channel, r.status) for r in results if r.channel == "sms"] == [
        ("sms", "sent"),
        ("sms", "delivered"),
    ]


async def test_an_sms_the_gateway_could_not_deliver_is_recorded_failed(notify: Notify) -> None:
    event = submitted(mobile="+966500000014", locale="en")
    answer = await notify.gateway.put("/v1/faults", json={"unreachable": ["+966500000014"]})
    answer.raise_for_status()
    await notify.consume(event)
    later = datetime.now(UTC) + timedelta(seconds=2)
    await handlers.collect_receipts(
        uow=notify.uow(), receipts=notify.receipts, now=later, interval=RECEIPTS_EVERY
    )
    results = await notify.results()
    assert [(r.channel, r.status) for r in results if r.channel == "sms"] == [
        ("sms", "sent"),
        ("sms", "failed"),
    ]
    listed = await notify.stub.ListDeliveries(
        notify_pb2.ListDeliveriesRequest(request_id=event.request_id), metadata=bearer(REVIEWER)
    )
    (sms,) = [d for d in listed.deliveries if d.channel == "sms"]
    assert (sms.status, sms.error) == (
        notify_pb2.DELIVERY_STATUS_FAILED,
        "not delivered: the SMS provider reported undelivered",
    )


class HeldReceipts:
    """The gateway's receipts, answered once `release` is set; `asked` is set once asked."""

    def __init__(self, receipts: Receipts) -> None:
        self._receipts = receipts
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def settled(self, provider_message_ids: list[str]) -> dict[str, str]:
        self.asked.set()
        await self.release.wait()
        return await self._receipts.settled(provider_message_ids)


async def test_a_receipt_two_replicas_collect_at_once_is_reported_delivered_once(
    notify: Notify,
) -> None:
    await notify.consume(submitted())
    later = datetime.now(UTC) + timedelta(seconds=2)
    held = HeldReceipts(notify.receipts)
    first = asyncio.create_task(
        handlers.collect_receipts(
            uow=notify.uow(), receipts=held, now=later, interval=RECEIPTS_EVERY
        )
    )
    await held.asked.wait()  # its check is committed; the gateway has not answered
    # Another replica's pass, the first one's wait having outlasted the time between passes.
    await handlers.collect_receipts(
        uow=notify.uow(),
        receipts=notify.receipts,
        now=later + timedelta(minutes=1),
        interval=RECEIPTS_EVERY,
    )
    held.release.set()
    await first
    results = await notify.results()
    assert [r.status for r in results if r.channel == "sms"] == ["sent", "delivered"]


class NoReceipts:
    """A gateway whose handsets are all off: no receipt comes back; what it is asked is kept."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def settled(self, provider_message_ids: list[str]) -> dict[str, str]:
        self.asked.extend(provider_message_ids)
        return {}


async def test_receipt_passes_rest_once_every_waiting_sms_was_asked_about_this_round(
    notify: Notify,
) -> None:
    for n in range(3):
        await notify.consume(submitted(mobile=f"+96650000002{n}"))
    receipts, later = NoReceipts(), datetime.now(UTC) + timedelta(seconds=2)

    async def collect(now: datetime) -> bool:
        return await handlers.collect_receipts(
            uow=notify.uow(), receipts=receipts, now=now, interval=RECEIPTS_EVERY, batch=2
        )

    # More than a batch: the loop goes again at once, until each was asked about once.
    assert [await collect(later + timedelta(seconds=n)) for n in range(3)] == [True, False, False]
    assert sorted(receipts.asked) == sorted(m["id"] for m in await notify.sms())
    # The next round asks again.
    assert await collect(later + RECEIPTS_EVERY)
    assert len(receipts.asked) == 5


async def test_the_results_gauge_counts_the_last_hours_deliveries_by_channel_and_status(
    notify: Notify,
) -> None:
    await notify.consume(submitted())
    earlier = submitted(mobile="+966500000007")
    await notify.consume(earlier)
    async with notify.engine.begin() as conn:
        await conn.execute(
            update(tables.deliveries)
            .where(tables.deliveries.c.cause_event_id == uuid.UUID(earlier.event_id))
            .values(created_at=datetime.now(UTC) - timedelta(hours=2))
        )

    await DeliveryGauge(Database(notify.engine.sync_engine))()

    def results(channel: str, status: str) -> float | None:
        return REGISTRY.get_sample_value(
            "tawasul_notify_deliveries_last_hour", {"channel": channel, "status": status}
        )

    assert results("sms", "sent") == 1
    assert results("email", "sent") == 1
    assert results("inapp", "delivered") == 1
    assert results("sms", "failed") == 0


async def test_a_number_the_gateway_refuses_fails_alone(notify: Notify) -> None:
    refused, fine = submitted(mobile="+966500000004"), submitted(mobile="+966500000005")
    answer = await notify.gateway.put("/v1/faults", json={"numbers": {"+966500000004": 400}})
    answer.raise_for_status()
    await notify.consume(refused, fine)
    assert [m["to"] for m in await notify.sms()] == ["+966500000005"]
    listed = await notify.stub.ListDeliveries(
        notify_pb2.ListDeliveriesRequest(request_id=refused.request_id), metadata=bearer(REVIEWER)
    )
    (sms,) = [d for d in listed.deliveries if d.channel == "sms"]
    assert sms.status == notify_pb2.DELIVERY_STATUS_FAILED
    assert sms.error == "400: refused by the SMS provider (Bad Request)"


async def test_a_number_that_keeps_failing_while_others_go_through_is_failed_in_time(
    notify: Notify,
) -> None:
    stuck = submitted(mobile="+966500000006")
    answer = await notify.gateway.put("/v1/faults", json={"numbers": {"+966500000006": 503}})
    answer.raise_for_status()
    await notify.consume(stuck)  # the first attempt: maybe an outage, tried again later

    async def sms() -> notify_pb2.Delivery:
        listed = await notify.stub.ListDeliveries(
            notify_pb2.ListDeliveriesRequest(request_id=stuck.request_id),
            metadata=bearer(REVIEWER),
        )
        (found,) = [d for d in listed.deliveries if d.channel == "sms"]
        return found

    assert ((await sms()).status, (await sms()).attempts) == (
        notify_pb2.DELIVERY_STATUS_PENDING,
        1,
    )

    async def failed() -> notify_pb2.Delivery | None:
        # Due again half a second later, then a second after (consumer_backoff_seconds); the
        # gateway's health says it works for others, so past its 0.8 s it is failed.
        await notify.senders[Channel.SMS].send_due()
        found = await sms()
        return found if found.status == notify_pb2.DELIVERY_STATUS_FAILED else None

    spent = await eventually(failed, within=10, what="the retry window spent")
    assert spent.attempts >= 2
    assert spent.error == f"SMS gateway answered 503 after {spent.attempts} attempts"


async def test_a_request_s_messages_reach_the_phone_in_the_order_they_were_recorded(
    notify: Notify,
) -> None:
    """A message that met the gateway unavailable holds back the later ones about its request
    to the same number: its retry would otherwise come after them."""
    request = submitted(mobile="+966500000013", locale="en")
    await notify.consume(request)
    answer = await notify.gateway.put("/v1/faults", json={"numbers": {"+966500000013": 503}})
    answer.raise_for_status()
    under_review = status_changed(request, common_pb2.REQUEST_STATUS_UNDER_REVIEW, sequence=1)
    under_review.request_status_changed.contact.mobile = "+966500000013"
    await notify.consume(under_review, topic=REQUEST_STATUS_CHANGED)
    (await notify.gateway.put("/v1/faults", json={"numbers": {}})).raise_for_status()
    accepted = status_changed(request, common_pb2.REQUEST_STATUS_ACCEPTED, sequence=2)
    accepted.request_status_changed.contact.mobile = "+966500000013"
    await notify.consume(accepted, topic=REQUEST_STATUS_CHANGED)

    async def deliveries() -> dict[str, notify_pb2.Delivery]:
        listed = await notify.stub.ListDeliveries(
            notify_pb2.ListDeliveriesRequest(request_id=request.request_id),
            metadata=bearer(REVIEWER),
        )
        return {d.kind: d for d in listed.deliveries if d.channel == "sms"}

    waiting = await deliveries()
    assert waiting["under_review"].status == notify_pb2.DELIVERY_STATUS_PENDING
    assert (waiting["accepted"].status, waiting["accepted"].attempts) == (
        notify_pb2.DELIVERY_STATUS_PENDING,
        0,
    )

    async def all_sent() -> bool | None:
        await notify.senders[Channel.SMS].send_due()
        sent = await deliveries()
        return (
            True
            if all(d.status != notify_pb2.DELIVERY_STATUS_PENDING for d in sent.values())
            else None
        )

    await eventually(all_sent, within=10, what="both sent")
    texts = [m["text"] for m in await notify.sms()]
    assert [("under review" in t, "accepted" in t) for t in texts[1:]] == [
        (True, False),
        (False, True),
    ]


async def test_a_claim_and_a_decision_read_in_one_poll_reach_the_phone_in_their_order(
    notify: Notify,
) -> None:
    """A reviewer who claims and decides at once (or notify catching up on a backlog) has both
    status changes in one poll: the decision must be the last word on the phone and on top of
    the inbox, not "under review" after "accepted"."""
    request = submitted(mobile="+966500000016", locale="en")
    await notify.consume(request)
    changes = [
        status_changed(request, common_pb2.REQUEST_STATUS_UNDER_REVIEW, sequence=1),
        status_changed(request, common_pb2.REQUEST_STATUS_ACCEPTED, sequence=2),
    ]
    for change in changes:
        change.request_status_changed.contact.mobile = "+966500000016"
    await notify.subscriptions.deliver(REQUEST_STATUS_CHANGED, *changes)

    # One at a time: the decision waits until "under review" is sent.
    assert (await notify.senders[Channel.SMS].send_due()).tried == 1
    assert (await notify.senders[Channel.SMS].send_due()).tried == 1
    texts = [m["text"] for m in await notify.sms() if m["to"] == "+966500000016"]
    assert [("under review" in t, "accepted" in t) for t in texts[1:]] == [
        (True, False),
        (False, True),
    ]
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    mine = [m.kind for m in inbox.messages if m.request_id == request.request_id]
    assert mine == ["accepted", "under_review", "submitted"]


async def test_a_message_held_behind_its_request_s_earlier_one_follows_it_at_once(
    notify: Notify,
) -> None:
    """The sender looks again as soon as a pass sent something, not at its next sweep (5 s):
    the message it sent may have been holding its request's next one back."""
    request = submitted(mobile="+966500000015", locale="en")
    faults = {"numbers": {"+966500000015": 503}}
    (await notify.gateway.put("/v1/faults", json=faults)).raise_for_status()
    await notify.consume(request)
    under_review = status_changed(request, common_pb2.REQUEST_STATUS_UNDER_REVIEW, sequence=1)
    under_review.request_status_changed.contact.mobile = "+966500000015"
    await notify.consume(under_review, topic=REQUEST_STATUS_CHANGED)
    (await notify.gateway.put("/v1/faults", json={"numbers": {}})).raise_for_status()
    sender = asyncio.create_task(notify.senders[Channel.SMS].run())
    try:

        async def both_sent() -> bool | None:
            texts = [m["text"] for m in await notify.sms() if m["to"] == "+966500000015"]
            return True if len(texts) == 2 else None

        await eventually(both_sent, within=3, what="both SMS, well before the sweep")
    finally:
        sender.cancel()
    texts = [m["text"] for m in await notify.sms() if m["to"] == "+966500000015"]
    assert ["under review" in t for t in texts] == [False, True]


async def test_a_sender_skips_what_another_holds_and_never_takes_a_one_time_code(
    notify: Notify,
) -> None:
    held, free = submitted(mobile="+966500000010"), submitted(mobile="+966500000011")
    await notify.subscriptions.deliver(REQUEST_SUBMITTED, held)
    async with notify.uow() as other:  # another replica's pass, in the middle of its sends
        (taken,) = await other.deliveries.due(Channel.SMS, 10, datetime.now(UTC))
        await notify.subscriptions.deliver(REQUEST_SUBMITTED, free)
        with pytest.raises(RuntimeError):
            await handlers.send_one_time_code(
                uow=notify.uow(),
                sender=Crashing(),
                request_id=free.request_id,
                mobile="+966500000012",
                code="482913",
                locale="ar",
                valid_minutes=5,
                now=datetime.now(UTC),
            )
        sent = await notify.senders[Channel.SMS].send_due()
        assert sent.tried == 1
        assert [m["to"] for m in await notify.sms()] == ["+966500000011"]
    assert taken.recipient == "+966500000010"
    # Released (its replica died, say): the next pass sends it; the code stays with its call.
    assert (await notify.senders[Channel.SMS].send_due()).tried == 1
    assert sorted(m["to"] for m in await notify.sms()) == ["+966500000010", "+966500000011"]
    assert (await notify.senders[Channel.SMS].send_due()).tried == 0


async def test_strangers_and_other_departments_see_no_deliveries(notify: Notify) -> None:
    event = submitted()
    await notify.consume(event)
    stranger = IDENTITY.token_for(Principal("1000000016", Role.CITIZEN))
    visas = IDENTITY.token_for(Principal("E2002", Role.REVIEWER, frozenset({"visas"})))
    for who in (stranger, visas):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await notify.stub.ListDeliveries(
                notify_pb2.ListDeliveriesRequest(request_id=event.request_id),
                metadata=bearer(who),
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(stranger))
    assert list(inbox.messages) == []


async def test_a_department_reviews_record_takes_away_shows_no_deliveries(notify: Notify) -> None:
    event = submitted()
    await notify.consume(event)
    both = IDENTITY.token_for(Principal("E3003", Role.REVIEWER, frozenset({"residents", "visas"})))
    asked = notify_pb2.ListDeliveriesRequest(request_id=event.request_id)

    async def channels(who: str) -> list[str] | grpc.StatusCode:
        try:
            listed = await notify.stub.ListDeliveries(asked, metadata=bearer(who))
        except grpc.aio.AioRpcError as error:
            return error.code()
        return sorted(d.channel for d in listed.deliveries)

    told = ["email", "inapp", "sms"]
    assert await channels(both) == told
    # Review's record keeps E3003 in visas only; the older one, replayed after, changes nothing.
    await notify.consume(
        reviewer_recorded("E3003", {"visas"}, None, 2),
        reviewer_recorded("E1001", {"visas"}, {"visas"}, 1),
        topic=STAFF_REVIEWERS,
    )
    await notify.consume(reviewer_recorded("E3003", {"residents"}, None, 1), topic=STAFF_REVIEWERS)
    assert await channels(both) == grpc.StatusCode.NOT_FOUND
    # E1001's record decides visas only: residents stays theirs by their token.
    assert await channels(REVIEWER) == told


async def test_the_inbox_is_marked_read_by_its_owner(notify: Notify) -> None:
    await notify.consume(submitted())
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    ids = [m.message_id for m in inbox.messages]
    marked = await notify.stub.MarkInboxRead(
        notify_pb2.MarkInboxReadRequest(message_ids=ids), metadata=bearer(OWNER)
    )
    again = await notify.stub.MarkInboxRead(
        notify_pb2.MarkInboxReadRequest(message_ids=ids), metadata=bearer(OWNER)
    )
    assert (marked.marked, again.marked) == (1, 0)
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert inbox.unread == 0
    assert inbox.messages[0].HasField("read_at")


async def test_more_message_ids_than_a_call_marks_are_refused_by_field_in_arabic_too(
    notify: Notify,
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(handlers.MAX_MARKED + 1)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notify.stub.MarkInboxRead(
            notify_pb2.MarkInboxReadRequest(message_ids=ids),
            metadata=(*bearer(OWNER), ("accept-language", "ar")),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_details(caught.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    (violation,) = bad.field_violations
    assert (violation.field, violation.description, violation.localized_message.message) == (
        "message_ids",
        "at most 200 message ids a call",
        "200 معرّف رسالة على الأكثر في كل طلب",
    )


async def test_an_employee_whose_id_is_a_citizens_reads_only_their_own_inbox(
    notify: Notify,
) -> None:
    """Owner ids are national IDs and employee ids, and an employee id may be digits only:
    the one inbox holds both, told apart by whom each message is for."""
    await notify.consume(submitted())
    warning = events_pb2.SlaAlert(
        request_id=str(uuid.uuid4()),
        request_number="TW482913578",
        department_code="residents",
        percent=75,
        due_at=timestamp(datetime.now(UTC) + timedelta(days=1)),
        assignee_id=APPLICANT,
    )
    await notify.consume(
        events_pb2.Envelope(
            event_id=str(uuid.uuid4()),
            event_type="tawasul.requests.sla",
            request_id=warning.request_id,
            sla_alert=warning,
        ),
        topic=SLA_ALERTS,
    )
    namesake = IDENTITY.token_for(Principal(APPLICANT, Role.REVIEWER, frozenset({"residents"})))

    citizens = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    employees = await notify.stub.ListInbox(
        notify_pb2.ListInboxRequest(), metadata=bearer(namesake)
    )
    assert [m.kind for m in citizens.messages] == ["submitted"]
    assert [m.kind for m in employees.messages] == ["sla_warning"]
    marked = await notify.stub.MarkInboxRead(
        notify_pb2.MarkInboxReadRequest(message_ids=[citizens.messages[0].message_id]),
        metadata=bearer(namesake),
    )
    assert marked.marked == 0
    citizens = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert citizens.unread == 1


async def test_previews_need_an_employee_and_valid_names(notify: Notify) -> None:
    preview = await notify.stub.PreviewTemplate(
        notify_pb2.PreviewTemplateRequest(kind="needs_more_info", channel="sms", locale="ar"),
        metadata=bearer(REVIEWER),
    )
    assert preview.encoding == "ucs-2"
    assert 1 <= preview.parts <= 3
    assert "TW482913578" in preview.text
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notify.stub.PreviewTemplate(
            notify_pb2.PreviewTemplateRequest(kind="x", channel="sms", locale="ar"),
            metadata=bearer(REVIEWER),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notify.stub.PreviewTemplate(
            notify_pb2.PreviewTemplateRequest(kind="submitted", channel="sms", locale="ar"),
            metadata=bearer(OWNER),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("locale", ["ar", "en"])
@pytest.mark.parametrize("channel", ["sms", "email", "inapp"])
async def test_a_preview_for_an_establishment_is_in_muqeems_words(
    notify: Notify, channel: str, locale: str
) -> None:
    """What an establishment reads (golden/establishment/), and what everyone else does."""
    stem = f"needs_more_info.{channel}.{locale}"
    muqeem = "returned to you" if locale == "en" else "أُعيد طلبك"
    for applicant_kind, folder in (
        ("establishment", GOLDEN / "establishment"),
        ("citizen", GOLDEN),
        ("resident", GOLDEN),
        ("", GOLDEN),
    ):
        preview = await notify.stub.PreviewTemplate(
            notify_pb2.PreviewTemplateRequest(
                kind="needs_more_info",
                channel=channel,
                locale=locale,
                applicant_kind=applicant_kind,
            ),
            metadata=bearer(REVIEWER),
        )
        assert (muqeem in preview.text) is (applicant_kind == "establishment"), preview.text
        assert preview.text == (folder / f"{stem}.txt").read_text(encoding="utf-8")
        if channel == "email":
            subject = (folder / f"{stem}.subject.txt").read_text(encoding="utf-8")
            assert preview.subject == subject, applicant_kind


async def test_a_preview_for_an_unknown_applicant_kind_is_refused_by_field_in_arabic_too(
    notify: Notify,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notify.stub.PreviewTemplate(
            notify_pb2.PreviewTemplateRequest(
                kind="needs_more_info", channel="sms", locale="ar", applicant_kind="company"
            ),
            metadata=(*bearer(REVIEWER), ("accept-language", "ar")),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_details(caught.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    (violation,) = bad.field_violations
    assert (violation.field, violation.description, violation.localized_message.message) == (
        "applicant_kind",
        "citizen, resident or establishment (empty: an individual)",
        "citizen أو resident أو establishment (فارغ: فرد)",
    )


ESTABLISHMENT = "7001234567"
MUQEEM = IDENTITY.token_for(Principal(ESTABLISHMENT, Role.ESTABLISHMENT))


@pytest.mark.parametrize(
    ("applicant", "kind", "token", "said"),
    [
        # Muqeem's words, as the establishment portal shows the request (SPEC §2: returned to
        # applicant, معاد لمقدم الطلب).
        (ESTABLISHMENT, "establishment", MUQEEM, "Your request TW482913578 has been returned"),
        (APPLICANT, "citizen", OWNER, "Your request TW482913578 needs additional action"),
    ],
)
async def test_a_request_waiting_on_its_beneficiary_is_told_in_their_portals_words(
    notify: Notify, applicant: str, kind: str, token: str, said: str
) -> None:
    request = submitted(applicant=applicant, kind=kind, locale="en")
    await notify.consume(request)
    asked = status_changed(
        request,
        common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
        sequence=1,
        missing=[common_pb2.MissingItem(kind="document", name="passport", description="Passport")],
    )
    await notify.consume(asked, topic=REQUEST_STATUS_CHANGED)

    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(token))
    (message,) = [m for m in inbox.messages if m.kind == "needs_more_info"]
    assert message.text.startswith(said), message.text
    (sms,) = [m["text"] for m in await notify.sms() if "Passport" in m["text"]]
    assert ("returned to you" in sms) is (kind == "establishment"), sms
    async with notify.engine.connect() as conn:
        row = (await conn.execute(select(tables.request_access))).one()
    assert (row.applicant_id, row.applicant_kind) == (applicant, kind)


async def test_a_status_change_told_before_its_submission_is_recorded_is_in_abshers_words(
    notify: Notify,
) -> None:
    """One poll applies its topics at once: the change may be read before the submission
    that says an establishment filed the request. Once that is recorded, the next change is
    in Muqeem's words; routing's decision, which does not say who filed it, keeps it."""
    request = submitted(applicant=ESTABLISHMENT, kind="establishment", locale="en")

    def asked(sequence: int) -> events_pb2.Envelope:
        return status_changed(request, common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO, sequence=sequence)

    await notify.consume(asked(1), topic=REQUEST_STATUS_CHANGED)
    await notify.consume(request)
    routing = routed(request, "visas", 1)
    routing.request_routed.applicant_id = ESTABLISHMENT
    await notify.consume(routing, topic=REQUEST_ROUTED)
    await notify.consume(asked(3), topic=REQUEST_STATUS_CHANGED)

    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(MUQEEM))
    asked_for = [m for m in inbox.messages if m.kind == "needs_more_info"]
    told = sorted(asked_for, key=lambda m: m.created_at.ToDatetime())
    assert [m.text.split(".")[0] for m in told] == [
        "Your request TW482913578 needs additional action",
        "Your request TW482913578 has been returned to you for completion",
    ]


@pytest.mark.parametrize(
    ("applicant", "kind", "token", "why"),
    [
        (
            ESTABLISHMENT,
            "establishment",
            MUQEEM,
            "the worker it is about is no longer sponsored by your establishment",
        ),
        (APPLICANT, "citizen", OWNER, "the person it is about is no longer on your record"),
    ],
)
async def test_the_offices_cancellation_tells_the_old_account_why_not_as_it_asked(
    notify: Notify, applicant: str, kind: str, token: str, why: str
) -> None:
    """Intake cancelled the request for its account: the registry has the person off its record
    (a worker transferred to a new sponsor, a dependent moved to another family record) and
    another account filed for them. The account is told why and that it can no longer act on
    it, not that it cancelled it; the claim that crossed it is not told, as after its own."""
    request = submitted(applicant=applicant, kind=kind, locale="en")
    await notify.consume(request)
    cancelled = cancelled_by_intake(
        request,
        datetime.now(UTC),
        reason="cancelled automatically: the person is no longer on the account's record",
        applicant_id=applicant,
        off_record=True,
    )
    await notify.consume(cancelled, topic=APPLICANT_ACTIONS)
    await notify.consume(cancelled, topic=APPLICANT_ACTIONS)  # read again
    crossed = status_changed(request, common_pb2.REQUEST_STATUS_UNDER_REVIEW, sequence=1)
    await notify.consume(crossed, topic=REQUEST_STATUS_CHANGED)

    texts = [m["text"] for m in await notify.sms()]
    assert len(texts) == 2
    assert texts[1] == (
        f"Your Tawasul request TW482913578 has been cancelled: {why}, so you can no longer act"
        " on it."
    )
    mails = await asyncio.to_thread(received, notify.maildir)
    body = mails[1].get_body(("plain",))
    assert body is not None
    assert "not at your request" in body.get_content()
    assert "as you asked" not in body.get_content()
    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(token))
    assert sorted(m.kind for m in inbox.messages) == ["cancelled_off_record", "submitted"]
    (message,) = [m for m in inbox.messages if m.kind == "cancelled_off_record"]
    assert message.text.endswith("You can no longer act on it."), message.text


async def test_the_offices_cancellation_restated_by_review_first_is_told_as_the_office_s(
    notify: Notify,
) -> None:
    """The sweep closed the request, then the office's cancellation (made by the deadline)
    reached review, which restates it as the system's: read before intake's RequestCancelled,
    it is the one told, in the office's words, and intake's is the repeat."""
    request = submitted(applicant=APPLICANT, kind="citizen", locale="en")
    await notify.consume(request)
    made = datetime.now(UTC)
    restated = status_changed(
        request, common_pb2.REQUEST_STATUS_CANCELLED, sequence=3, actor_id="system"
    )
    restated.occurred_at.CopyFrom(timestamp(made))
    await notify.consume(restated, topic=REQUEST_STATUS_CHANGED)
    cancelled = cancelled_by_intake(request, made, off_record=True)
    await notify.consume(cancelled, topic=APPLICANT_ACTIONS)

    texts = [m["text"] for m in await notify.sms()]
    assert texts[1:] == [
        "Your Tawasul request TW482913578 has been cancelled: the person it is about is no"
        " longer on your record, so you can no longer act on it."
    ]


async def test_the_offices_cancellation_after_the_decision_is_not_told_as_the_accounts(
    notify: Notify,
) -> None:
    """Review decided before the office's cancellation reached it, and restates the decision
    (cancel-too-late, by the system): the old account is told the decision stands, not that
    its own cancellation came too late (it made none)."""
    request = submitted(applicant=APPLICANT, kind="citizen", locale="en")
    await notify.consume(request)
    restated = status_changed(
        request,
        common_pb2.REQUEST_STATUS_ACCEPTED,
        sequence=4,
        cancel_too_late=True,
        actor_id="system",
    )
    await notify.consume(restated, topic=REQUEST_STATUS_CHANGED)

    texts = [m["text"] for m in await notify.sms()]
    assert texts[1:] == [
        "Your Tawasul request TW482913578 was not cancelled: it had already been accepted"
        " before the office's cancellation took effect, and that stands."
    ]
    mails = await asyncio.to_thread(received, notify.maildir)
    body = mails[1].get_body(("plain",))
    assert body is not None
    assert "your cancellation" not in body.get_content()
    assert "the office's cancellation" in body.get_content()


async def test_access_rows_from_before_take_the_applicants_kind_from_their_number(
    database_url: str,
) -> None:
    """Migration 0011, as intake's 0010: a citizen's number starts with 1, a resident's with
    2, and any other is an establishment's."""
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url, "0010")
    numbers = {"1000000008": "citizen", "2000000007": "resident", ESTABLISHMENT: "establishment"}
    engine = async_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for number in numbers:
                await conn.execute(
                    text(
                        "INSERT INTO request_access (request_id, applicant_id, department)"
                        " VALUES (:id, :number, 'residents')"
                    ),
                    {"id": uuid.uuid4(), "number": number},
                )
        await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
        async with engine.connect() as conn:
            t = tables.request_access.c
            rows = (await conn.execute(select(t.applicant_id, t.applicant_kind))).all()
    finally:
        await engine.dispose()
    assert dict(rows) == numbers


async def test_a_request_event_without_its_applicant_or_department_is_refused(
    notify: Notify,
) -> None:
    event = submitted()
    event.request_submitted.applicant_id = ""
    event.request_submitted.department_code = ""
    with pytest.raises(InvalidArgument) as caught:
        await notify.subscriptions.deliver(REQUEST_SUBMITTED, event)
    assert caught.value.violations == {"applicant_id": "missing", "department_code": "missing"}


async def test_a_polls_requests_record_each_ones_latest_department_once(notify: Notify) -> None:
    first, other = submitted(), submitted()
    to_visas, back_home = routed(first, "visas"), routed(first, "residents")
    await notify.subscriptions.deliver(REQUEST_ROUTED, first, to_visas, other)
    # to_visas again: applied already
    await notify.subscriptions.deliver(REQUEST_ROUTED, back_home, to_visas)

    async with notify.engine.connect() as conn:
        rows = (await conn.execute(select(tables.request_access))).all()
    assert {(str(r.request_id), r.applicant_id, r.department) for r in rows} == {
        (first.request_id, APPLICANT, "residents"),
        (other.request_id, APPLICANT, "residents"),
    }


async def test_a_routing_older_than_one_recorded_leaves_the_department(
    notify: Notify, caplog: pytest.LogCaptureFixture
) -> None:
    """A routing from before a transfer, replayed from the dead letters (or late), would give
    the deliveries back to the department the request left."""
    request = submitted()

    async def department() -> tuple[str, int]:
        async with notify.engine.connect() as conn:
            row = (await conn.execute(select(tables.request_access))).one()
        return row.department, row.routed_sequence

    await notify.subscriptions.deliver(REQUEST_ROUTED, routed(request, "visas", 3))
    await notify.subscriptions.deliver(REQUEST_ROUTED, routed(request, "residents", 2))
    await notify.subscriptions.deliver(REQUEST_ROUTED, routed(request, "reports", 3))
    assert await department() == ("visas", 3)
    # A poll's are applied in order: a later one moves it, an older one after it does not.
    await notify.subscriptions.deliver(
        REQUEST_ROUTED, routed(request, "reports", 4), routed(request, "residents", 2)
    )
    assert await department() == ("reports", 4)
    await notify.subscriptions.deliver(
        REQUEST_ROUTED, routed(request, "residents", 1), routed(request, "visas", 5)
    )
    assert await department() == ("visas", 5)
    # The submission never replaces routing's; one from before routing counted (0) does.
    await notify.consume(request)
    await notify.subscriptions.deliver(REQUEST_ROUTED, routed(request, "passports"))
    assert await department() == ("passports", 5)
    skipped = [r.getMessage() for r in caplog.records if "skipping routing" in r.getMessage()]
    # (residents 1, followed in its poll by visas 5, is never written: no need to say so.)
    assert [m.split(" to ")[1].split(":")[0] for m in skipped] == [
        "residents",
        "reports",
        "residents",
    ]


async def test_routing_numbering_its_decisions_again_after_a_restore_still_moves_the_department(
    notify: Notify,
) -> None:
    request = submitted()

    async def department() -> tuple[str, int, int]:
        async with notify.engine.connect() as conn:
            row = (await conn.execute(select(tables.request_access))).one()
        return row.department, row.routed_transfer, row.routed_sequence

    await notify.subscriptions.deliver(
        REQUEST_ROUTED, routed(request, "residents", 1), routed(request, "visas", 3, transfer=4)
    )
    # Routing's database put back to a backup and its topics replayed: it numbers its
    # decisions again, fewer of them. Those of before the transfer to visas move nothing; the
    # one after review's next transfer moves the department, numbered 2 as it is.
    await notify.subscriptions.deliver(
        REQUEST_ROUTED, routed(request, "residents", 1), routed(request, "visas", 2, transfer=4)
    )
    assert await department() == ("visas", 4, 3)
    await notify.subscriptions.deliver(REQUEST_ROUTED, routed(request, "reports", 2, transfer=7))
    assert await department() == ("reports", 7, 2)
    await notify.subscriptions.deliver(REQUEST_ROUTED, routed(request, "visas", 3, transfer=4))
    assert await department() == ("reports", 7, 2)


async def test_routings_department_stands_whichever_topic_is_applied_first(
    notify: Notify,
) -> None:
    # One poll holding both topics applies them at once, in two transactions: the submission's
    # may commit after routing's, and its catalog department must not undo routing's decision.
    late, early = submitted(), submitted()
    await notify.consume(routed(late, "visas"), topic=REQUEST_ROUTED)
    await notify.consume(late)
    await notify.consume(early)
    await notify.consume(routed(early, "visas"), topic=REQUEST_ROUTED)

    async with notify.engine.connect() as conn:
        rows = (await conn.execute(select(tables.request_access))).all()
    assert {(str(r.request_id), r.applicant_id, r.department) for r in rows} == {
        (late.request_id, APPLICANT, "visas"),
        (early.request_id, APPLICANT, "visas"),
    }
    visas = IDENTITY.token_for(Principal("E3003", Role.REVIEWER, frozenset({"visas"})))
    for event in (late, early):
        asked = notify_pb2.ListDeliveriesRequest(request_id=event.request_id)
        told = await notify.stub.ListDeliveries(asked, metadata=bearer(visas))
        assert {d.channel for d in told.deliveries} == {"sms", "email", "inapp"}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await notify.stub.ListDeliveries(asked, metadata=bearer(REVIEWER))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_polls_events_are_told_in_app_once_each(notify: Notify) -> None:
    first, second = submitted(mobile=""), submitted(mobile="")
    for event in (first, second):
        event.request_submitted.contact.email = ""
    await notify.consume(first, second, first)
    await notify.consume(second)  # read again

    inbox = await notify.stub.ListInbox(notify_pb2.ListInboxRequest(), metadata=bearer(OWNER))
    assert sorted(m.request_id for m in inbox.messages) == sorted(
        [first.request_id, second.request_id]
    )
    assert inbox.unread == 2
    results = await notify.results()
    assert sorted((r.request_id, r.channel, r.status) for r in results) == sorted(
        [(first.request_id, "inapp", "delivered"), (second.request_id, "inapp", "delivered")]
    )


# --- every event delivered again, on PostgreSQL -------------------------------------------
# Kafka delivers at least once. A state machine (hypothesis) takes one request through its
# submission, routing and review's status changes, the beneficiary's actions and SLA alerts,
# each consumed as the group does (the woken senders then make a pass), and at random moments
# delivers every event consumed so far once more: no text or e-mail may go out again (the
# stand-ins count them), and the deliveries, the inbox, who may read them and what notify
# published must not change.

SAYS = (
    common_pb2.REQUEST_STATUS_UNDER_REVIEW,
    common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
    common_pb2.REQUEST_STATUS_ACCEPTED,
    common_pb2.REQUEST_STATUS_REJECTED,
    common_pb2.REQUEST_STATUS_CLOSED,
    common_pb2.REQUEST_STATUS_TRANSFERRED,
    common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT,
)


class Redelivery(RuleBasedStateMachine):
    def __init__(self, notify: Notify, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.notify, self.loop = notify, loop
        on_loop(loop, emptied(notify.engine, tables.metadata))
        self.request = submitted(locale="en")
        self.consumed: list[tuple[str, events_pb2.Envelope]] = []

    def consume(self, topic: str, event: events_pb2.Envelope) -> None:
        """Consumed and kept to deliver again, unless the group would dead-letter it."""
        try:
            on_loop(self.loop, self.notify.consume(event, topic=topic))
        except InvalidArgument:
            return
        self.consumed.append((topic, event))

    async def _sent(self) -> tuple[object, ...]:
        d, i, a, o = tables.deliveries, tables.inbox_messages, tables.request_access, tables.outbox
        key = uuid.UUID(self.request.request_id)
        async with self.notify.engine.connect() as conn:
            rows = [
                (
                    await conn.execute(
                        select(t).where(t.c.request_id == key).order_by(*t.primary_key)
                    )
                ).all()
                for t in (d, i, a)
            ]
            published = (await conn.execute(select(o.c.payload).order_by(o.c.id))).all()
        mails = len(mailbox.Maildir(self.notify.maildir, create=False))
        return len(await self.notify.sms()), mails, rows, published

    @rule()
    def submission(self) -> None:
        self.consume(REQUEST_SUBMITTED, self.request)

    @rule(department=st.sampled_from(("residents", "reports")))
    def placed(self, department: str) -> None:
        self.consume(REQUEST_ROUTED, routed(self.request, department))

    @rule(status=st.sampled_from(SAYS))
    def review_says(self, status: common_pb2.RequestStatus.ValueType) -> None:
        self.consume(REQUEST_STATUS_CHANGED, status_changed(self.request, status, message="Why"))

    @rule(action=st.sampled_from(("cancel", "follow_up", "appeal")))
    def beneficiary(self, action: str) -> None:
        r = self.request.request_submitted
        contact = common_pb2.Contact(mobile=MOBILE, email=EMAIL, locale="en")
        event = events_pb2.Envelope(event_id=str(uuid.uuid4()), request_id=r.request_id)
        if action == "appeal":
            event = appealed(self.request, locale="en")
        elif action == "cancel":
            event.request_cancelled.CopyFrom(
                events_pb2.RequestCancelled(
                    request_id=r.request_id,
                    request_number=r.request_number,
                    reason="Done",
                    contact=contact,
                    applicant_id=APPLICANT,
                )
            )
        else:
            event.request_followed_up.CopyFrom(
                events_pb2.RequestFollowedUp(
                    request_id=r.request_id,
                    request_number=r.request_number,
                    follow_up_count=1,
                    contact=contact,
                )
            )
        self.consume(APPLICANT_ACTIONS, event)

    @precondition(lambda self: bool(self.consumed))
    @rule()
    def again(self) -> None:
        """Every event consumed so far, consumed once more: the request has moved on since."""
        before = on_loop(self.loop, self._sent())
        for topic, event in self.consumed:
            on_loop(self.loop, self.notify.consume(event, topic=topic))
            assert on_loop(self.loop, self._sent()) == before


async def test_every_event_delivered_again_sends_nothing_more(notify: Notify) -> None:
    loop = asyncio.get_running_loop()

    class Run(Redelivery):
        def __init__(self) -> None:
            super().__init__(notify, loop)

    await asyncio.to_thread(
        run_state_machine_as_test,
        Run,
        settings=settings(
            max_examples=30, stateful_step_count=20, deadline=None, derandomize=True, database=None
        ),
    )
