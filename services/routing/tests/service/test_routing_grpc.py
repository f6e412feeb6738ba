"""Routing's real gRPC server, built by its composition root, in-process on a real PostgreSQL.

Kafka is left out: consumed events are handed to the real subscribers, and the events routing
would publish are checked in its outbox table.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import tawasul_routing
from aiokafka.structs import ConsumerRecord
from alembic import command
from alembic.config import Config
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, text
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul.routing.v1 import routing_pb2, routing_pb2_grpc
from tawasul_devstack.identity import throwaway
from tawasul_platform.consumer import EventConsumer, Subscriptions
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import bearer, field_violations
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine, emptied, on_loop, reviewer_recorded
from tawasul_platform.tls import open_channel
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    REQUEST_ROUTED,
    REQUEST_STATUS_CHANGED,
    REQUEST_SUBMITTED,
    STAFF_REVIEWERS,
    dead_letter_topic,
)
from tawasul_platform.uow import Messaging, shared_transaction
from tawasul_routing import bootstrap
from tawasul_routing.adapters import tables
from tawasul_routing.adapters.repository import SERVICE, RoutingUnitOfWork
from tawasul_routing.adapters.rules import load_rules
from tawasul_routing.domain.rules import RoutingRules
from tawasul_routing.settings import RoutingSettings

MIGRATIONS = Path(tawasul_routing.__file__).resolve().parent / "migrations"

IDENTITY = throwaway()
REVIEWER = IDENTITY.token_for(Principal("E1001", Role.REVIEWER, frozenset({"residents"})))
REPORTS = IDENTITY.token_for(Principal("E1002", Role.REVIEWER, frozenset({"reports"})))
VISAS = IDENTITY.token_for(Principal("E1003", Role.REVIEWER, frozenset({"visas"})))
CITIZEN = IDENTITY.token_for(Principal("1000000008", Role.CITIZEN))
SUBMITTED_AT = datetime(2026, 1, 4, 7, 0, tzinfo=UTC)


class Routing:
    """The gRPC client, and the subscribers Kafka would call."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        database_url: str,
        uow: Callable[[], RoutingUnitOfWork],
    ) -> None:
        self.stub = routing_pb2_grpc.RoutingServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)
        self.engine = async_engine(database_url, pool_size=2)
        self.uow = uow
        self.subscriptions = self.under(load_rules())

    def under(self, rules: RoutingRules) -> Subscriptions:
        """The subscribers of a routing that runs `rules` (another catalog, say)."""
        return bootstrap.subscriptions(self.uow, rules)

    async def on_submitted(self, poll: list[events_pb2.Envelope]) -> None:
        await self.subscriptions.deliver(REQUEST_SUBMITTED, *poll)

    async def on_status_changed(self, event: events_pb2.Envelope) -> None:
        await self.subscriptions.deliver(REQUEST_STATUS_CHANGED, event)

    async def on_applicant_action(self, event: events_pb2.Envelope) -> None:
        await self.subscriptions.deliver(APPLICANT_ACTIONS, event)

    async def explain(
        self, token: str = REVIEWER, **fields: Any
    ) -> routing_pb2.ExplainRouteResponse:
        return await self.stub.ExplainRoute(
            routing_pb2.ExplainRouteRequest(**fields),
            timeout=5,
            metadata=bearer(token),
        )

    async def decision(self, request_id: str, token: str = REVIEWER) -> routing_pb2.RoutingDecision:
        answer = await self.stub.GetDecision(
            routing_pb2.GetDecisionRequest(request_id=request_id),
            timeout=5,
            metadata=bearer(token),
        )
        return answer.decision

    async def outbox(self) -> list[events_pb2.Envelope]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(tables.outbox)
                    .where(tables.outbox.c.topic == REQUEST_ROUTED)
                    .order_by(tables.outbox.c.id)
                )
            ).all()
        return [events_pb2.Envelope.FromString(row.payload) for row in rows]

    async def decisions(self, request_id: str) -> list[tuple[int, str, int, str]]:
        d = tables.decisions
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(d.c.sequence, d.c.queue, d.c.priority, d.c.rule)
                    .where(d.c.request_id == uuid.UUID(request_id))
                    .order_by(d.c.sequence)
                )
            ).all()
        return [tuple(row) for row in rows]


@pytest.fixture
async def routing(database_url: str) -> AsyncIterator[Routing]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = async_engine(database_url, pool_size=4)
    database = Database(engine.sync_engine)
    settings = RoutingSettings(
        database_url=database_url,
        kafka_bootstrap="127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        identity_issuers=IDENTITY.issuers(),
    )

    def uow() -> RoutingUnitOfWork:
        return RoutingUnitOfWork(database)

    server = bootstrap.grpc_server(settings, bootstrap.servicer(settings, uow=uow))
    await server.start()
    await server.serving(True)
    channel = open_channel(f"127.0.0.1:{server.port}", None)
    client = Routing(channel, database_url, uow)
    yield client
    await channel.close()
    await server.stop(1)
    await client.engine.dispose()
    await engine.dispose()


