"""Reads what really is on a Kafka topic, without joining (or disturbing) any consumer group;
publishes to one as another system would; makes a topic of a test's own."""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord
from tawasul.events.v1 import events_pb2


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


async def records(
    bootstrap: str, topic: str, keys: set[str], *, at_least: int, within: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic` with one of `keys`, once `at_least` have arrived.

    After the last wanted one arrives, reads on for a second so duplicates would show too.
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
        deadline = time.monotonic() + within
        settle_until: float | None = None
        while time.monotonic() < (settle_until or deadline):
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(r for r in batch if r.key is not None and r.key.decode() in keys)
            if settle_until is None and len(found) >= at_least:
                settle_until = time.monotonic() + 1.0
        if len(found) < at_least:
            raise AssertionError(f"{len(found)} of {at_least} records on {topic} after {within} s")
        return found
    finally:
        await consumer.stop()


async def envelopes(
    bootstrap: str, topic: str, request_ids: set[str], *, at_least: int, within: float = 30.0
) -> list[events_pb2.Envelope]:
    """The events of `request_ids` on `topic`, decoded."""
    found = await records(bootstrap, topic, request_ids, at_least=at_least, within=within)
    return [events_pb2.Envelope.FromString(r.value or b"") for r in found]
