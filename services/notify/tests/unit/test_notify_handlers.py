"""Notify's use cases and subscribers with an in-memory unit of work and SMS gateway."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import pytest
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_notify.adapters.events import to_event
from tawasul_notify.app import handlers
from tawasul_notify.app.ports import GatewayUnavailable
from tawasul_notify.domain.model import (
    Channel,
    Delivery,
    DeliveryRecorded,
    DeliveryStatus,
    Notice,
    NoticeKind,
    SendOutcome,
    delivery_id_for,
)
from tawasul_notify.entrypoints.events import on_status_changed, on_submitted
from tawasul_platform.errors import InvalidArgument, PermissionDenied
from tawasul_platform.identity import Principal, Role
from tawasul_platform.topics import NOTIFICATION_EVENTS

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
REVIEWER = Principal("E1001", Role.REVIEWER, frozenset({"residents"}))
CITIZEN = Principal("1000000008", Role.CITIZEN)


class FakeDeliveries:
    def __init__(self, rows: list[Delivery]) -> None:
        self._rows = rows
        self.pending: list[Delivery] = []

    async def add(self, delivery: Delivery) -> None:
        self.pending.append(delivery)

    async def list_for_request(self, request_id: uuid.UUID) -> list[Delivery]:
        found = [d for d in self._rows if d.request_id == request_id]
        return sorted(found, key=lambda d: (d.created_at, d.id))


class FakeUnitOfWork:
    """Commits deliveries, inbox claims and their events together, like the SQL one."""

    def __init__(self) -> None:
        self.rows: list[Delivery] = []
        self.inbox: set[tuple[str, str]] = set()
        self.published: list[DeliveryRecorded] = []
        self.deliveries = FakeDeliveries(self.rows)
        self._claims: set[tuple[str, str]] = set()

    async def __aenter__(self) -> Self:
        self.deliveries = FakeDeliveries(self.rows)
        self._claims = set()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._claims.clear()
        self.deliveries.pending.clear()

    async def seen_event(self, consumer: str, event_id: str) -> bool:
        return (consumer, event_id) in self.inbox

    async def claim_event(self, consumer: str, event_id: str) -> bool:
        key = (consumer, event_id)
        if key in self.inbox or key in self._claims:
            return False
        self._claims.add(key)
        return True

    async def commit(self) -> None:
        causes = {(d.cause_event_id, d.channel) for d in self.rows}
        for delivery in self.deliveries.pending:
            assert (delivery.cause_event_id, delivery.channel) not in causes, "unique violated"
            self.rows.append(delivery)
            self.published.extend(delivery.events)
            delivery.events.clear()
        self.inbox |= self._claims
        self._claims.clear()
        self.deliveries.pending.clear()


class FakeGateway:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.outcome = SendOutcome(accepted=True, provider_message_id="prov-1")
        self.failures = 0

    async def send(self, *, to: str, text: str, reference: str) -> SendOutcome:
        if self.failures:
            self.failures -= 1
            raise GatewayUnavailable("503")
        self.sent.append((to, text, reference))
        return self.outcome


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


def submitted_notice(*, locale: str = "ar", request_id: uuid.UUID | None = None) -> Notice:
    return Notice.create(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        kind=NoticeKind.SUBMITTED,
        request_id=str(request_id or uuid.uuid4()),
        request_number="TW2600000042",
        mobile="+966512345678",
        locale=locale,
    )


async def test_sends_records_and_publishes_once(uow: FakeUnitOfWork, gateway: FakeGateway) -> None:
    notice = submitted_notice()
    delivery = await handlers.notify_beneficiary(uow=uow, gateway=gateway, notice=notice, now=NOW)
    assert delivery is not None
    reference = str(delivery_id_for(notice.event_id, Channel.SMS))
    [(to, text, sent_reference)] = gateway.sent
    assert (to, sent_reference) == ("+966512345678", reference)
    assert "TW2600000042" in text
    assert uow.rows == [delivery]
    assert delivery.status is DeliveryStatus.ACCEPTED
    assert delivery.provider_message_id == "prov-1"
    assert str(delivery.id) == reference
    assert [e.delivery for e in uow.published] == [delivery]
    assert ("notify", str(notice.event_id)) in uow.inbox


async def test_a_redelivered_event_sends_nothing_more(
    uow: FakeUnitOfWork, gateway: FakeGateway
) -> None:
    notice = submitted_notice()
    await handlers.notify_beneficiary(uow=uow, gateway=gateway, notice=notice, now=NOW)
    again = await handlers.notify_beneficiary(uow=uow, gateway=gateway, notice=notice, now=NOW)
    assert again is None
    assert len(gateway.sent) == 1
    assert len(uow.rows) == 1
    assert len(uow.published) == 1


async def test_a_refused_message_is_recorded_as_failed(
    uow: FakeUnitOfWork, gateway: FakeGateway
) -> None:
    gateway.outcome = SendOutcome(accepted=False, detail="400: bad number")
    delivery = await handlers.notify_beneficiary(
        uow=uow, gateway=gateway, notice=submitted_notice(), now=NOW
    )
    assert delivery is not None
    assert delivery.status is DeliveryStatus.FAILED
    assert uow.published[0].delivery.status is DeliveryStatus.FAILED


async def test_an_unreachable_gateway_records_nothing_so_a_retry_can_send(
    uow: FakeUnitOfWork, gateway: FakeGateway
) -> None:
    notice = submitted_notice()
    gateway.failures = 1
    with pytest.raises(GatewayUnavailable):
        await handlers.notify_beneficiary(uow=uow, gateway=gateway, notice=notice, now=NOW)
    assert not uow.rows
    assert not uow.inbox
    retried = await handlers.notify_beneficiary(uow=uow, gateway=gateway, notice=notice, now=NOW)
    assert retried is not None
    assert len(uow.rows) == 1


async def test_a_concurrent_copy_that_committed_first_wins(
    uow: FakeUnitOfWork, gateway: FakeGateway
) -> None:
    notice = submitted_notice()

    class SlowGateway(FakeGateway):
        async def send(self, *, to: str, text: str, reference: str) -> SendOutcome:
            # The other copy of the event commits while this one waits for the gateway.
            uow.inbox.add(("notify", str(notice.event_id)))
            return await super().send(to=to, text=text, reference=reference)

    result = await handlers.notify_beneficiary(
        uow=uow, gateway=SlowGateway(), notice=notice, now=NOW
    )
    assert result is None
    assert not uow.rows


async def test_deliveries_are_listed_oldest_first_for_reviewers(
    uow: FakeUnitOfWork, gateway: FakeGateway
) -> None:
    request_id = uuid.uuid4()
    for minutes in (5, 0, 10):
        await handlers.notify_beneficiary(
            uow=uow,
            gateway=gateway,
            notice=submitted_notice(request_id=request_id),
            now=NOW + timedelta(minutes=minutes),
        )
    await handlers.notify_beneficiary(uow=uow, gateway=gateway, notice=submitted_notice(), now=NOW)
    found = await handlers.list_deliveries(uow=uow, caller=REVIEWER, request_id=str(request_id))
    assert [d.created_at for d in found] == [NOW + timedelta(minutes=m) for m in (0, 5, 10)]


async def test_only_reviewers_list_deliveries(uow: FakeUnitOfWork) -> None:
    with pytest.raises(PermissionDenied):
        await handlers.list_deliveries(uow=uow, caller=CITIZEN, request_id=str(uuid.uuid4()))


async def test_a_malformed_request_id_is_an_invalid_argument(uow: FakeUnitOfWork) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await handlers.list_deliveries(uow=uow, caller=REVIEWER, request_id="TW26")
    assert set(exc.value.violations) == {"request_id"}


def envelope(
    *,
    request_submitted: events_pb2.RequestSubmitted | None = None,
    request_status_changed: events_pb2.RequestStatusChanged | None = None,
) -> events_pb2.Envelope:
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="test",
        request_id=str(uuid.uuid4()),
        request_submitted=request_submitted,
        request_status_changed=request_status_changed,
    )


async def test_submitted_subscriber_sends_in_the_contacts_language(
    uow: FakeUnitOfWork, gateway: FakeGateway
) -> None:
    contact = common_pb2.Contact(mobile="+966512345678", locale="en")
    event = envelope(
        request_submitted=events_pb2.RequestSubmitted(
            request_number="TW2600000007", contact=contact
        )
    )
    await on_submitted(lambda: uow, gateway)(event)
    [(_, text, _)] = gateway.sent
    assert text.startswith("Your Tawasul request TW2600000007 has been received")
    assert str(uow.rows[0].request_id) == event.request_id


async def test_status_subscriber_includes_the_decision_message(
    uow: FakeUnitOfWork, gateway: FakeGateway
) -> None:
    event = envelope(
        request_status_changed=events_pb2.RequestStatusChanged(
            request_id=str(uuid.uuid4()),
            request_number="TW2600000007",
            status=common_pb2.REQUEST_STATUS_REJECTED,
            message="الصورة غير واضحة",
            contact=common_pb2.Contact(mobile="+966512345678"),
        )
    )
    await on_status_changed(lambda: uow, gateway)(event)
    [(_, text, _)] = gateway.sent
    assert "مرفوض" in text
    assert "الصورة غير واضحة" in text
    assert "TW2600000007" in text


@pytest.mark.parametrize(
    "event",
    [
        envelope(),
        envelope(
            request_status_changed=events_pb2.RequestStatusChanged(
                request_id=str(uuid.uuid4()),
                request_number="TW2600000007",
                contact=common_pb2.Contact(mobile="+966512345678"),
            )
        ),
        envelope(
            request_status_changed=events_pb2.RequestStatusChanged(
                request_id=str(uuid.uuid4()),
                request_number="TW2600000007",
                status=common_pb2.REQUEST_STATUS_ACCEPTED,
            )
        ),
    ],
)
async def test_unusable_events_are_refused_as_domain_errors(
    uow: FakeUnitOfWork, gateway: FakeGateway, event: events_pb2.Envelope
) -> None:
    # A DomainError makes the platform consumer dead-letter at once instead of retrying.
    with pytest.raises(InvalidArgument):
        await on_status_changed(lambda: uow, gateway)(event)
    assert not gateway.sent


def test_notification_sent_envelope() -> None:
    notice = submitted_notice()
    delivery = Delivery.record(
        notice=notice,
        channel=Channel.SMS,
        text="t",
        outcome=SendOutcome(accepted=True, provider_message_id="prov-9"),
        now=NOW,
    )
    outgoing = to_event(delivery.events[0])
    assert outgoing.topic == NOTIFICATION_EVENTS
    assert outgoing.key == str(notice.request_id)
    wire = events_pb2.Envelope.FromString(outgoing.payload)
    assert wire.event_type == "tawasul.notifications.sent"
    assert wire.producer == "notify"
    assert wire.event_id == str(outgoing.event_id)
    sent = wire.notification_sent
    assert sent.delivery_id == str(delivery.id)
    assert sent.cause_event_id == str(notice.event_id)
    assert (sent.status, sent.channel, sent.provider_message_id) == ("accepted", "sms", "prov-9")
    assert sent.recipient == "+966512345678"
