import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Self

import pytest
from aiokafka.structs import ConsumerRecord
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_platform.catalog import Department, Text
from tawasul_platform.consumer import EventConsumer
from tawasul_platform.errors import InvalidArgument, NotFound, Unavailable
from tawasul_platform.events import timestamp
from tawasul_platform.faults import is_transient
from tawasul_platform.identity import Principal, Role
from tawasul_platform.testing import FakeInbox, FakeStaffRecords, FakeTransaction
from tawasul_platform.topics import APPLICANT_ACTIONS, REQUEST_STATUS_CHANGED
from tawasul_routing import bootstrap
from tawasul_routing.adapters.events import (
    event_id_of,
    follow_up_of,
    from_submitted,
    to_event,
    transfer_of,
)
from tawasul_routing.adapters.repository import request_from_json, request_to_json
from tawasul_routing.adapters.rules import load_rules
from tawasul_routing.app import handlers
from tawasul_routing.domain.model import (
    Answer,
    Decision,
    FollowUp,
    IncomingRequest,
    RequestRouted,
    Transfer,
    decide,
)
from tawasul_routing.domain.rules import RoutingRules
from tawasul_routing.entrypoints.events import on_applicant_action, on_status_changed

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SUBMITTED = NOW - timedelta(minutes=1)
EVERY_DEPARTMENT = Principal(
    "E1000", Role.REVIEWER, frozenset({"passports", "visas", "residents", "reports"})
)


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
        self.follow_ups: dict[uuid.UUID, int] = {}
        self.answers: dict[uuid.UUID, dict[str, str]] = {}
        self.transfers: dict[uuid.UUID, Transfer] = {}
        self.published: list[RequestRouted] = []
        self.staff = FakeStaffRecords()

    @property
    def decisions(self) -> Self:
        return self

    async def lock(self, request_ids: Collection[uuid.UUID]) -> None:
        """One unit of work at a time: nothing runs beside it."""

    async def add(self, decision: Decision) -> None:
        self.rows.setdefault(decision.request.request_id, []).append(decision)

    async def add_all(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            await self.add(decision)

    async def routed(self, request_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        return {r for r in request_ids if self.rows.get(r)}

    async def latest(self, request_id: uuid.UUID) -> Decision | None:
        decisions = self.rows.get(request_id)
        if not decisions:
            return None
        latest = decisions[-1]
        request = self._heard(latest.request)
        return latest if request == latest.request else replace(latest, request=request, events=[])

    async def count_follow_ups(self, request_id: uuid.UUID, count: int) -> None:
        self.follow_ups[request_id] = max(count, self.follow_ups.get(request_id, 0))

    async def record_answer(self, request_id: uuid.UUID, fields: Mapping[str, str]) -> None:
        self.answers[request_id] = {**self.answers.get(request_id, {}), **fields}

    async def keep_transfer(self, transfer: Transfer) -> None:
        kept = self.transfers.get(transfer.request_id)
        if kept is None or not transfer.sequence or kept.sequence < transfer.sequence:
            sequence = max(transfer.sequence, kept.sequence if kept else 0)
            self.transfers[transfer.request_id] = replace(transfer, sequence=sequence)

    async def caught_up(
        self, requests: list[IncomingRequest]
    ) -> list[tuple[IncomingRequest, Transfer | None]]:
        return [(self._heard(r), self.transfers.get(r.request_id)) for r in requests]

    async def forget_transfers(self, request_ids: list[uuid.UUID]) -> None:
        for request_id in request_ids:
            del self.transfers[request_id]

    def _heard(self, request: IncomingRequest) -> IncomingRequest:
        return replace(
            request,
            follow_up_count=max(
                request.follow_up_count, self.follow_ups.get(request.request_id, 0)
            ),
            fields={**request.fields, **self.answers.get(request.request_id, {})},
        )

    async def commit(self) -> None:
        for decisions in self.rows.values():
            for decision in decisions:
                self.published.extend(decision.events)
                decision.events.clear()


async def latest_of(uow: FakeUnitOfWork, request: IncomingRequest) -> Decision:
    return await handlers.get_decision(
        uow=uow, request_id=request.request_id, reader=EVERY_DEPARTMENT
    )


async def routed(request: IncomingRequest) -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    await handlers.route_requests(
        uow=uow, submitted=[("submitted", request)], rules=load_rules(), now=NOW
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
    decision = await latest_of(uow, request)
    assert (decision.department, decision.queue, decision.priority) == (
        department,
        f"{department}.default",
        0,
    )
    assert (decision.rule, decision.sequence, decision.decided_at) == ("rules.v1:default", 1, NOW)
    assert [e.decision for e in uow.published] == [decision]


async def test_a_rule_decides_the_queue_and_priority_and_is_recorded() -> None:
    request = incoming("reports.absence-report", kind="establishment")
    uow = await routed(request)
    decision = await latest_of(uow, request)
    assert (decision.queue, decision.priority, decision.rule) == (
        "reports.establishments",
        20,
        "rules.v1:establishment-absence-report",
    )


async def test_a_redelivered_or_repeated_request_is_routed_once() -> None:
    uow = FakeUnitOfWork()
    request = incoming()
    for event_id in ("e1", "e1", "e2"):
        await handlers.route_requests(
            uow=uow, submitted=[(event_id, request)], rules=load_rules(), now=NOW
        )
    assert len(uow.published) == 1


async def test_an_unknown_sub_service_cannot_be_routed() -> None:
    with pytest.raises(InvalidArgument):
        await handlers.route_requests(
            uow=FakeUnitOfWork(), submitted=[("e1", incoming("nope"))], rules=load_rules(), now=NOW
        )


async def test_an_unrouted_request_has_no_decision() -> None:
    with pytest.raises(NotFound):
        await handlers.get_decision(
            uow=FakeUnitOfWork(), request_id=uuid.uuid4(), reader=EVERY_DEPARTMENT
        )


# Transfers


async def transfer(
    uow: FakeUnitOfWork,
    request: IncomingRequest,
    to: str,
    *,
    event_id: str = "moved",
    reason: str = "the visa was issued by mistake: an absence case",
) -> None:
    await handlers.transfer_request(
        uow=uow,
        event_id=event_id,
        transfer=Transfer(request_id=request.request_id, to_department=to, reason=reason),
        rules=load_rules(),
        now=NOW + timedelta(hours=1),
    )


async def test_a_transfer_routes_the_request_again_with_its_reason() -> None:
    request = incoming("residents.visit-visa-extension", nationality="YEM")
    uow = await routed(request)
    await transfer(uow, request, "reports")
    latest = await latest_of(uow, request)
    assert (latest.department, latest.queue, latest.priority, latest.rule) == (
        "reports",
        "reports.default",
        0,
        "transfer:residents->reports",
    )
    assert (latest.sequence, latest.decided_at, latest.request) == (
        2,
        NOW + timedelta(hours=1),
        request,
    )
    assert (latest.transfer_reason, latest.transferred_from) == (
        "the visa was issued by mistake: an absence case",
        "residents",
    )
    first, second = (e.decision for e in uow.published)
    assert (first.queue, first.rule) == ("residents.visit-visa", "rules.v1:visit-visa-yemen-syria")
    assert second is latest


async def test_only_the_staff_of_the_department_it_is_in_may_read_a_decision() -> None:
    request = incoming("residents.visit-visa-extension", nationality="YEM")
    uow = await routed(request)
    residents = Principal("E1001", Role.REVIEWER, frozenset({"residents"}))
    reports = Principal("E1002", Role.REVIEWER, frozenset({"reports", "visas"}))
    read = handlers.get_decision
    assert (await read(uow=uow, request_id=request.request_id, reader=residents)).queue == (
        "residents.visit-visa"
    )
    with pytest.raises(NotFound, match="in your departments"):
        await read(uow=uow, request_id=request.request_id, reader=reports)
    await transfer(uow, request, "reports")
    assert (await read(uow=uow, request_id=request.request_id, reader=reports)).queue == (
        "reports.default"
    )
    # Transferred out, it is no longer the first department's.
    with pytest.raises(NotFound, match="in your departments"):
        await read(uow=uow, request_id=request.request_id, reader=residents)


async def test_a_rule_of_the_new_department_may_still_decide_after_a_transfer() -> None:
    request = incoming("reports.absence-report", kind="establishment")
    uow = await routed(request)
    await transfer(uow, request, "residents", event_id="out")
    await transfer(uow, request, "reports", event_id="back")
    latest = await latest_of(uow, request)
    assert (latest.queue, latest.priority, latest.rule, latest.transferred_from) == (
        "reports.establishments",
        20,
        "transfer:residents->reports+rules.v1:establishment-absence-report",
        "residents",
    )
    assert [e.decision.sequence for e in uow.published] == [1, 2, 3]
    # On the wire too: consumers skip a routed event no later than one they applied.
    wire = [events_pb2.Envelope.FromString(to_event(e).payload) for e in uow.published]
    assert [e.request_routed.sequence for e in wire] == [1, 2, 3]


async def test_a_redelivered_transfer_routes_once() -> None:
    request = incoming()
    uow = await routed(request)
    for _ in range(2):
        await transfer(uow, request, "reports")
    assert len(uow.published) == 2


async def test_a_transfer_to_an_unknown_department_is_refused_routed_or_not() -> None:
    unrouted = FakeUnitOfWork()
    with pytest.raises(InvalidArgument) as caught:
        await transfer(unrouted, incoming(), "embassy")
    assert caught.value.violations == {"transfer_to_department": "not a department of catalog v6"}
    assert unrouted.transfers == {}
    request = incoming()
    uow = await routed(request)
    with pytest.raises(InvalidArgument) as caught:
        await transfer(uow, request, "embassy")
    assert caught.value.violations == {"transfer_to_department": "not a department of catalog v6"}
    assert len(uow.published) == 1


def with_embassy() -> RoutingRules:
    """The packaged rules over a catalog v7 that has a department v6 lacks, embassy."""
    packaged = load_rules()
    embassy = Department("embassy", Text("السفارات", "Embassies"), Text("", ""))
    departments = {**packaged.catalog.departments, "embassy": embassy}
    return replace(packaged, catalog=replace(packaged.catalog, version=7, departments=departments))


async def test_a_transfer_to_a_department_of_a_newer_catalog_than_routings_waits_for_it() -> None:
    # Review deployed ahead of routing: its catalog v7 has a department routing's v6 lacks.
    # Dead-lettered, the transfer left review's item TRANSFERRED for good; the consumer waits
    # it out instead (as an outage), routed or not, and routing on v7 applies it.
    request = incoming()
    transferred = common_pb2.REQUEST_STATUS_TRANSFERRED
    moved = status_changed(request.request_id, transferred, "embassy", catalog_version=7)

    async def held(uow: FakeUnitOfWork, decisions: int) -> None:
        with pytest.raises(Unavailable) as caught:
            await on_status_changed(lambda: uow, load_rules())(moved)
        assert is_transient(caught.value)
        assert str(caught.value) == (
            f"transfer of request {request.request_id} to embassy was checked against catalog"
            " v7, whose department routing's catalog v6 lacks: held until routing runs the"
            " newer one"
        )
        # Nothing kept, nothing moved: the event is read again.
        assert (uow.transfers, len(uow.published)) == ({}, decisions)

    await held(FakeUnitOfWork(), 0)
    await held(await routed(request), 1)
    uow = await routed(request)
    await on_status_changed(lambda: uow, with_embassy())(moved)
    latest = uow.rows[request.request_id][-1]
    assert (latest.department, latest.queue, latest.rule) == (
        "embassy",
        "embassy.default",
        "transfer:visas->embassy",
    )


@pytest.mark.parametrize("version", [0, 5, 6])
async def test_a_transfer_to_an_unknown_department_of_no_newer_catalog_is_refused(
    version: int,
) -> None:
    # Checked against routing's catalog or an older one (0: a review from before it said):
    # retrying cannot help.
    request = incoming()
    uow = await routed(request)
    transferred = common_pb2.REQUEST_STATUS_TRANSFERRED
    moved = status_changed(request.request_id, transferred, "embassy", catalog_version=version)
    with pytest.raises(InvalidArgument) as caught:
        await on_status_changed(lambda: uow, load_rules())(moved)
    assert not is_transient(caught.value)
    assert caught.value.violations == {"transfer_to_department": "not a department of catalog v6"}
    assert len(uow.published) == 1


async def test_a_transfer_before_the_submission_is_applied_after_its_decision() -> None:
    # After a rewind the transfer (review's fifth status change) was read first.
    request = incoming("residents.visit-visa-extension", nationality="YEM")
    uow = FakeUnitOfWork()
    handle = on_status_changed(lambda: uow, load_rules())
    transferred = common_pb2.REQUEST_STATUS_TRANSFERRED
    await handle(status_changed(request.request_id, transferred, "reports", sequence=5))
    # An older one read after it (a dead letter replayed) changes nothing.
    await handle(status_changed(request.request_id, transferred, "passports", sequence=3))
    assert uow.published == []
    await handlers.route_requests(
        uow=uow, submitted=[("replayed", request)], rules=load_rules(), now=NOW
    )
    assert [
        (d.sequence, d.queue, d.rule, d.transferred_from, d.status_sequence)
        for d in (e.decision for e in uow.published)
    ] == [
        (1, "residents.visit-visa", "rules.v1:visit-visa-yemen-syria", "", 0),
        (2, "reports.default", "transfer:residents->reports", "residents", 5),
    ]
    assert uow.published[-1].decision.transfer_reason == "belongs to reports"
    # Its sequence went with it: the older one replayed still moves nothing.
    await handle(status_changed(request.request_id, transferred, "passports", sequence=4))
    assert (await latest_of(uow, request)).department == "reports"
    assert uow.transfers == {}


async def test_a_transfer_kept_to_a_department_the_catalog_dropped_never_fails_the_submission(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = incoming("residents.visit-visa-extension", nationality="YEM")
    uow = FakeUnitOfWork()
    # Kept under a catalog that had the department; this one does not.
    await uow.decisions.keep_transfer(
        Transfer(request.request_id, "embassy", "for the embassy", sequence=5)
    )
    await handlers.route_requests(
        uow=uow, submitted=[("replayed", request)], rules=load_rules(), now=NOW
    )
    assert [(e.decision.sequence, e.decision.queue) for e in uow.published] == [
        (1, "residents.visit-visa")
    ]
    assert uow.transfers == {}
    assert "dropping the transfer of request" in caplog.text
    assert "to embassy kept before its submission: not a department of catalog v6" in caplog.text


def status_changed(
    request_id: uuid.UUID,
    status: common_pb2.RequestStatus.ValueType,
    to: str = "",
    *,
    sequence: int = 0,
    catalog_version: int = 0,
) -> events_pb2.Envelope:
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.status-changed",
        request_id=str(request_id),
        request_status_changed=events_pb2.RequestStatusChanged(
            request_id=str(request_id),
            status=status,
            transfer_to_department=to,
            internal=events_pb2.RequestStatusChanged.Internal(
                note="belongs to reports", department_code="visas"
            ),
            sequence=sequence,
            catalog_version=catalog_version,
        ),
    )


async def test_only_transfers_with_a_department_are_acted_on() -> None:
    request = incoming()
    uow = await routed(request)
    handle = on_status_changed(lambda: uow, load_rules())
    for status in (
        common_pb2.REQUEST_STATUS_UNDER_REVIEW,
        common_pb2.REQUEST_STATUS_ACCEPTED,
        common_pb2.REQUEST_STATUS_REJECTED,
        common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
    ):
        await handle(status_changed(request.request_id, status, to="reports"))
    await handle(status_changed(request.request_id, common_pb2.REQUEST_STATUS_TRANSFERRED))
    # Not even an unknown request troubles routing when the change is not a transfer.
    await handle(status_changed(uuid.uuid4(), common_pb2.REQUEST_STATUS_ACCEPTED))
    assert len(uow.published) == 1
    await handle(
        status_changed(request.request_id, common_pb2.REQUEST_STATUS_TRANSFERRED, "reports")
    )
    latest = await latest_of(uow, request)
    assert (latest.queue, latest.transfer_reason) == ("reports.default", "belongs to reports")


async def test_a_transfer_replayed_after_a_later_one_moves_the_request_no_more() -> None:
    # Review's transfer to reports was dead-lettered here and replayed after its transfer,
    # from reports, to residents: the request stays in residents.
    request = incoming()
    uow = await routed(request)
    handle = on_status_changed(lambda: uow, load_rules())
    transferred = common_pb2.REQUEST_STATUS_TRANSFERRED
    await handle(status_changed(request.request_id, transferred, "residents", sequence=5))
    await handle(status_changed(request.request_id, transferred, "reports", sequence=3))
    await handle(status_changed(request.request_id, transferred, "reports", sequence=5))
    latest = await latest_of(uow, request)
    assert (latest.department, latest.sequence, latest.status_sequence) == ("residents", 2, 5)
    assert len(uow.published) == 2
    # A later one still moves it, and one from before review stamped them (0) as ever.
    await handle(status_changed(request.request_id, transferred, "reports", sequence=7))
    await handle(status_changed(request.request_id, transferred, "passports"))
    latest = await latest_of(uow, request)
    assert (latest.department, latest.sequence, latest.status_sequence) == ("passports", 4, 7)
    # On the wire each names the latest of review's transfers it applied, which orders them
    # first: routing's own count is numbered again when a restore of its database is replayed.
    wire = [events_pb2.Envelope.FromString(to_event(e).payload) for e in uow.published]
    assert [(e.request_routed.sequence, e.request_routed.transfer_sequence) for e in wire] == [
        (1, 0),
        (2, 5),
        (3, 7),
        (4, 7),
    ]


def test_a_status_change_names_its_transfer() -> None:
    request_id = uuid.uuid4()
    assert transfer_of(
        status_changed(request_id, common_pb2.REQUEST_STATUS_TRANSFERRED, "reports")
    ) == Transfer(request_id=request_id, to_department="reports", reason="belongs to reports")
    assert transfer_of(
        status_changed(
            request_id, common_pb2.REQUEST_STATUS_TRANSFERRED, "reports", catalog_version=7
        )
    ) == Transfer(request_id, "reports", "belongs to reports", catalog_version=7)
    with pytest.raises(InvalidArgument):
        transfer_of(events_pb2.Envelope(event_id=str(uuid.uuid4())))


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
            cites_request_number="TW251234560",
            department_code="passports",
        ),
    )
    request = from_submitted(submitted, NOW)
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
    assert (r.transfer_reason, r.transferred_from) == ("", "")
    # The rejected request it corrects reaches its reviewer (SPEC §2), after a transfer too.
    assert r.cites_request_number == "TW251234560"
    assert request_from_json(request_to_json(request), NOW).cites_request_number == "TW251234560"
    # Where it goes should routing's catalog drop its sub-service before it is routed.
    assert request.department_code == "passports"
    assert request_from_json(request_to_json(request), NOW) == request
    assert (routed_event.event_type, routed_event.request_id) == (
        "tawasul.requests.routed",
        s.request_id,
    )


def test_an_event_that_cannot_be_applied_is_refused_as_such_not_retried() -> None:
    # InvalidArgument is a DomainError: the consumer dead-letters it at once.
    submitted = events_pb2.Envelope(
        event_id="evt-123",
        request_submitted=events_pb2.RequestSubmitted(
            request_id=str(uuid.uuid4()), sub_service_code="reports.general-inquiry"
        ),
    )
    with pytest.raises(InvalidArgument) as caught:
        event_id_of(submitted)
    assert caught.value.violations == {"event_id": "not a UUID"}
    submitted.request_submitted.submitted_at.seconds = 2**62
    with pytest.raises(InvalidArgument) as caught:
        from_submitted(submitted, NOW)
    assert caught.value.violations == {"submitted_at": "not a valid time"}
    submitted.ClearField("request_submitted")
    submitted.request_submitted.request_id = str(uuid.uuid4())
    submitted.occurred_at.nanos = 10**9
    with pytest.raises(InvalidArgument) as caught:
        from_submitted(submitted, NOW)
    assert caught.value.violations == {"occurred_at": "not a valid time"}
    # Counts and sequences past PostgreSQL's integer.
    with pytest.raises(InvalidArgument) as caught:
        follow_up_of(followed_up(uuid.uuid4(), 2**31))
    assert set(caught.value.violations) == {"follow_up_count"}
    move = status_changed(uuid.uuid4(), common_pb2.REQUEST_STATUS_TRANSFERRED, "reports")
    move.request_status_changed.sequence = 2**32 - 1
    with pytest.raises(InvalidArgument) as caught:
        transfer_of(move)
    assert set(caught.value.violations) == {"sequence"}


def test_a_submitted_event_without_any_time_counts_from_its_arrival() -> None:
    bare = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        request_submitted=events_pb2.RequestSubmitted(
            request_id=str(uuid.uuid4()),
            request_number="TW482913578",
            sub_service_code="reports.general-inquiry",
        ),
    )
    assert from_submitted(bare, NOW).submitted_at == NOW