def submitted(
    sub_service: str = "residents.visit-visa-extension",
    *,
    nationality: str = "YEM",
    kind: str = "citizen",
    fields: dict[str, str] | None = None,
) -> events_pb2.Envelope:
    request_id = str(uuid.uuid4())
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        request_id=request_id,
        occurred_at=timestamp(SUBMITTED_AT),
        request_submitted=events_pb2.RequestSubmitted(
            request_id=request_id,
            request_number="TW261234567",
            sub_service_code=sub_service,
            description="Extend my mother's visit visa 4001234567 before it runs out",
            applicant_id="1000000008",
            document_ids=[str(uuid.uuid4())],
            contact=common_pb2.Contact(mobile="+966551234567", locale="ar"),
            submitted_at=timestamp(SUBMITTED_AT),
            subject_id="1000000008",
            fields=fields if fields is not None else {"relationship": "parent"},
            catalog_version=2,
            applicant_kind=kind,
            subject_nationality=nationality,
            channel="mobile",
        ),
    )


def transferred(request_id: str, to: str, note: str) -> events_pb2.Envelope:
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.status-changed",
        request_id=request_id,
        request_status_changed=events_pb2.RequestStatusChanged(
            request_id=request_id,
            request_number="TW261234567",
            status=common_pb2.REQUEST_STATUS_TRANSFERRED,
            actor_id="E1001",
            transfer_to_department=to,
            internal=events_pb2.RequestStatusChanged.Internal(
                note=note, department_code="residents"
            ),
        ),
    )


def followed_up(request_id: str, count: int) -> events_pb2.Envelope:
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.followed-up",
        request_id=request_id,
        request_followed_up=events_pb2.RequestFollowedUp(
            request_id=request_id, follow_up_count=count, message="Any news?"
        ),
    )


def answered(request_id: str, fields: dict[str, str]) -> events_pb2.Envelope:
    return events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.answered",
        request_id=request_id,
        request_answered=events_pb2.RequestAnswered(
            request_id=request_id, message="Corrected as asked", fields=fields
        ),
    )


async def test_health_reports_serving(routing: Routing) -> None:
    answer = await routing.health.Check(
        health_pb2.HealthCheckRequest(service="tawasul.routing.v1.RoutingService"), timeout=5
    )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_explain_route_answers_for_hypothetical_requests(routing: Routing) -> None:
    default = await routing.explain(sub_service_code="reports.general-inquiry")
    assert (default.department_code, default.queue, default.priority, default.rule) == (
        "reports",
        "reports.default",
        0,
        "rules.v1:default",
    )
    assert "no rule chose a queue" in default.explanation
    visit = await routing.explain(
        sub_service_code="residents.visit-visa-extension",
        applicant_kind="resident",
        subject_nationality="SYR",
        channel="web",
    )
    assert (visit.department_code, visit.queue, visit.rule) == (
        "residents",
        "residents.visit-visa",
        "rules.v1:visit-visa-yemen-syria",
    )
    assert "subject nationality SYR is one of YEM, SYR" in visit.explanation
    absence = await routing.explain(
        sub_service_code="reports.absence-report",
        applicant_kind="establishment",
        fields={"worker_type": "domestic_worker"},
        follow_up_count=2,
    )
    assert (absence.queue, absence.priority, absence.rule) == (
        "reports.establishments",
        20,
        "rules.v1:establishment-absence-report",
    )
    assert "rule repeated-follow-ups" in absence.explanation


async def test_explain_route_refuses_a_bad_request_field_by_field(routing: Routing) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.explain(sub_service_code="passports.new-nationality", channel="fax")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {
        "sub_service_code": "not a sub-service of catalog v6",
        "channel": "one of web, mobile, establishment-portal, or empty",
    }


