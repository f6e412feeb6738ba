"""Events a consumer cannot apply are parked on its group's dead-letter topic; the partition
goes on, and other groups are not affected."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer
from tawasul.events.v1 import events_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.identity import Role

from tests.e2e.topics import records


async def test_poison_events_are_dead_lettered_and_the_queue_goes_on(
    stack: Stack, clients: Clients
) -> None:
    garbage_key, unroutable_key = f"poison-{uuid.uuid4()}", str(uuid.uuid4())
    unroutable = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        schema_version=1,
        request_id=unroutable_key,
        producer="test",
        request_submitted=events_pb2.RequestSubmitted(
            request_id=unroutable_key, request_number="TW2699999999", sub_service_code="no.such"
        ),
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.config.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in (
            (garbage_key, b"\xff not a protobuf envelope"),
            (unroutable_key, unroutable.SerializeToString()),
        ):
            await producer.send_and_wait(topics.REQUEST_SUBMITTED, value=value, key=key.encode())
    finally:
        await producer.stop()

    request = await clients.submit(
        clients.token(new_citizen(), Role.CITIZEN),
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="My transaction has been stalled for two weeks at the payment step",
        documents=[],
        mobile="0551234567",
    )
    reviewer = clients.token("E4001", Role.REVIEWER, frozenset({"reports"}))

    async def queued() -> bool | None:
        items = await clients.queue(reviewer, "reports")
        return True if any(i.request_id == request.request_id for i in items) else None

    await eventually(queued, what="a good request routed after the poison ones")

    for group in ("routing", "notify-events"):
        parked = await records(
            stack.config.kafka_bootstrap,
            topics.dead_letter_topic(topics.REQUEST_SUBMITTED, group),
            {garbage_key, unroutable_key},
            at_least=2,
        )
        by_key = {r.key.decode(): dict(r.headers) for r in parked if r.key is not None}
        assert set(by_key) == {garbage_key, unroutable_key}, group
        assert b"DecodeError" in by_key[garbage_key]["dlt.error"]
        assert by_key[unroutable_key]["dlt.source"].startswith(topics.REQUEST_SUBMITTED.encode())