# Follow-ups


def followed_up(request_id: uuid.UUID, count: int, event_id: str = "") -> events_pb2.Envelope:
    return events_pb2.Envelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type="tawasul.requests.followed-up",
        request_id=str(request_id),
        request_followed_up=events_pb2.RequestFollowedUp(
            request_id=str(request_id), follow_up_count=count, message="Any news?"
        ),
    )


async def test_the_second_follow_up_raises_the_priority_where_the_request_is() -> None:
    request = incoming()
    uow = await routed(request)
    handle = on_applicant_action(lambda: uow, load_rules())
    await handle(followed_up(request.request_id, 1))
    assert [e.decision.sequence for e in uow.published] == [1]
    second = followed_up(request.request_id, 2)
    await handle(second)
    await handle(second)  # redelivered
    latest = await latest_of(uow, request)
    assert (latest.sequence, latest.department, latest.queue, latest.priority) == (
        2,
        "visas",
        "visas.default",
        15,
    )
    assert latest.rule == "follow-up+rules.v1:repeated-follow-ups"
    assert (latest.request.follow_up_count, latest.transfer_reason) == (2, "")
    # A third follows the same rule, and a late copy of the second counts no more.
    await handle(followed_up(request.request_id, 3))
    await handle(followed_up(request.request_id, 2))
    assert [e.decision for e in uow.published][1:] == [latest]