async def test_explain_route_refuses_a_request_intake_would_refuse(routing: Routing) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.explain(
            sub_service_code="passports.lost-passport-report",
            applicant_kind="establishment",
            fields={"loss_place": "abroad", "lost_city": "Cairo"},
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {
        "applicant_kind": "passports.lost-passport-report is filed by citizen only",
        "fields.loss_place": "one of inside_kingdom, outside_kingdom, or empty",
        "fields.lost_city": "not a field of passports.lost-passport-report",
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.explain(
            sub_service_code="residents.visit-visa-extension", subject_nationality="EGY"
        )
    assert field_violations(caught.value) == {
        "subject_nationality": "residents.visit-visa-extension is for nationals of SYR, YEM only"
    }


async def test_only_employees_may_ask(routing: Routing) -> None:
    # An end user's token is not meant for routing at all.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.explain(CITIZEN, sub_service_code="reports.general-inquiry")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Nor would it be enough if its provider named routing among its audiences.
    addressed = IDENTITY.token("1000000008", Role.CITIZEN, overrides={"aud": ["tawasul-routing"]})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.explain(addressed, sub_service_code="reports.general-inquiry")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.stub.ExplainRoute(
            routing_pb2.ExplainRouteRequest(sub_service_code="reports.general-inquiry"), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_batch_decides_each_request_once_in_the_order_it_came(routing: Routing) -> None:
    first, second = submitted(), submitted("passports.lost-passport-report", nationality="SAU")
    # The same request again under another event id (a producer's retry), and a redelivery.
    again = events_pb2.Envelope()
    again.CopyFrom(first)
    again.event_id = str(uuid.uuid4())
    await routing.on_submitted([first, second, again, first])
    await routing.on_submitted([second])

    assert [e.request_id for e in await routing.outbox()] == [
        first.request_id,
        second.request_id,
    ]
    assert [queue for _, queue, _, _ in await routing.decisions(first.request_id)] == [
        "residents.visit-visa"
    ]
    assert [queue for _, queue, _, _ in await routing.decisions(second.request_id)] == [
        "passports.default"
    ]


async def test_a_submission_is_decided_recorded_and_published_once(routing: Routing) -> None:
    event = submitted()
    request_id = event.request_id
    await routing.on_submitted([event])
    await routing.on_submitted([event])  # redelivered

    decision = await routing.decision(request_id)
    assert (decision.department_code, decision.queue, decision.priority, decision.rule) == (
        "residents",
        "residents.visit-visa",
        0,
        "rules.v1:visit-visa-yemen-syria",
    )
    assert decision.transfer_reason == ""
    (routed,) = await routing.outbox()
    r, s = routed.request_routed, event.request_submitted
    assert (routed.event_type, routed.request_id, routed.producer) == (
        "tawasul.requests.routed",
        request_id,
        "routing",
    )
    assert (r.queue, r.priority, r.rule, r.department_code) == (
        "residents.visit-visa",
        0,
        "rules.v1:visit-visa-yemen-syria",
        "residents",
    )
    assert (r.submitted_at, r.catalog_version, r.subject_id, dict(r.fields)) == (
        s.submitted_at,
        2,
        "1000000008",
        {"relationship": "parent"},
    )
    assert (r.applicant_kind, r.subject_nationality, r.channel) == ("citizen", "YEM", "mobile")
    assert (list(r.document_ids), r.contact, r.description) == (
        list(s.document_ids),
        s.contact,
        s.description,
    )


async def test_another_departments_request_is_as_unknown_as_one_never_routed(
    routing: Routing,
) -> None:
    """Staff of another department cannot tell a request that exists from one that does
    not: review's work items answer both the same way."""
    event = submitted()
    await routing.on_submitted([event])
    details = set()
    for request_id in (event.request_id, str(uuid.uuid4())):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await routing.decision(request_id, REPORTS)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        details.add(caught.value.details())
    assert details == {"no such request in your departments"}


async def test_a_department_reviews_record_takes_away_is_closed_here_too(
    routing: Routing,
) -> None:
    event = submitted()
    await routing.on_submitted([event])
    both = IDENTITY.token_for(Principal("E3003", Role.REVIEWER, frozenset({"residents", "visas"})))
    assert (await routing.decision(event.request_id, both)).department_code == "residents"
    records = routing.subscriptions
    await records.deliver(STAFF_REVIEWERS, reviewer_recorded("E3003", {"visas"}, None, 2))
    await records.deliver(STAFF_REVIEWERS, reviewer_recorded("E3003", {"residents"}, None, 1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.decision(event.request_id, both)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # Another reviewer's record leaves E1001 in residents.
    assert (await routing.decision(event.request_id)).department_code == "residents"


async def test_a_transfer_adds_a_decision_and_a_routed_event(routing: Routing) -> None:
    event = submitted()
    request_id = event.request_id
    await routing.on_submitted([event])
    move = transferred(request_id, "reports", "the visitor is reported absent, not overstaying")
    await routing.on_status_changed(move)
    await routing.on_status_changed(move)  # redelivered

    # It is the reports department's now, and no longer the residents department's to read.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.decision(request_id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "no such request in your departments"
    decision = await routing.decision(request_id, REPORTS)
    assert (decision.department_code, decision.queue, decision.priority, decision.rule) == (
        "reports",
        "reports.default",
        0,
        "transfer:residents->reports",
    )
    assert decision.transfer_reason == "the visitor is reported absent, not overstaying"
    assert await routing.decisions(request_id) == [
        (1, "residents.visit-visa", 0, "rules.v1:visit-visa-yemen-syria"),
        (2, "reports.default", 0, "transfer:residents->reports"),
    ]
    first, second = await routing.outbox()
    assert (first.request_routed.transfer_reason, first.request_routed.transferred_from) == (
        "",
        "",
    )
    again = second.request_routed
    assert (again.queue, again.rule, again.transfer_reason, again.transferred_from) == (
        "reports.default",
        "transfer:residents->reports",
        "the visitor is reported absent, not overstaying",
        "residents",
    )
    # The request travels on unchanged.
    assert (again.request_number, again.subject_nationality, dict(again.fields)) == (
        "TW261234567",
        "YEM",
        {"relationship": "parent"},
    )
    assert again.submitted_at == event.request_submitted.submitted_at


async def test_follow_ups_raise_the_priority_by_the_rules_once(routing: Routing) -> None:
    event = submitted()
    request_id = event.request_id
    await routing.on_submitted([event])
    await routing.on_applicant_action(followed_up(request_id, 1))
    second = followed_up(request_id, 2)
    await routing.on_applicant_action(second)
    await routing.on_applicant_action(second)  # redelivered
    await routing.on_applicant_action(followed_up(request_id, 3))

    assert await routing.decisions(request_id) == [
        (1, "residents.visit-visa", 0, "rules.v1:visit-visa-yemen-syria"),
        (2, "residents.visit-visa", 15, "follow-up+rules.v1:repeated-follow-ups"),
    ]
    decision = await routing.decision(request_id)
    assert (decision.queue, decision.priority, decision.transfer_reason) == (
        "residents.visit-visa",
        15,
        "",
    )
    first, again = (e.request_routed for e in await routing.outbox())
    assert (again.department_code, again.queue, again.priority, again.rule) == (
        "residents",
        "residents.visit-visa",
        15,
        "follow-up+rules.v1:repeated-follow-ups",
    )
    # The request travels on unchanged.
    assert (again.request_number, again.submitted_at, dict(again.fields)) == (
        first.request_number,
        first.submitted_at,
        {"relationship": "parent"},
    )


async def test_follow_ups_that_came_before_the_submission_count_when_it_is_routed(
    routing: Routing,
) -> None:
    # The submission sat in a dead-letter topic for days, while the beneficiary followed up.
    event = submitted()
    request_id = event.request_id
    await routing.on_applicant_action(followed_up(request_id, 2))
    await routing.on_applicant_action(followed_up(request_id, 3))
    assert await routing.outbox() == []
    await routing.on_submitted([event])  # the dead letter replayed

    assert await routing.decisions(request_id) == [
        (1, "residents.visit-visa", 15, "rules.v1:visit-visa-yemen-syria"),
    ]
    (routed,) = await routing.outbox()
    assert (routed.request_routed.queue, routed.request_routed.priority) == (
        "residents.visit-visa",
        15,
    )
    # The count went with the decision: a later follow-up is news only past it.
    await routing.on_applicant_action(followed_up(request_id, 3))
    assert len(await routing.decisions(request_id)) == 1


async def test_answered_fields_reach_the_rules_and_travel_on_with_the_request(
    routing: Routing,
) -> None:
    event = submitted(
        "visas.change-visa-duration",
        nationality="IND",
        fields={"holder_location": "inside", "requested_extension": "one_month"},
    )
    request_id = event.request_id
    await routing.on_submitted([event])
    answer = answered(request_id, {"holder_location": "outside"})
    await routing.on_applicant_action(answer)
    await routing.on_applicant_action(answer)  # redelivered
    # The same field replaced again raises nothing more, yet is kept.
    await routing.on_applicant_action(answered(request_id, {"requested_extension": "two_months"}))

    assert await routing.decisions(request_id) == [
        (1, "visas.default", 0, "rules.v1:default"),
        (2, "visas.default", 20, "answer+rules.v1:visa-holder-abroad"),
    ]
    decision = await routing.decision(request_id, VISAS)
    assert (decision.priority, decision.rule) == (20, "answer+rules.v1:visa-holder-abroad")
    raised = (await routing.outbox())[-1].request_routed
    assert dict(raised.fields) == {"holder_location": "outside", "requested_extension": "one_month"}
    # A transfer republishes the request as the answers left it.
    await routing.on_status_changed(transferred(request_id, "reports", "misfiled"))
    moved = (await routing.outbox())[-1].request_routed
    assert (moved.department_code, moved.priority) == ("reports", 20)
    assert dict(moved.fields) == {"holder_location": "outside", "requested_extension": "two_months"}


async def test_a_follow_up_after_a_transfer_keeps_its_reason(routing: Routing) -> None:
    event = submitted()
    request_id = event.request_id
    await routing.on_submitted([event])
    await routing.on_status_changed(transferred(request_id, "reports", "visitor reported absent"))
    await routing.on_applicant_action(followed_up(request_id, 2))

    decision = await routing.decision(request_id, REPORTS)
    assert (decision.priority, decision.rule, decision.transfer_reason) == (
        15,
        "follow-up+rules.v1:repeated-follow-ups",
        "visitor reported absent",
    )
    raised = (await routing.outbox())[-1].request_routed
    assert (raised.priority, raised.transfer_reason, raised.transferred_from) == (
        15,
        "visitor reported absent",
        "residents",
    )


async def test_a_transfer_keeps_the_priority_review_keeps(routing: Routing) -> None:
    event = submitted(
        "reports.absence-report",
        kind="establishment",
        nationality="IND",
        fields={"worker_type": "establishment_worker"},
    )
    request_id = event.request_id
    await routing.on_submitted([event])
    await routing.on_status_changed(transferred(request_id, "residents", "an iqama issue"))

    decision = await routing.decision(request_id)
    assert (decision.queue, decision.priority, decision.rule) == (
        "residents.default",
        20,
        "transfer:reports->residents+rules.v1:establishment-absence-report",
    )
    moved = (await routing.outbox())[-1].request_routed
    assert (moved.queue, moved.priority) == ("residents.default", 20)


async def test_other_status_changes_are_ignored(routing: Routing) -> None:
    event = submitted("reports.general-inquiry", fields={})
    await routing.on_submitted([event])
    for status in (common_pb2.REQUEST_STATUS_UNDER_REVIEW, common_pb2.REQUEST_STATUS_ACCEPTED):
        change = transferred(event.request_id, "visas", "")
        change.request_status_changed.status = status
        await routing.on_status_changed(change)
    assert len(await routing.outbox()) == 1


async def test_a_transfer_to_an_unknown_department_changes_nothing_routed_or_not(
    routing: Routing,
) -> None:
    event = submitted("reports.general-inquiry", fields={})
    for request_id in (event.request_id, str(uuid.uuid4())):
        with pytest.raises(InvalidArgument) as caught:
            await routing.on_status_changed(transferred(request_id, "embassy", "x"))
        assert caught.value.violations == {
            "transfer_to_department": "not a department of catalog v6"
        }
        await routing.on_submitted([event])
    assert len(await routing.decisions(event.request_id)) == 1
    assert len(await routing.outbox()) == 1
    async with routing.engine.connect() as conn:
        assert (await conn.execute(select(tables.pending_transfers))).all() == []


def stamped(event: events_pb2.Envelope, sequence: int) -> events_pb2.Envelope:
    """The status change as review's `sequence`-th of the request."""
    event.request_status_changed.sequence = sequence
    return event


async def test_a_transfer_read_before_its_submission_is_applied_after_its_decision(
    routing: Routing,
) -> None:
    """After tawasul-rewind (or a backlog) routing reads submitted and status-changed again,
    and a poll's topics are applied at once: review's transfer may come first."""
    event = submitted()
    request_id = event.request_id
    move = stamped(transferred(request_id, "reports", "the visitor is reported absent"), 5)
    await routing.on_status_changed(move)
    # An older one (a dead letter replayed) is not kept over it.
    await routing.on_status_changed(stamped(transferred(request_id, "passports", "x"), 3))
    assert await routing.outbox() == []
    await routing.on_submitted([event])
    await routing.on_status_changed(move)  # redelivered

    assert await routing.decisions(request_id) == [
        (1, "residents.visit-visa", 0, "rules.v1:visit-visa-yemen-syria"),
        (2, "reports.default", 0, "transfer:residents->reports"),
    ]
    decision = await routing.decision(request_id, REPORTS)
    assert decision.transfer_reason == "the visitor is reported absent"
    first, moved = (e.request_routed for e in await routing.outbox())
    assert (first.sequence, first.department_code, first.transferred_from) == (1, "residents", "")
    assert (moved.sequence, moved.department_code, moved.transferred_from) == (
        2,
        "reports",
        "residents",
    )
    assert (moved.transfer_reason, moved.request_number, moved.submitted_at) == (
        "the visitor is reported absent",
        "TW261234567",
        event.request_submitted.submitted_at,
    )
    # Review's fifth status change went with it: its fourth, replayed late, moves nothing.
    await routing.on_status_changed(stamped(transferred(request_id, "passports", "x"), 4))
    assert len(await routing.decisions(request_id)) == 2
    # Applied, the kept transfer is not kept on.
    async with routing.engine.connect() as conn:
        assert (await conn.execute(select(tables.pending_transfers))).all() == []


async def test_a_transfer_kept_for_the_submission_is_the_one_a_transfer_applied_would_be(
    routing: Routing,
) -> None:
    """As on a routed request: a later sequence, or one from before review counted (0),
    replaces the kept transfer; the highest sequence is kept, to skip what is older still."""
    event = submitted("reports.general-inquiry", fields={})
    request_id = event.request_id
    for to, sequence in (("residents", 4), ("visas", 6), ("passports", 5), ("residents", 0)):
        await routing.on_status_changed(stamped(transferred(request_id, to, to), sequence))
    await routing.on_submitted([event])

    assert [queue for _, queue, _, _ in await routing.decisions(request_id)] == [
        "reports.default",
        "residents.default",
    ]
    d = tables.decisions
    async with routing.engine.connect() as conn:
        kept = await conn.scalar(
            select(d.c.status_sequence).where(
                d.c.request_id == uuid.UUID(request_id), d.c.sequence == 2
            )
        )
    assert kept == 6
    assert (await routing.outbox())[-1].request_routed.transfer_reason == "residents"


# --- two topics' events about one request applied at once -------------------------------
# A poll's topics are applied at once, each in a transaction of its own (and two replicas
# apply theirs at once too): neither sees the other's uncommitted rows. Each handler takes its
# request first, so the second waits for the first to commit and reads what it wrote.


class Paused(RoutingUnitOfWork):
    """A unit of work whose commit waits for `go`, as a transaction still running would."""

    def __init__(self, database: Database, at_commit: asyncio.Event, go: asyncio.Event) -> None:
        super().__init__(database)
        self.at_commit, self.go = at_commit, go

    async def commit(self) -> None:
        self.at_commit.set()
        await self.go.wait()
        await super().commit()


async def beside(
    database_url: str,
    first: tuple[str, events_pb2.Envelope],
    second: tuple[str, events_pb2.Envelope],
) -> None:
    """Delivers `second` while the transaction applying `first` is still open, until it has
    applied (or waits on a lock); then lets `first` commit."""
    engine = async_engine(database_url, pool_size=3)
    database = Database(engine.sync_engine)
    rules = load_rules()
    at_commit, go = asyncio.Event(), asyncio.Event()

    async def deliver(uow: RoutingUnitOfWork, topic: str, event: events_pb2.Envelope) -> None:
        await bootstrap.subscriptions(lambda: uow, rules).deliver(topic, event)

    waits = text(
        "SELECT EXISTS (SELECT FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock')"
    )
    try:
        running = asyncio.create_task(deliver(Paused(database, at_commit, go), *first))
        await at_commit.wait()
        then = asyncio.create_task(deliver(RoutingUnitOfWork(database), *second))
        while not then.done():
            async with engine.connect() as conn:
                if await conn.scalar(waits):
                    break
            await asyncio.sleep(0.01)
        go.set()
        await asyncio.gather(running, then)
    finally:
        await engine.dispose()


async def test_a_follow_up_applied_beside_the_submission_counts_in_its_decision(
    routing: Routing, database_url: str
) -> None:
    event = submitted()
    request_id = event.request_id
    await routing.on_applicant_action(followed_up(request_id, 1))
    await beside(
        database_url,
        (APPLICANT_ACTIONS, followed_up(request_id, 2)),
        (REQUEST_SUBMITTED, event),
    )
    assert await routing.decisions(request_id) == [
        (1, "residents.visit-visa", 15, "rules.v1:visit-visa-yemen-syria"),
    ]
    (routed,) = await routing.outbox()
    assert routed.request_routed.priority == 15


async def test_a_follow_up_applied_beside_the_submission_raises_its_priority_after_it(
    routing: Routing, database_url: str
) -> None:
    event = submitted()
    request_id = event.request_id
    await routing.on_applicant_action(followed_up(request_id, 1))
    await beside(
        database_url,
        (REQUEST_SUBMITTED, event),
        (APPLICANT_ACTIONS, followed_up(request_id, 2)),
    )
    assert await routing.decisions(request_id) == [
        (1, "residents.visit-visa", 0, "rules.v1:visit-visa-yemen-syria"),
        (2, "residents.visit-visa", 15, "follow-up+rules.v1:repeated-follow-ups"),
    ]
    assert [e.request_routed.priority for e in await routing.outbox()] == [0, 15]


async def test_a_transfer_applied_beside_the_submission_moves_it_after_its_decision(
    routing: Routing, database_url: str
) -> None:
    event = submitted()
    request_id = event.request_id
    move = stamped(transferred(request_id, "reports", "misfiled"), 3)
    await beside(database_url, (REQUEST_SUBMITTED, event), (REQUEST_STATUS_CHANGED, move))
    assert await routing.decisions(request_id) == [
        (1, "residents.visit-visa", 0, "rules.v1:visit-visa-yemen-syria"),
        (2, "reports.default", 0, "transfer:residents->reports"),
    ]
    assert [e.request_routed.department_code for e in await routing.outbox()] == [
        "residents",
        "reports",
    ]


async def test_a_follow_up_applied_beside_a_transfer_is_decided_after_it(
    routing: Routing, database_url: str
) -> None:
    """Both decide the request's next decision: without the lock they took the same sequence
    and the second to commit failed on the key, to be tried again."""
    event = submitted("reports.general-inquiry", fields={})
    request_id = event.request_id
    await routing.on_submitted([event])
    await routing.on_applicant_action(followed_up(request_id, 1))
    await beside(
        database_url,
        (REQUEST_STATUS_CHANGED, transferred(request_id, "residents", "misfiled")),
        (APPLICANT_ACTIONS, followed_up(request_id, 2)),
    )
    assert await routing.decisions(request_id) == [
        (1, "reports.default", 0, "rules.v1:default"),
        (2, "residents.default", 0, "transfer:reports->residents"),
        (3, "residents.default", 15, "follow-up+rules.v1:repeated-follow-ups"),
    ]
    raised = (await routing.outbox())[-1].request_routed
    assert (raised.sequence, raised.transfer_reason, raised.transferred_from) == (
        3,
        "misfiled",
        "reports",
    )


async def test_an_unrouted_request_is_not_found(routing: Routing) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.decision(str(uuid.uuid4()))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


class DeadLetters:
    """The producer the consumer dead-letters with: what it would have sent, and how often
    each event was tried first."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, bytes]]] = []

    async def send_and_wait(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None
    ) -> None:
        self.sent.append((topic, dict(headers or [])))


def record(topic: str, offset: int, event: events_pb2.Envelope) -> ConsumerRecord[bytes, bytes]:
    value = event.SerializeToString()
    key = event.request_id.encode()
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), [])


async def test_an_event_that_cannot_be_applied_is_dead_lettered_at_once(
    database_url: str,
) -> None:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = async_engine(database_url, pool_size=2)
    database = Database(engine.sync_engine)
    letters = DeadLetters()
    consumer = EventConsumer(
        bootstrap="127.0.0.1:1",
        group="routing",
        producer=letters,
        transaction=functools.partial(
            shared_transaction, database, Messaging(SERVICE, tables.outbox, tables.inbox)
        ),
    )
    bootstrap.subscriptions(lambda: RoutingUnitOfWork(database), load_rules()).subscribe(consumer)
    good = submitted("reports.general-inquiry", fields={})
    bad_id = submitted()
    bad_id.event_id = "evt-123"
    bad_time = submitted()
    bad_time.request_submitted.submitted_at.seconds = 2**62
    poll = [good, bad_id, bad_time]
    try:
        await consumer.dispatch([record(REQUEST_SUBMITTED, n, e) for n, e in enumerate(poll)])
        async with engine.connect() as conn:
            decided = set((await conn.scalars(select(tables.decisions.c.request_id))).all())
    finally:
        await engine.dispose()
    assert decided == {uuid.UUID(good.request_id)}
    # Each tried once: retrying cannot help, and would hold the poll up for seconds.
    assert [(topic, h["dlt.attempts"], h["dlt.error"][:60]) for topic, h in letters.sent] == [
        (
            dead_letter_topic(REQUEST_SUBMITTED, "routing"),
            b"1",
            b"InvalidArgument('event_id: not a UUID')",
        ),
        (
            dead_letter_topic(REQUEST_SUBMITTED, "routing"),
            b"1",
            b"InvalidArgument('submitted_at: not a valid time')",
        ),
    ]


# A sub-service the catalog dropped after intake filed a request under it

DROPPED = "residents.profession-change"  # in catalog v6; no rule names it


def without(code: str) -> RoutingRules:
    """The packaged rules over a catalog v7 that no longer has the sub-service `code`."""
    packaged = load_rules()
    subs = {k: v for k, v in packaged.catalog.sub_services.items() if k != code}
    return replace(packaged, catalog=replace(packaged.catalog, version=7, sub_services=subs))


def filed_under_v6(
    sub_service: str = DROPPED, department: str = "residents"
) -> events_pb2.Envelope:
    event = submitted(sub_service, kind="resident", nationality="EGY", fields={})
    event.request_submitted.catalog_version = 6
    event.request_submitted.department_code = department
    return event


async def test_a_request_whose_sub_service_the_catalog_dropped_is_routed_on(
    routing: Routing,
) -> None:
    event = filed_under_v6()
    request_id = event.request_id
    await routing.on_submitted([event])
    v7 = routing.under(without(DROPPED))
    # Review holds the item TRANSFERRED until routing decides: a refusal held it for good.
    await v7.deliver(REQUEST_STATUS_CHANGED, transferred(request_id, "visas", "misfiled"))
    await v7.deliver(APPLICANT_ACTIONS, followed_up(request_id, 1))
    # Raises nothing, but is kept: the next decision carries it.
    await v7.deliver(APPLICANT_ACTIONS, answered(request_id, {"new_profession": "engineer"}))
    await v7.deliver(APPLICANT_ACTIONS, followed_up(request_id, 2))
    assert await routing.decisions(request_id) == [
        (1, "residents.default", 0, "rules.v1:default"),
        (2, "visas.default", 0, "transfer:residents->visas"),
        (3, "visas.default", 15, "follow-up+rules.v1:repeated-follow-ups"),
    ]
    last = (await routing.outbox())[-1].request_routed
    assert (last.queue, last.priority, last.sub_service_code, last.transferred_from) == (
        "visas.default",
        15,
        DROPPED,
        "residents",
    )
    assert dict(last.fields) == {"new_profession": "engineer"}


async def test_a_submission_is_routed_where_it_was_filed_held_or_dead_lettered_by_catalog(
    database_url: str,
) -> None:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = async_engine(database_url, pool_size=2)
    database = Database(engine.sync_engine)
    letters = DeadLetters()
    consumer = EventConsumer(
        bootstrap="127.0.0.1:1",
        group="routing",
        producer=letters,
        transaction=functools.partial(
            shared_transaction, database, Messaging(SERVICE, tables.outbox, tables.inbox)
        ),
    )
    v7 = without(DROPPED)
    bootstrap.subscriptions(lambda: RoutingUnitOfWork(database), v7).subscribe(consumer)
    # Filed under v6 and dropped by v7: to the department it was filed under.
    dropped = filed_under_v6()
    # Neither the sub-service nor the department is v7's: nowhere to go, and never will be.
    nowhere = filed_under_v6(department="embassy")
    # Filed under a v8 (intake deployed ahead of routing): v8's routing will know where.
    ahead = filed_under_v6("residents.new-service")
    ahead.request_submitted.catalog_version = 8
    try:
        poll = [dropped, nowhere]
        await consumer.dispatch([record(REQUEST_SUBMITTED, n, e) for n, e in enumerate(poll)])
        held = asyncio.create_task(consumer.dispatch([record(REQUEST_SUBMITTED, 2, ahead)]))
        # Waited out as an outage is (the partition waits), not dead-lettered.
        done, _ = await asyncio.wait([held], timeout=2)
        assert not done
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        d = tables.decisions
        async with engine.connect() as conn:
            decided = (await conn.execute(select(d.c.request_id, d.c.queue, d.c.rule))).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in decided] == [
        (uuid.UUID(dropped.request_id), "residents.default", f"catalog-dropped:{DROPPED}")
    ]
    assert [(topic, h["dlt.attempts"], h["dlt.error"][:40]) for topic, h in letters.sent] == [
        (
            dead_letter_topic(REQUEST_SUBMITTED, "routing"),
            b"1",
            b"InvalidArgument('sub_service_code: not a",
        )
    ]


async def test_a_decision_of_the_first_schema_survives_the_upgrade(database_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    await asyncio.to_thread(command.upgrade, config, "0001")
    request_id = uuid.uuid4()
    engine = async_engine(database_url, pool_size=1)
    old = {
        "request_id": str(request_id),
        "request_number": "TW2600000001",
        "sub_service_code": "visas.cancel-visa",
        "description": "Cancel exit re-entry visa 123 issued by mistake",
        "applicant_id": "1000000008",
        "document_ids": [],
        "mobile": "+966551234567",
        "email": "",
        "locale": "ar",
    }
    async with engine.begin() as conn:
        # The table as revision 0001 made it: one decision per request, no priority.
        await conn.execute(
            text(
                "INSERT INTO decisions (request_id, department, queue, rule, decided_at, request)"
                " VALUES (:id, 'visas', 'visas.default', 'catalog.v1:visas.cancel-visa', :at,"
                " CAST(:request AS jsonb))"
            ),
            {"id": request_id, "at": SUBMITTED_AT, "request": json.dumps(old)},
        )
    await asyncio.to_thread(command.upgrade, config, "head")
    database = Database(engine.sync_engine)
    async with RoutingUnitOfWork(database) as uow:
        decision = await uow.decisions.latest(request_id)
    await engine.dispose()
    assert decision is not None
    assert (decision.sequence, decision.priority, decision.rule) == (
        1,
        0,
        "catalog.v1:visas.cancel-visa",
    )
    assert (decision.request.submitted_at, decision.request.subject_id) == (
        SUBMITTED_AT,
        "1000000008",
    )


async def test_a_transfer_counts_the_follow_ups_that_raised_nothing_where_they_came(
    routing: Routing,
) -> None:
    event = submitted("reports.absence-report", kind="establishment", fields={})
    request_id = event.request_id
    await routing.on_submitted([event])
    await routing.on_applicant_action(followed_up(request_id, 1))
    await routing.on_applicant_action(followed_up(request_id, 2))
    await routing.on_applicant_action(followed_up(request_id, 1))  # a late copy of the first
    assert await routing.decisions(request_id) == [
        (1, "reports.establishments", 20, "rules.v1:establishment-absence-report"),
    ]

    await routing.on_status_changed(transferred(request_id, "visas", "a visa matter"))
    # The establishment's rule still gives the higher priority there (its queue passed over).
    assert await routing.decisions(request_id) == [
        (1, "reports.establishments", 20, "rules.v1:establishment-absence-report"),
        (2, "visas.default", 20, "transfer:reports->visas+rules.v1:establishment-absence-report"),
    ]
    moved = (await routing.outbox())[-1].request_routed
    assert (moved.department_code, moved.queue, moved.priority) == ("visas", "visas.default", 20)
    d = tables.decisions
    async with routing.engine.connect() as conn:
        counted = await conn.scalar(
            select(d.c.request["follow_up_count"].as_integer()).where(
                d.c.request_id == uuid.UUID(request_id), d.c.sequence == 2
            )
        )
    assert counted == 2


async def test_follow_ups_counted_in_decisions_before_the_upgrade_are_kept(
    database_url: str,
) -> None:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url, "0003")
    engine = async_engine(database_url, pool_size=1)
    request = submitted().request_submitted
    row = {
        "request_id": request.request_id,
        "request_number": request.request_number,
        "sub_service_code": request.sub_service_code,
        "description": request.description,
        "applicant_id": request.applicant_id,
        "document_ids": [],
        "mobile": "+966551234567",
        "email": "",
        "locale": "ar",
    }
    async with engine.begin() as conn:
        for sequence, priority, count in ((1, 0, 0), (2, 15, 2)):
            await conn.execute(
                text(
                    "INSERT INTO decisions (request_id, sequence, department, queue, priority,"
                    " rule, decided_at, request) VALUES (:id, :sequence, 'residents',"
                    " 'residents.visit-visa', :priority, 'r', :at, CAST(:request AS jsonb))"
                ),
                {
                    "id": uuid.UUID(request.request_id),
                    "sequence": sequence,
                    "priority": priority,
                    "at": SUBMITTED_AT,
                    "request": json.dumps({**row, "follow_up_count": count}),
                },
            )
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    async with engine.connect() as conn:
        kept = (await conn.execute(select(tables.follow_ups))).all()
    await engine.dispose()
    assert [tuple(r) for r in kept] == [(uuid.UUID(request.request_id), 2)]


# --- every event delivered again, on PostgreSQL -------------------------------------------
# Kafka delivers at least once, and intake's producer may publish a submission twice under two
# event ids. A state machine (hypothesis) takes one request through its submission, transfers,
# follow-ups and answers, and at random moments delivers every event applied so far once more,
# or the submission under a new id: the request's decisions and what routing published must
# not change. After every step, each decision is published once, in order.

DEPARTMENTS = ("residents", "reports", "passports")


class Redelivery(RuleBasedStateMachine):
    def __init__(self, routing: Routing, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.routing, self.loop = routing, loop
        on_loop(loop, emptied(routing.engine, tables.metadata))
        self.submission = submitted()
        self.request_id = self.submission.request_id
        self.follow_ups = 0
        self.delivered: list[tuple[str, events_pb2.Envelope]] = []

    def deliver(self, topic: str, *events: events_pb2.Envelope) -> None:
        """Applied now and kept to deliver again (a transfer before the submission too: it is
        kept for it)."""
        on_loop(self.loop, self.routing.subscriptions.deliver(topic, *events))
        self.delivered += [(topic, event) for event in events]

    async def _committed(
        self,
    ) -> tuple[list[tuple[int, str, int, str]], list[events_pb2.Envelope]]:
        return await self.routing.decisions(self.request_id), await self.routing.outbox()

    @rule(twice=st.booleans())
    def submitted(self, twice: bool) -> None:
        """The submission, in a poll that may hold it twice."""
        self.deliver(REQUEST_SUBMITTED, *[self.submission] * (2 if twice else 1))

    @rule()
    def published_again(self) -> None:
        """Intake's producer retried: the same submission under a new event id."""
        again = events_pb2.Envelope()
        again.CopyFrom(self.submission)
        again.event_id = str(uuid.uuid4())
        self.deliver(REQUEST_SUBMITTED, again)

    @rule(to=st.sampled_from(DEPARTMENTS))
    def transfer(self, to: str) -> None:
        self.deliver(REQUEST_STATUS_CHANGED, transferred(self.request_id, to, "Misfiled"))

    @rule()
    def follow_up(self) -> None:
        self.follow_ups += 1
        self.deliver(APPLICANT_ACTIONS, followed_up(self.request_id, self.follow_ups))

    @rule(relationship=st.sampled_from(["spouse", "sibling"]))
    def answer(self, relationship: str) -> None:
        """An answer that replaces a field, before the submission or after."""
        self.deliver(APPLICANT_ACTIONS, answered(self.request_id, {"relationship": relationship}))

    @precondition(lambda self: bool(self.delivered))
    @rule()
    def again(self) -> None:
        """Every event applied so far, delivered once more: the request has moved on since."""
        before = on_loop(self.loop, self._committed())
        for topic, event in self.delivered:
            on_loop(self.loop, self.routing.subscriptions.deliver(topic, event))
            assert on_loop(self.loop, self._committed()) == before

    @invariant()
    def each_decision_is_published_once_in_order(self) -> None:
        decisions, published = on_loop(self.loop, self._committed())
        assert [(queue, priority, rule) for _, queue, priority, rule in decisions] == [
            (e.request_routed.queue, e.request_routed.priority, e.request_routed.rule)
            for e in published
        ]


async def test_every_event_delivered_again_changes_nothing_on_postgresql(
    routing: Routing,
) -> None:
    loop = asyncio.get_running_loop()

    class Run(Redelivery):
        def __init__(self) -> None:
            super().__init__(routing, loop)

    await asyncio.to_thread(
        run_state_machine_as_test,
        Run,
        settings=settings(
            max_examples=60, stateful_step_count=30, deadline=None, derandomize=True, database=None
        ),
    )
