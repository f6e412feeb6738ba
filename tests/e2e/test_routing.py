"""Routing on the real stack: requests submitted through intake are routed by the rules, the
decision is read back over gRPC, and ExplainRoute answers for hypothetical requests."""

from __future__ import annotations

import uuid

import grpc
import pytest
from tawasul.intake.v1 import intake_pb2
from tawasul.routing.v1 import routing_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer, field_violations
from tawasul_platform.identity import Role

from tests.e2e.topics import envelopes

TIMEOUT = DEFAULT_DEADLINE_SECONDS
# From the development registry: an establishment and one of its sponsored workers.
ESTABLISHMENT = "7000000005"
WORKER = "2023456789"


async def decision_of(clients: Clients, token: str, request_id: str) -> routing_pb2.RoutingDecision:
    async def decided() -> routing_pb2.RoutingDecision | None:
        try:
            answer = await clients.routing.GetDecision(
                routing_pb2.GetDecisionRequest(request_id=request_id),
                timeout=TIMEOUT,
                metadata=bearer(token),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return answer.decision

    return await eventually(decided, what=f"a routing decision for {request_id}")


async def test_a_request_without_a_rule_goes_to_its_departments_default_queue(
    stack: Stack, clients: Clients
) -> None:
    citizen_id = new_citizen()
    request = await clients.submit(
        clients.token(citizen_id, Role.CITIZEN),
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="My visa transaction has been stalled at the payment step for two weeks",
        documents=[],
        mobile="0551234567",
    )
    reviewer = clients.token("E3001", Role.REVIEWER, frozenset({"reports"}))

    decision = await decision_of(clients, reviewer, request.request_id)
    assert (decision.department_code, decision.queue, decision.priority, decision.rule) == (
        "reports",
        "reports.default",
        0,
        "rules.v1:default",
    )
    assert decision.transfer_reason == ""

    ids = {request.request_id}
    (submitted,) = await envelopes(
        stack.config.kafka_bootstrap, topics.REQUEST_SUBMITTED, ids, at_least=1
    )
    (routed,) = await envelopes(
        stack.config.kafka_bootstrap, topics.REQUEST_ROUTED, ids, at_least=1
    )
    s, r = submitted.request_submitted, routed.request_routed
    assert (r.queue, r.priority, r.rule) == ("reports.default", 0, "rules.v1:default")
    # What review needs travels on from the submission.
    assert (r.request_number, r.subject_id, r.catalog_version) == (
        request.request_number,
        citizen_id,
        s.catalog_version,
    )
    assert (r.submitted_at, dict(r.fields), s.applicant_kind, r.applicant_kind) == (
        s.submitted_at,
        dict(s.fields),
        "citizen",
        "citizen",
    )
    assert s.channel == "web"
    assert (r.transfer_reason, r.transferred_from) == ("", "")


async def test_an_establishments_absence_report_goes_to_its_team_first(
    stack: Stack, clients: Clients
) -> None:
    # The rule matches on who filed: the kind the sign-in token names, not anything the
    # channel could claim in the request.
    portal = stack.config.identity.token(
        ESTABLISHMENT, Role.ESTABLISHMENT, channel="establishment-portal"
    )
    request = await clients.submit(
        portal,
        key=str(uuid.uuid4()),
        sub_service="reports.absence-report",
        description="Our worker has not come to work since the first of the month, no contact",
        documents=[],
        mobile="0551234567",
        subject_id=WORKER,
        fields={
            "iqama_number": WORKER,
            "absence_date": "2026-11-02",
            "worker_type": "establishment_worker",
        },
    )
    try:
        reviewer = clients.token("E3001", Role.REVIEWER, frozenset({"reports"}))
        decision = await decision_of(clients, reviewer, request.request_id)
        assert (decision.queue, decision.priority, decision.rule) == (
            "reports.establishments",
            20,
            "rules.v1:establishment-absence-report",
        )
        (envelope,) = await envelopes(
            stack.config.kafka_bootstrap,
            topics.REQUEST_SUBMITTED,
            {request.request_id},
            at_least=1,
        )
        submitted = envelope.request_submitted
        assert (submitted.applicant_kind, submitted.channel) == (
            "establishment",
            "establishment-portal",
        )
    finally:
        await clients.intake.CancelRequest(
            intake_pb2.CancelRequestRequest(
                request_number=request.request_number, reason="Test done"
            ),
            timeout=TIMEOUT,
            metadata=bearer(portal),
        )


async def test_a_rule_on_a_field_raises_the_priority(stack: Stack, clients: Clients) -> None:
    citizen_id = new_citizen()
    request = await clients.submit(
        clients.token(citizen_id, Role.CITIZEN),
        key=str(uuid.uuid4()),
        sub_service="passports.issue-renewal-problem",
        description="I paid the passport renewal fee a week ago and it is still not reflected",
        documents=[],
        mobile="0551234567",
        fields={
            "national_id": citizen_id,
            "request_type": "renewal",
            "problem": "fee_not_reflected",
        },
    )
    reviewer = clients.token("E3002", Role.REVIEWER, frozenset({"passports"}))

    decision = await decision_of(clients, reviewer, request.request_id)
    assert (decision.queue, decision.priority, decision.rule) == (
        "passports.default",
        10,
        "rules.v1:passport-fee-or-block",
    )
    (routed,) = await envelopes(
        stack.config.kafka_bootstrap, topics.REQUEST_ROUTED, {request.request_id}, at_least=1
    )
    assert (routed.request_routed.priority, routed.request_routed.rule) == (
        10,
        "rules.v1:passport-fee-or-block",
    )


async def test_explain_route_tells_a_reviewer_where_a_request_would_go(clients: Clients) -> None:
    reviewer = clients.token("E3003", Role.REVIEWER, frozenset({"residents"}))
    answer = await clients.routing.ExplainRoute(
        routing_pb2.ExplainRouteRequest(
            sub_service_code="residents.visit-visa-extension",
            applicant_kind="citizen",
            subject_nationality="YEM",
            channel="mobile",
            fields={"relationship": "parent"},
        ),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    assert (answer.department_code, answer.queue, answer.priority, answer.rule) == (
        "residents",
        "residents.visit-visa",
        0,
        "rules.v1:visit-visa-yemen-syria",
    )
    assert "subject nationality YEM is one of YEM, SYR" in answer.explanation

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.routing.ExplainRoute(
            routing_pb2.ExplainRouteRequest(sub_service_code="residents.no-such-thing"),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"sub_service_code"}

    citizen = clients.token(new_citizen(), Role.CITIZEN)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.routing.ExplainRoute(
            routing_pb2.ExplainRouteRequest(sub_service_code="reports.general-inquiry"),
            timeout=TIMEOUT,
            metadata=bearer(citizen),
        )
    # An end user's token is not meant for routing at all.
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