async def test_a_raise_after_a_transfer_keeps_the_transfers_reason_and_origin() -> None:
    request = incoming("visas.change-visa-duration", fields={"holder_location": "inside"})
    uow = await routed(request)
    await transfer(uow, request, "reports", reason="an absence matter")
    handle = on_applicant_action(lambda: uow, load_rules())
    await handle(followed_up(request.request_id, 2))
    await handle(answered(request.request_id, {"holder_location": "outside"}))
    raised = [e.decision for e in uow.published][2:]
    assert [(d.priority, d.rule) for d in raised] == [
        (15, "follow-up+rules.v1:repeated-follow-ups"),
        (20, "answer+rules.v1:visa-holder-abroad"),
    ]
    for decision in raised:
        assert (decision.department, decision.transfer_reason, decision.transferred_from) == (
            "reports",
            "an absence matter",
            "visas",
        )
    wire = events_pb2.Envelope.FromString(to_event(uow.published[-1]).payload).request_routed
    assert (wire.transfer_reason, wire.transferred_from) == ("an absence matter", "visas")


async def test_follow_ups_never_lower_a_higher_priority() -> None:
    request = incoming("reports.absence-report", kind="establishment")
    uow = await routed(request)
    await on_applicant_action(lambda: uow, load_rules())(followed_up(request.request_id, 2))
    assert [(e.decision.sequence, e.decision.priority) for e in uow.published] == [(1, 20)]


