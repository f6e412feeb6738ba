"""Processes die under load: nothing is lost, nothing is applied twice."""

from __future__ import annotations

import asyncio
import signal
import uuid

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen, sample_pdf
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.identity import Role

from tests.e2e.direct import object_keys, scalar
from tests.e2e.topics import envelopes, records

pytestmark = pytest.mark.chaos

CITIZEN = "1000000008"
DEPARTMENT = "reports"
REQUESTS = 40
# Services that consume request.submitted, and their consumer groups.
CONSUMERS = ("routing", "notify")
GROUPS = ("routing", "docs", "notify", "notify-sms", "notify-email", "notify-inapp")


async def test_killing_routing_loses_and_duplicates_nothing(stack: Stack, clients: Clients) -> None:
    reviewer = clients.token("E3001", Role.REVIEWER, frozenset({DEPARTMENT}))

    async def submit(n: int) -> str:
        # A citizen each: a person has one open request per sub-service.
        request = await clients.submit(
            clients.token(new_citizen(), Role.CITIZEN),
            key=str(uuid.uuid4()),
            sub_service="reports.general-inquiry",
            description=f"Please extend exit re-entry visa number {n:06d} by 30 days",
            documents=[],
            mobile="0551234567",
            locale="en",
        )
        return request.request_id

    first = await asyncio.gather(*(submit(n) for n in range(REQUESTS // 2)))
    await asyncio.to_thread(stack.stop_service, "routing", signal.SIGKILL)
    second = await asyncio.gather(*(submit(n) for n in range(REQUESTS // 2, REQUESTS)))
    await asyncio.to_thread(stack.start_service, "routing")
    ids = {*first, *second}
    assert len(ids) == REQUESTS

    async def all_queued() -> list[str] | None:
        items = await clients.queue(reviewer, DEPARTMENT)
        mine = [i.request_id for i in items if i.request_id in ids]
        return mine if len(set(mine)) == REQUESTS else None

    queued = await eventually(all_queued, within=90, what=f"{REQUESTS} requests in the queue")
    assert sorted(queued) == sorted(ids)

    routed = await envelopes(
        stack.config.kafka_bootstrap, topics.REQUEST_ROUTED, ids, at_least=REQUESTS
    )
    # A crash may make the relay publish a row twice (same event id, skipped by review's
    # inbox), but each request is decided, and announced, exactly once.
    decisions = {(e.request_id, e.event_id) for e in routed}
    assert sorted(r for r, _ in decisions) == sorted(ids)


async def test_requests_taken_while_kafka_is_down_reach_their_queue(
    stack: Stack, clients: Clients
) -> None:
    reviewer = clients.token("E3002", Role.REVIEWER, frozenset({DEPARTMENT}))
    await asyncio.to_thread(stack.stop_service, "kafka", signal.SIGKILL)
    try:
        # The outbox keeps intake answering: the state change commits, its event waits.
        ids = {
            (
                await clients.submit(
                    clients.token(new_citizen(), Role.CITIZEN),
                    key=str(uuid.uuid4()),
                    sub_service="reports.general-inquiry",
                    description=f"Correct my date of birth on record {n}: it shows 1404 not 1405",
                    documents=[],
                    mobile="0551234567",
                )
            ).request_id
            for n in range(5)
        }
    finally:
        await asyncio.to_thread(stack.start_service, "kafka")

    async def all_queued() -> bool | None:
        items = await clients.queue(reviewer, DEPARTMENT)
        return True if ids <= {i.request_id for i in items} else None

    await eventually(all_queued, within=120, what="requests taken during the outage, queued")


async def test_uploads_while_object_storage_is_down_are_unavailable(
    stack: Stack, clients: Clients
) -> None:
    citizen_id = new_citizen()
    citizen = clients.token(citizen_id, Role.CITIZEN)
    pdf = sample_pdf("scan")
    stored_before = await asyncio.to_thread(object_keys, stack)
    await asyncio.to_thread(stack.stop_service, "minio", signal.SIGKILL)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await clients.upload(citizen, "scan.pdf", pdf)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    finally:
        await asyncio.to_thread(stack.start_service, "minio")
    # Nothing half-written: no row, no object.
    owned = "SELECT count(*) FROM documents WHERE owner_id = :owner"
    assert await scalar(stack, "docs", owned, owner=citizen_id) == 0
    assert await asyncio.to_thread(object_keys, stack) == stored_before
    stored = await clients.upload(citizen, "scan.pdf", pdf)
    assert stored.size_bytes == len(pdf)
    assert await scalar(stack, "docs", owned, owner=citizen_id) == 1


async def test_a_database_outage_is_waited_out_not_dead_lettered(
    stack: Stack, clients: Clients
) -> None:
    request_id = str(uuid.uuid4())
    submitted = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        schema_version=1,
        request_id=request_id,
        producer="test",
        request_submitted=events_pb2.RequestSubmitted(
            request_id=request_id,
            request_number="TW2690000001",
            sub_service_code="reports.general-inquiry",
            department_code="reports",
            description="Submitted while the database was down",
            applicant_id=CITIZEN,
            contact=common_pb2.Contact(mobile="+966551234567", locale="ar"),
        ),
    )
    await asyncio.to_thread(stack.stop_service, "postgres", signal.SIGKILL)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await clients.track(clients.token(CITIZEN, Role.CITIZEN), "TW482913578")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        producer = AIOKafkaProducer(bootstrap_servers=stack.config.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                topics.REQUEST_SUBMITTED,
                value=submitted.SerializeToString(),
                key=request_id.encode(),
            )
        finally:
            await producer.stop()

        # Each consumer fails on the event as many times as a broken handler may (four attempts)
        # before it would be dead-lettered; an outage must instead keep it waiting.
        async def waited_out() -> bool | None:
            waits = f"event {submitted.event_id} waits for a dependency"
            logs = [stack.log_path(name).read_text(errors="replace") for name in CONSUMERS]
            return True if all(log.count(waits) >= 4 for log in logs) else None

        await eventually(waited_out, within=60, what="both consumers waiting out the outage")
    finally:
        await asyncio.to_thread(stack.start_service, "postgres")

    reviewer = clients.token("E3003", Role.REVIEWER, frozenset({"reports"}))

    async def queued() -> bool | None:
        items = await clients.queue(reviewer, "reports")
        return True if any(i.request_id == request_id for i in items) else None

    await eventually(queued, within=90, what="the event applied after the outage")
    for group in GROUPS:
        parked = await records(
            stack.config.kafka_bootstrap,
            topics.dead_letter_topic(topics.REQUEST_SUBMITTED, group),
            {request_id},
            at_least=0,
            within=2,
        )
        assert parked == [], group
