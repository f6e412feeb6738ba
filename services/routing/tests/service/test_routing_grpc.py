"""Routing's real gRPC server, built by its composition root, in-process on a real PostgreSQL.

Kafka is left out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import tawasul_routing
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.ext.asyncio import async_sessionmaker
from tawasul.routing.v1 import routing_pb2, routing_pb2_grpc
from tawasul_platform.db import make_engine
from tawasul_platform.grpc import bearer, field_violations
from tawasul_platform.identity import Principal, Role, issue_token
from tawasul_platform.migrations import upgrade
from tawasul_routing import bootstrap
from tawasul_routing.adapters.repository import RoutingUnitOfWork
from tawasul_routing.settings import RoutingSettings

MIGRATIONS = Path(tawasul_routing.__file__).resolve().parent / "migrations"

SECRET = "service-test-secret"
REVIEWER = issue_token(SECRET, Principal("E1001", Role.REVIEWER, frozenset({"residents"})))
CITIZEN = issue_token(SECRET, Principal("1000000008", Role.CITIZEN))


class Routing:
    """The gRPC client."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = routing_pb2_grpc.RoutingServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    async def explain(
        self, token: str = REVIEWER, **fields: Any
    ) -> routing_pb2.ExplainRouteResponse:
        return await self.stub.ExplainRoute(
            routing_pb2.ExplainRouteRequest(**fields),
            timeout=5,
            metadata=bearer(token),
        )

    async def decision(self, request_id: str) -> routing_pb2.RoutingDecision:
        answer = await self.stub.GetDecision(
            routing_pb2.GetDecisionRequest(request_id=request_id),
            timeout=5,
            metadata=bearer(REVIEWER),
        )
        return answer.decision


@pytest.fixture
async def routing(database_url: str) -> AsyncIterator[Routing]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = make_engine(database_url, pool_size=4)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    settings = RoutingSettings(
        database_url=database_url,
        kafka_bootstrap="127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        identity_secret=SECRET,
    )

    def uow() -> RoutingUnitOfWork:
        return RoutingUnitOfWork(sessions)

    server = bootstrap.grpc_server(settings, bootstrap.servicer(settings, uow=uow))
    await server.start()
    await server.serving(True)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    client = Routing(channel)
    yield client
    await channel.close()
    await server.stop(1)
    await engine.dispose()


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
        "sub_service_code": "not a sub-service of catalog v2",
        "channel": "one of web, mobile, establishment-portal, or empty",
    }


async def test_only_employees_may_ask(routing: Routing) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.explain(CITIZEN, sub_service_code="reports.general-inquiry")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.stub.ExplainRoute(
            routing_pb2.ExplainRouteRequest(sub_service_code="reports.general-inquiry"), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_unrouted_request_is_not_found(routing: Routing) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await routing.decision(str(uuid.uuid4()))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