@pytest.mark.parametrize(
    ("sub_service", "kind", "to", "decisions", "priority", "decided"),
    [
        # The follow-ups raised the priority where they came: it goes with the request.
        (
            "visas.cancel-visa",
            "citizen",
            "reports",
            3,
            15,
            "transfer:visas->reports+rules.v1:repeated-follow-ups",
        ),
        # They raised nothing there (a higher rule held, and holds where it goes, its queue
        # passed over), yet they count where it goes.
        (
            "reports.absence-report",
            "establishment",
            "visas",
            2,
            20,
            "transfer:reports->visas+rules.v1:establishment-absence-report",
        ),
    ],
)
async def test_a_transfer_routes_with_every_follow_up(
    sub_service: str, kind: str, to: str, decisions: int, priority: int, decided: str
) -> None:
    request = incoming(sub_service, kind=kind)
    uow = await routed(request)
    await on_applicant_action(lambda: uow, load_rules())(followed_up(request.request_id, 2))
    await transfer(uow, request, to)
    latest = await latest_of(uow, request)
    assert (latest.sequence, latest.queue, latest.priority, latest.rule) == (
        decisions,
        f"{to}.default",
        priority,
        decided,
    )
    assert latest.request.follow_up_count == 2


async def test_a_transfer_keeps_the_priority_of_a_rule_whose_queue_is_elsewhere() -> None:
    # Review keeps a transferred request's higher priority: the decision must say the same.
    request = incoming("reports.absence-report", kind="establishment")
    uow = await routed(request)
    await transfer(uow, request, "residents")
    latest = await latest_of(uow, request)
    assert (latest.department, latest.queue, latest.priority, latest.rule) == (
        "residents",
        "residents.default",
        20,
        "transfer:reports->residents+rules.v1:establishment-absence-report",
    )
    assert [e.decision.priority for e in uow.published] == [20, 20]


