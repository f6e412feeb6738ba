"""A compacted topic a group keeps as a table (review's staff records) is read from its start
each time the group is given it, on the real broker: a service whose rows were put back to an
older backup has every key's latest again at its next start, whatever the group committed."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from tawasul.events.v1 import events_pb2
from tawasul_devstack.journey import eventually
from tawasul_devstack.stack import Stack
from tawasul_platform.consumer import EventConsumer

from tests.e2e.topics import publish, scratch_topic


async def test_a_table_is_read_whole_at_every_start_where_a_topic_resumes(stack: Stack) -> None:
    bootstrap = stack.config.kafka_bootstrap
    topic = await scratch_topic(bootstrap, "table-test")
    group = f"table-{topic}"
    await publish(bootstrap, topic, *(_record(f"r{n}") for n in range(3)))
    first = await _read(bootstrap, group, topic, table=True, until=["r0", "r1", "r2"])
    assert first == ["r0", "r1", "r2"]
    # The group committed all three; read as a table, they come again from the start.
    again = await _read(bootstrap, group, topic, table=True, until=["r0", "r1", "r2"])
    assert again == ["r0", "r1", "r2"]
    # The same group reading the topic as any other resumes where it committed: only what is new.
    await publish(bootstrap, topic, _record("r3"))
    assert await _read(bootstrap, group, topic, table=False, until=["r3"]) == ["r3"]


def _record(event_id: str) -> bytes:
    return events_pb2.Envelope(event_id=event_id, event_type="test").SerializeToString()


async def _read(
    bootstrap: str, group: str, topic: str, *, table: bool, until: list[str]
) -> list[str]:
    """What one start of a consumer in `group` reads of `topic` until it has `until`; its
    offsets committed as it stops."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    read: list[str] = []

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        read.extend(e.event_id for e in events)

    consumer = EventConsumer(bootstrap=bootstrap, group=group, producer=producer, poll_ms=200)
    if table:
        consumer.subscribe_table(topic, handle)
    else:
        consumer.subscribe_batches(topic, handle)
    await consumer.start()
    try:

        async def whole() -> list[str] | None:
            return list(read) if set(until) <= set(read) else None

        await eventually(whole, within=30, what=f"{until} read by {group}")
    finally:
        await consumer.stop()
        await producer.stop()
    return read
