"""Reads what really is on a Kafka topic, without joining (or disturbing) any consumer group."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from tawasul.events.v1 import events_pb2


async def envelopes(
    bootstrap: str, topic: str, request_ids: set[str], *, at_least: int, within: float = 30.0
) -> list[events_pb2.Envelope]:
    """Every envelope on `topic` keyed by one of `request_ids`, once `at_least` have arrived.

    After the last wanted one arrives, reads on for a second so duplicates would show too.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise AssertionError(f"topic {topic} does not exist")
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[events_pb2.Envelope] = []
        deadline = time.monotonic() + within
        settle_until: float | None = None
        while time.monotonic() < (settle_until or deadline):
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(
                    events_pb2.Envelope.FromString(r.value or b"")
                    for r in records
                    if r.key is not None and r.key.decode() in request_ids
                )
            if settle_until is None and len(found) >= at_least:
                settle_until = time.monotonic() + 1.0
        if len(found) < at_least:
            raise AssertionError(f"{len(found)} of {at_least} events on {topic} after {within} s")
        return found
    finally:
        await consumer.stop()