async def test_other_actions_and_unrouted_requests_change_nothing() -> None:
    request = incoming()
    uow = await routed(request)
    handle = on_applicant_action(lambda: uow, load_rules())
    cancelled = events_pb2.Envelope(
        event_id="c1",
        request_cancelled=events_pb2.RequestCancelled(request_id=str(request.request_id)),
    )
    await handle(cancelled)
    await handle(followed_up(uuid.uuid4(), 5))
    assert [e.decision.sequence for e in uow.published] == [1]


async def test_follow_ups_before_the_submission_count_in_its_decision() -> None:
    # The submission sat in a dead-letter topic while the beneficiary followed up twice.
    request = incoming()
    uow = FakeUnitOfWork()
    handle = on_applicant_action(lambda: uow, load_rules())
    await handle(followed_up(request.request_id, 1))
    await handle(followed_up(request.request_id, 2))
    assert uow.published == []
    await handlers.route_requests(
        uow=uow, submitted=[("replayed", request)], rules=load_rules(), now=NOW
    )
    latest = await latest_of(uow, request)
    assert (latest.sequence, latest.queue, latest.priority, latest.rule) == (
        1,
        "visas.default",
        15,
        "rules.v1:repeated-follow-ups",
    )
    assert latest.request.follow_up_count == 2
    assert [e.decision for e in uow.published] == [latest]


