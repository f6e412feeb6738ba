"""Reads what really is on a Kafka topic, without joining (or disturbing) any consumer group,
and counts it once the stack has gone quiet; publishes to one as another system would; makes a
topic of a test's own."""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord
from tawasul.events.v1 import events_pb2
from tawasul_devstack.journey import eventually
from tawasul_devstack.stack import Stack

from tests.e2e import chaos
from tests.e2e.direct import scalar


async def publish(
    bootstrap: str,
    topic: str,
    *values: bytes,
    key: bytes | None = None,
    partition: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Sends each of `values`, in order, once the broker has taken the one before."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(
                topic, value=value, key=key, partition=partition, headers=headers
            )
    finally:
        await producer.stop()


async def scratch_topic(bootstrap: str, prefix: str) -> str:
    """A new one-partition topic named after `prefix`, for a test that reads it alone."""
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await make_topic(bootstrap, topic)
    return topic


async def make_topic(bootstrap: str, topic: str) -> None:
    """Makes `topic`, with one partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def gone_quiet(stack: Stack, request_ids: set[str], *, within: float = 120.0) -> None:
    """Waits until nothing more can come of `request_ids`: no outbox row waits, every group has
    committed its topics' ends, and notify has no message of theirs left to send (its senders
    send from its table after its group committed), so what is counted then is all there is."""

    async def probe() -> bool | None:
        if not await chaos.quiet(stack):
            return None
        pending = await scalar(
            stack,
            "notify",
            "SELECT count(*) FROM deliveries WHERE status = 'pending' AND request_id = ANY(:ids)",
            ids=[uuid.UUID(i) for i in request_ids],
        )
        return None if pending else True

    await eventually(probe, within=within, what="the stack gone quiet")


async def records(
    bootstrap: str,
    topic: str,
    keys: set[str],
    *,
    at_least: int,
    within: float = 30.0,
    quiet: Stack | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic` with one of `keys`, once `at_least` have arrived.

    Counting them? Pass `quiet` (keys are then request ids): once `at_least` have arrived, it
    waits until the stack has gone quiet (`gone_quiet`) and reads on to the topic's ends as
    they are then, so every duplicate that will ever be published is among them. Without it,
    it reads on for a second only, which a slow consumer's late duplicate can outlast.
    """
    # No group: every partition is read from its start and no offset is committed anywhere.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise AssertionError(f"topic {topic} does not exist")
        found: list[ConsumerRecord[bytes, bytes]] = []

        async def read() -> None:
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(r for r in batch if r.key is not None and r.key.decode() in keys)

        deadline = time.monotonic() + within
        while len(found) < at_least and time.monotonic() < deadline:
            await read()
        if len(found) < at_least:
            raise AssertionError(f"{len(found)} of {at_least} records on {topic} after {within} s")
        if quiet is None:
            settle_until = time.monotonic() + 1.0
            while time.monotonic() < settle_until:
                await read()
            return found
        await gone_quiet(quiet, keys)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        for partition, end in ends.items():
            while await consumer.position(partition) < end:
                await read()
        return found
    finally:
        await consumer.stop()


async def envelopes(
    bootstrap: str,
    topic: str,
    request_ids: set[str],
    *,
    at_least: int,
    within: float = 30.0,
    quiet: Stack | None = None,
) -> list[events_pb2.Envelope]:
    """The events of `request_ids` on `topic`, decoded (counted once `quiet`, as `records`)."""
    found = await records(
        bootstrap, topic, request_ids, at_least=at_least, within=within, quiet=quiet
    )
    return [events_pb2.Envelope.FromString(r.value or b"") for r in found]
