"""A consumer group does not start on a topic it cannot read, on the real broker: a topic not
made yet, or one its certificate is not granted, would otherwise be read by nobody and nothing
would say so. The service waits instead (the error is an outage's: health stays NOT_SERVING
and the start is retried) and starts once the topic is there."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaProducer
from tawasul.events.v1 import events_pb2
from tawasul_devstack.journey import eventually
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.consumer import EventConsumer, MissingTopics
from tawasul_platform.faults import is_transient
from tawasul_platform.kafka_tls import client_context, security

from tests.e2e.topics import make_topic, publish, scratch_topic


async def test_a_group_waits_for_a_topic_not_made_yet_then_reads_it(stack: Stack) -> None:
    bootstrap = stack.config.kafka_bootstrap
    present = await scratch_topic(bootstrap, "present-test")
    topic = f"missing-test-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    read: list[str] = []

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        read.extend(e.event_id for e in events)

    consumer = EventConsumer(
        bootstrap=bootstrap, group=f"g-{topic}", producer=producer, poll_ms=200
    )
    consumer.subscribe_batches(present, handle)
    consumer.subscribe_batches(topic, handle)
    try:
        with pytest.raises(MissingTopics) as missing:
            await consumer.start()
        assert missing.value.topics == (topic,)
        assert topic in str(missing.value)
        assert is_transient(missing.value)

        await make_topic(bootstrap, topic)
        await consumer.start()
        await publish(bootstrap, topic, _record("e1"))

        async def seen() -> list[str] | None:
            return list(read) if "e1" in read else None

        assert await eventually(seen, within=30, what=f"e1 read from {topic}") == ["e1"]
    finally:
        await consumer.stop()
        await producer.stop()


async def test_a_group_does_not_start_on_a_topic_its_certificate_may_not_read(
    stack: Stack,
) -> None:
    """Docs has no grant on review's status changes: Kafka does not list the topic to it."""
    cfg = stack.config
    context = client_context(
        cert_file=cfg.tls_cert_file("docs"),
        key_file=cfg.tls_key_file("docs"),
        ca_file=cfg.tls_ca_file,
    )
    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka_services_bootstrap, **security(context))
    await producer.start()

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        raise AssertionError("nothing may be read")

    consumer = EventConsumer(
        bootstrap=cfg.kafka_services_bootstrap,
        ssl_context=context,
        group="docs-missing-probe",
        producer=producer,
    )
    consumer.subscribe_batches(topics.REQUEST_SUBMITTED, handle)
    consumer.subscribe_batches(topics.REQUEST_STATUS_CHANGED, handle)
    try:
        with pytest.raises(MissingTopics) as missing:
            await consumer.start()
        assert missing.value.topics == (topics.REQUEST_STATUS_CHANGED,)
    finally:
        await consumer.stop()
        await producer.stop()


def _record(event_id: str) -> bytes:
    return events_pb2.Envelope(event_id=event_id, event_type="test").SerializeToString()