# Answers to information requests


def answered(request_id: uuid.UUID, fields: dict[str, str]) -> events_pb2.Envelope:
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.answered",
        request_id=str(request_id),
        request_answered=events_pb2.RequestAnswered(
            request_id=str(request_id), message="Corrected as asked", fields=fields
        ),
    )


async def test_an_answer_that_meets_a_rule_raises_the_priority_where_the_request_is() -> None:
    request = incoming(
        "visas.change-visa-duration",
        fields={"holder_location": "inside", "requested_extension": "one_month"},
    )
    uow = await routed(request)
    handle = on_applicant_action(lambda: uow, load_rules())
    answer = answered(request.request_id, {"holder_location": "outside"})
    await handle(answer)
    await handle(answer)  # redelivered
    latest = await latest_of(uow, request)
    assert (latest.sequence, latest.queue, latest.priority, latest.rule) == (
        2,
        "visas.default",
        20,
        "answer+rules.v1:visa-holder-abroad",
    )
    assert latest.request.fields == {
        "holder_location": "outside",
        "requested_extension": "one_month",
    }
    wire = events_pb2.Envelope.FromString(to_event(uow.published[-1]).payload).request_routed
    assert (wire.priority, dict(wire.fields)["holder_location"]) == (20, "outside")
    assert len(uow.published) == 2


async def test_an_answer_that_raises_nothing_is_kept_for_the_next_decision() -> None:
    request = incoming("passports.lost-passport-report", fields={"loss_place": "inside_kingdom"})
    uow = await routed(request)
    handle = on_applicant_action(lambda: uow, load_rules())
    await handle(answered(request.request_id, {"loss_city": "Cairo"}))
    await handle(answered(request.request_id, {}))  # a message only
    assert [e.decision.sequence for e in uow.published] == [1]
    # A later answer's value of a field replaces an earlier one's, as in review.
    await handle(answered(request.request_id, {"loss_city": "Amman"}))
    await transfer(uow, request, "reports")
    moved = await latest_of(uow, request)
    assert moved.request.fields == {"loss_place": "inside_kingdom", "loss_city": "Amman"}
    assert uow.published[-1].decision is moved


