"""Intake's real gRPC server in-process on a real PostgreSQL; Kafka is left out, so the
events it would publish are checked in its outbox table."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import tawasul_intake
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_intake.adapters import tables
from tawasul_intake.adapters.repository import IntakeUnitOfWork
from tawasul_intake.entrypoints.grpc import IntakeServicer
from tawasul_platform.catalog import load_catalog
from tawasul_platform.db import make_engine
from tawasul_platform.grpc import GrpcServer, bearer, existing_resource, field_violations
from tawasul_platform.identity import Principal, Role, issue_token
from tawasul_platform.migrations import upgrade
from tawasul_platform.topics import REQUEST_SUBMITTED

MIGRATIONS = Path(tawasul_intake.__file__).resolve().parent / "migrations"

SECRET = "service-test-secret"
CITIZEN = issue_token(SECRET, Principal("1000000008", Role.CITIZEN))
OTHER = issue_token(SECRET, Principal("1000000016", Role.CITIZEN))
DESCRIPTION = "The photo does not appear when renewing passport A1234567"


class NoDocuments:
    """Docs stands outside this tier; no account here has uploaded anything."""

    async def missing(self, document_ids: tuple[uuid.UUID, ...], token: str) -> set[uuid.UUID]:
        return set(document_ids)


class Intake:
    def __init__(self, channel: grpc.aio.Channel, database_url: str) -> None:
        self.stub = intake_pb2_grpc.IntakeServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)
        self.engine = make_engine(database_url, pool_size=2)

    async def submit(self, token: str = CITIZEN, **fields: object) -> intake_pb2.Request:
        message = intake_pb2.SubmitRequestRequest(
            idempotency_key=str(uuid.uuid4()),
            sub_service_code="passports.issue-renewal-problem",
            description=DESCRIPTION,
            contact=common_pb2.Contact(mobile="0551234567"),
        )
        for name, value in fields.items():
            if isinstance(value, list):
                getattr(message, name).extend(value)
            else:
                setattr(message, name, value)
        answer = await self.stub.SubmitRequest(message, timeout=5, metadata=bearer(token))
        return answer.request

    async def count(self, table: object) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


@pytest.fixture
async def intake(database_url: str) -> AsyncIterator[Intake]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = make_engine(database_url, pool_size=4)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    servicer = IntakeServicer(
        uow=lambda: IntakeUnitOfWork(sessions),
        documents=NoDocuments(),
        catalog=load_catalog(),
        secret=SECRET,
    )
    server = GrpcServer(
        "127.0.0.1:0",
        ["tawasul.intake.v1.IntakeService"],
        lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, s),
    )
    await server.start()
    await server.serving(True)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    client = Intake(channel, database_url)
    yield client
    await channel.close()
    await server.stop(1)
    await client.engine.dispose()
    await engine.dispose()


async def test_health_reports_serving(intake: Intake) -> None:
    answer = await intake.health.Check(
        health_pb2.HealthCheckRequest(service="tawasul.intake.v1.IntakeService"), timeout=5
    )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_submission_is_stored_with_its_event_in_the_outbox(intake: Intake) -> None:
    request = await intake.submit()
    assert request.request_number.startswith("TW")
    assert request.status == common_pb2.REQUEST_STATUS_SUBMITTED
    async with intake.engine.connect() as conn:
        row = (await conn.execute(select(tables.outbox))).one()
    event = events_pb2.Envelope.FromString(row.payload)
    assert (row.topic, row.key) == (REQUEST_SUBMITTED, request.request_id)
    assert event.request_submitted.request_number == request.request_number
    assert event.request_submitted.contact.mobile == "+966551234567"
    assert row.headers["traceparent"].startswith("00-")


async def test_bad_input_is_refused_field_by_field_and_nothing_is_stored(intake: Intake) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(sub_service_code="nope", description="broken")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"sub_service_code", "description"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(document_ids=[str(uuid.uuid4())])
    assert set(field_violations(caught.value)) == {"document_ids[0]"}
    assert await intake.count(tables.requests) == 0
    assert await intake.count(tables.outbox) == 0


async def test_calls_without_a_valid_token_are_unauthenticated(intake: Intake) -> None:
    for metadata in ((), bearer("x.y")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.stub.GetRequest(
                intake_pb2.GetRequestRequest(request_number="TW2600000001"),
                timeout=5,
                metadata=metadata,
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_concurrent_retries_of_one_key_make_one_request(intake: Intake) -> None:
    key = str(uuid.uuid4())
    answers = await asyncio.gather(*(intake.submit(idempotency_key=key) for _ in range(8)))
    assert len({a.request_id for a in answers}) == 1
    assert await intake.count(tables.requests) == 1
    assert await intake.count(tables.outbox) == 1


async def test_a_key_reused_for_another_request_names_the_first(intake: Intake) -> None:
    key = str(uuid.uuid4())
    first = await intake.submit(idempotency_key=key)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(idempotency_key=key, description=DESCRIPTION + " and more")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert existing_resource(caught.value) == first.request_number


async def test_tracking_shows_own_requests_only(intake: Intake) -> None:
    request = await intake.submit()
    mine = await intake.stub.GetRequest(
        intake_pb2.GetRequestRequest(request_number=request.request_number),
        timeout=5,
        metadata=bearer(CITIZEN),
    )
    assert mine.request.request_id == request.request_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.GetRequest(
            intake_pb2.GetRequestRequest(request_number=request.request_number),
            timeout=5,
            metadata=bearer(OTHER),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
