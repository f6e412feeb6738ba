import uuid
from datetime import UTC, datetime, timedelta
from typing import Self

import pytest
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_platform.errors import InvalidArgument, NotFound
from tawasul_platform.events import timestamp
from tawasul_platform.testing import FakeInbox, FakeTransaction
from tawasul_routing.adapters.events import from_submitted, to_event
from tawasul_routing.adapters.rules import load_rules
from tawasul_routing.app import handlers
from tawasul_routing.domain.model import (
    Decision,
    IncomingRequest,
    RequestRouted,
    decide,
)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SUBMITTED = NOW - timedelta(minutes=1)


def incoming(
    code: str = "visas.cancel-visa",
    *,
    kind: str = "citizen",
    nationality: str = "SAU",
    fields: dict[str, str] | None = None,
) -> IncomingRequest:
    return IncomingRequest(
        request_id=uuid.uuid4(),
        request_number="TW2600000001",
        sub_service_code=code,
        description="Cancel exit re-entry visa 123 issued by mistake",
        applicant_id="1000000008",
        document_ids=(),
        mobile="+966551234567",
        email="",
        locale="ar",
        submitted_at=SUBMITTED,
        catalog_version=2,
        subject_id="1000000008",
        fields=fields or {},
        applicant_kind=kind,
        subject_nationality=nationality,
        channel="web",
    )


class FakeUnitOfWork(FakeTransaction, FakeInbox):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[uuid.UUID, list[Decision]] = {}
        self.published: list[RequestRouted] = []

    @property
    def decisions(self) -> Self:
        return self

    async def add(self, decision: Decision) -> None:
        self.rows.setdefault(decision.request.request_id, []).append(decision)

    async def get(self, request_id: uuid.UUID) -> Decision | None:
        decisions = self.rows.get(request_id)
        return decisions[-1] if decisions else None

    async def commit(self) -> None:
        for decisions in self.rows.values():
            for decision in decisions:
                self.published.extend(decision.events)
                decision.events.clear()


async def routed(request: IncomingRequest) -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    await handlers.route_request(
        uow=uow, event_id="submitted", request=request, rules=load_rules(), now=NOW
    )
    return uow


@pytest.mark.parametrize(
    ("code", "department"),
    [
        ("visas.cancel-visa", "visas"),
        ("passports.lost-passport-report", "passports"),
        ("residents.visit-visa-extension", "residents"),
        ("reports.general-inquiry", "reports"),
    ],
)
async def test_the_catalog_decides_the_department_queue_by_default(
    code: str, department: str
) -> None:
    request = incoming(code)
    uow = await routed(request)
    decision = await handlers.get_decision(uow=uow, request_id=request.request_id)
    assert (decision.department, decision.queue, decision.priority) == (
        department,
        f"{department}.default",
        0,
    )
    assert (decision.rule, decision.decided_at) == ("rules.v1:default", NOW)
    assert [e.decision for e in uow.published] == [decision]


async def test_a_rule_decides_the_queue_and_priority_and_is_recorded() -> None:
    request = incoming("reports.absence-report", kind="establishment")
    uow = await routed(request)
    decision = await handlers.get_decision(uow=uow, request_id=request.request_id)
    assert (decision.queue, decision.priority, decision.rule) == (
        "reports.establishments",
        20,
        "rules.v1:establishment-absence-report",
    )


async def test_a_redelivered_or_repeated_request_is_routed_once() -> None:
    uow = FakeUnitOfWork()
    request = incoming()
    for event_id in ("e1", "e1", "e2"):
        await handlers.route_request(
            uow=uow, event_id=event_id, request=request, rules=load_rules(), now=NOW
        )
    assert len(uow.published) == 1


async def test_an_unknown_sub_service_cannot_be_routed() -> None:
    with pytest.raises(InvalidArgument):
        await handlers.route_request(
            uow=FakeUnitOfWork(),
            event_id="e1",
            request=incoming("nope"),
            rules=load_rules(),
            now=NOW,
        )


async def test_an_unrouted_request_has_no_decision() -> None:
    with pytest.raises(NotFound):
        await handlers.get_decision(uow=FakeUnitOfWork(), request_id=uuid.uuid4())


# The wire


def test_the_routed_event_carries_the_request_through() -> None:
    submitted = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        request_submitted=events_pb2.RequestSubmitted(
            request_id=str(uuid.uuid4()),
            request_number="TW261234567",
            sub_service_code="passports.lost-passport-report",
            description="Lost my passport in Cairo on the way to the airport",
            applicant_id="1000000008",
            document_ids=["d1"],
            contact=common_pb2.Contact(mobile="+966551234567", email="a@b.sa", locale="en"),
            submitted_at=timestamp(SUBMITTED),
            subject_id="1023456781",
            fields={"loss_place": "outside_kingdom", "loss_city": "Cairo"},
            catalog_version=2,
            applicant_kind="citizen",
            subject_nationality="SAU",
            channel="mobile",
        ),
    )
    request = from_submitted(submitted)
    decision = decide(request, load_rules(), NOW)
    routed_event = events_pb2.Envelope.FromString(to_event(RequestRouted(decision)).payload)
    r = routed_event.request_routed
    s = submitted.request_submitted
    assert (r.request_id, r.request_number, r.sub_service_code) == (
        s.request_id,
        s.request_number,
        s.sub_service_code,
    )
    assert (r.description, r.applicant_id, list(r.document_ids), r.contact) == (
        s.description,
        s.applicant_id,
        ["d1"],
        s.contact,
    )
    assert (r.submitted_at, r.catalog_version, r.subject_id, dict(r.fields)) == (
        s.submitted_at,
        2,
        "1023456781",
        dict(s.fields),
    )
    assert (r.applicant_kind, r.subject_nationality, r.channel) == ("citizen", "SAU", "mobile")
    assert (r.department_code, r.queue, r.priority, r.rule) == (
        "passports",
        "passports.default",
        30,
        "rules.v1:lost-passport-abroad",
    )
    assert (routed_event.event_type, routed_event.request_id) == (
        "tawasul.requests.routed",
        s.request_id,
    )