async def test_an_answer_before_the_submission_counts_in_its_decision() -> None:
    request = incoming("passports.lost-passport-report", fields={"loss_place": "inside_kingdom"})
    uow = FakeUnitOfWork()
    await on_applicant_action(lambda: uow, load_rules())(
        answered(request.request_id, {"loss_place": "outside_kingdom"})
    )
    await handlers.route_requests(
        uow=uow, submitted=[("replayed", request)], rules=load_rules(), now=NOW
    )
    latest = await latest_of(uow, request)
    assert (latest.sequence, latest.priority, latest.rule) == (
        1,
        30,
        "rules.v1:lost-passport-abroad",
    )
    assert latest.request.fields == {"loss_place": "outside_kingdom"}


def test_a_follow_up_counts_itself() -> None:
    request_id = uuid.uuid4()
    assert follow_up_of(followed_up(request_id, 2)) == FollowUp(request_id=request_id, count=2)
    with pytest.raises(InvalidArgument) as caught:
        follow_up_of(followed_up(request_id, 0))
    assert caught.value.violations == {"follow_up_count": "at least 1: it counts this follow-up"}


async def test_a_polls_transfers_and_follow_ups_take_their_requests_first() -> None:
    # A poll's two topics are applied at once, each in a transaction: one taking r1 then r2
    # while the other took r2 then r1 waited on each other until PostgreSQL undid one.
    taken: list[list[str]] = []

    @asynccontextmanager
    async def transaction(*, locks: Collection[str] = ()) -> AsyncIterator[None]:
        taken.append(sorted(locks))
        yield

    group = EventConsumer(
        bootstrap="127.0.0.1:1", group="routing", producer=None, transaction=transaction
    )
    uow = FakeUnitOfWork()
    bootstrap.subscriptions(lambda: uow, load_rules()).subscribe(group)
    first, second = sorted([uuid.uuid4(), uuid.uuid4()])
    transferred = common_pb2.REQUEST_STATUS_TRANSFERRED
    poll = [
        (REQUEST_STATUS_CHANGED, status_changed(second, transferred, "reports", sequence=3)),
        (REQUEST_STATUS_CHANGED, status_changed(first, transferred, "reports", sequence=3)),
        (APPLICANT_ACTIONS, followed_up(first, 1)),
        (APPLICANT_ACTIONS, followed_up(second, 1)),
    ]
    await group.dispatch(
        [
            ConsumerRecord(
                topic, 0, n, 0, 0, e.request_id.encode(), e.SerializeToString(), None, 0, 0, []
            )
            for n, (topic, e) in enumerate(poll)
        ]
    )
    assert taken == [[f"request:{first}", f"request:{second}"]] * 2
    assert set(uow.transfers) == set(uow.follow_ups) == {first, second}


# A sub-service the catalog dropped: the request stays routable, no rule on it applies

DROPPED = "residents.profession-change"  # in catalog v6; no rule names it


def without(code: str) -> RoutingRules:
    """The packaged rules over a catalog v7 that no longer has the sub-service `code`."""
    packaged = load_rules()
    subs = {k: v for k, v in packaged.catalog.sub_services.items() if k != code}
    return replace(packaged, catalog=replace(packaged.catalog, version=7, sub_services=subs))


def filed_under_v6(follow_ups: int = 0) -> IncomingRequest:
    """A request intake filed under catalog v6, which had DROPPED in residents."""
    request = incoming(DROPPED, kind="resident", nationality="EGY")
    return replace(
        request, catalog_version=6, department_code="residents", follow_up_count=follow_ups
    )


async def routed_under_v6() -> tuple[IncomingRequest, FakeUnitOfWork]:
    request = filed_under_v6()
    uow = await routed(request)
    assert (await latest_of(uow, request)).queue == "residents.default"
    return request, uow


async def test_a_transfer_of_a_request_whose_sub_service_the_catalog_dropped_is_applied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Review holds the item TRANSFERRED until this decision comes: refused, it held it for good.
    request, uow = await routed_under_v6()
    await handlers.transfer_request(
        uow=uow,
        event_id="t1",
        transfer=Transfer(request.request_id, "visas", "misfiled", sequence=3),
        rules=without(DROPPED),
        now=NOW,
    )
    latest = await latest_of(uow, request)
    assert (latest.sequence, latest.department, latest.queue, latest.priority, latest.rule) == (
        2,
        "visas",
        "visas.default",
        0,
        "transfer:residents->visas",
    )
    assert [e.decision.sequence for e in uow.published] == [1, 2]
    assert (
        f"transfer of request {request.request_id}: its sub-service {DROPPED} is not in"
        " catalog v7, so no rule on it applies"
    ) in caplog.text


async def test_follow_ups_of_a_request_whose_sub_service_the_catalog_dropped_still_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request, uow = await routed_under_v6()
    for count in (1, 2):
        await handlers.follow_up(
            uow=uow,
            event_id=f"f{count}",
            follow_up=FollowUp(request.request_id, count),
            rules=without(DROPPED),
            now=NOW,
        )
    # Kept, not rolled back with a refusal; and the rule on follow-ups names no sub-service.
    assert uow.follow_ups == {request.request_id: 2}
    latest = await latest_of(uow, request)
    assert (latest.queue, latest.priority, latest.rule) == (
        "residents.default",
        15,
        "follow-up+rules.v1:repeated-follow-ups",
    )
    assert f"follow-up of request {request.request_id}: its sub-service {DROPPED}" in caplog.text


async def test_an_answer_to_a_request_whose_sub_service_the_catalog_dropped_is_kept() -> None:
    request, uow = await routed_under_v6()
    await handlers.answered(
        uow=uow,
        event_id="a1",
        answer=Answer(request.request_id, {"new_profession": "engineer"}),
        rules=without(DROPPED),
        now=NOW,
    )
    assert uow.answers == {request.request_id: {"new_profession": "engineer"}}
    # No rule raised its priority: where it is, it stays.
    assert [e.decision.sequence for e in uow.published] == [1]


@pytest.mark.parametrize(
    ("follow_ups", "priority", "rule"),
    [
        (0, 0, f"catalog-dropped:{DROPPED}"),
        (2, 15, f"catalog-dropped:{DROPPED}+rules.v1:repeated-follow-ups"),
    ],
)
async def test_a_submission_whose_sub_service_the_catalog_dropped_since_goes_where_it_was_filed(
    follow_ups: int, priority: int, rule: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Filed, and promised a date, under v6; routing runs v7, which no longer has the
    # sub-service. Dead-lettered, it reached no queue, and a replay failed again.
    request = filed_under_v6(follow_ups)
    uow = FakeUnitOfWork()
    await handlers.route_requests(
        uow=uow, submitted=[("submitted", request)], rules=without(DROPPED), now=NOW
    )
    latest = await latest_of(uow, request)
    assert (latest.department, latest.queue, latest.priority, latest.rule) == (
        "residents",
        "residents.default",
        priority,
        rule,
    )
    assert [e.decision for e in uow.published] == [latest]
    assert (
        f"routing request {request.request_id} to residents.default, the department it was"
        f" filed under: its sub-service {DROPPED} is not in catalog v7 ({rule})"
    ) in caplog.text


async def test_a_submission_of_an_unknown_sub_service_and_department_is_refused() -> None:
    request = replace(filed_under_v6(), department_code="embassy")
    with pytest.raises(InvalidArgument) as caught:
        await handlers.route_requests(
            uow=FakeUnitOfWork(), submitted=[("e1", request)], rules=without(DROPPED), now=NOW
        )
    assert caught.value.violations == {
        "sub_service_code": "not a sub-service of catalog v7",
        "department_code": "not a department of catalog v7",
    }


async def test_a_submission_under_a_newer_catalog_than_routings_waits_for_it() -> None:
    # Intake deployed ahead of routing: its catalog v7 has a sub-service routing's v6 lacks.
    # Routing on v7 will route it by v7's rules; until then the consumer waits (as for an
    # outage), where a dead letter would wait for someone to replay it.
    added = "residents.new-service"
    request = replace(filed_under_v6(), sub_service_code=added, catalog_version=7)
    uow = FakeUnitOfWork()
    with pytest.raises(Unavailable) as caught:
        await handlers.route_requests(
            uow=uow, submitted=[("e1", request)], rules=load_rules(), now=NOW
        )
    assert is_transient(caught.value)
    assert str(caught.value) == (
        f"request {request.request_id} was filed under catalog v7, whose sub-service {added}"
        " routing's catalog v6 lacks: held until routing runs the newer one"
    )
    assert uow.rows == {}


async def test_follow_ups_of_a_request_in_a_department_the_catalog_dropped_still_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request, uow = await routed_under_v6()
    departments = {k: v for k, v in load_rules().catalog.departments.items() if k != "residents"}
    v7 = without(DROPPED)
    v7 = replace(v7, catalog=replace(v7.catalog, departments=departments))
    for count in (1, 2):
        await handlers.follow_up(
            uow=uow,
            event_id=f"f{count}",
            follow_up=FollowUp(request.request_id, count),
            rules=v7,
            now=NOW,
        )
    latest = await latest_of(uow, request)
    assert (latest.department, latest.queue, latest.priority, latest.rule) == (
        "residents",
        "residents.default",
        15,
        "follow-up+rules.v1:repeated-follow-ups",
    )
    assert (
        f"follow-up of request {request.request_id}: its department residents is not in"
        " catalog v7, so no rule on it applies"
    ) in caplog.text
