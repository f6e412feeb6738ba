"""A consumer group that gathers (notify's, docs') takes a steady stream from the real broker
a poll's worth at a time, where one that does not gets a poll a record: the broker holds
the group's fetch for `gather_ms` before it answers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from tawasul.events.v1 import events_pb2
from tawasul_devstack.journey import eventually
from tawasul_devstack.stack import Stack
from tawasul_platform.consumer import EventConsumer

from tests.e2e.topics import scratch_topic

RECORDS = 10
# Records go out this far apart, 0.2 s in all: well inside one gathering window, and far
# enough apart that a group answered at once gets them in several polls.
APART_SECONDS = 0.02
GATHER_MS = 1000


async def test_a_gathering_group_takes_a_steady_stream_in_few_polls(stack: Stack) -> None:
    bootstrap = stack.config.kafka_bootstrap
    topic = await scratch_topic(bootstrap, "gather-test")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    polls: list[list[str]] = []

    async def handle(events: Sequence[events_pb2.Envelope]) -> None:
        polls.append([e.event_id for e in events])

    consumer = EventConsumer(
        bootstrap=bootstrap,
        group=f"gather-{topic}",
        producer=producer,
        poll_ms=200,
        gather_ms=GATHER_MS,
    )
    consumer.subscribe_batches(topic, handle)
    await consumer.start()
    try:
        # The first record shows the group has joined, so the stream starts after the join
        # rather than piling up before it (a backlog is fetched at once, gathering or not).
        await _send(producer, topic, "joined")
        await eventually(lambda: _read(polls, 1), within=30, what="the group's first record")
        polls.clear()
        sent = [f"e{n}" for n in range(RECORDS)]
        for event_id in sent:
            await _send(producer, topic, event_id)
            await asyncio.sleep(APART_SECONDS)
        assert (
            await eventually(lambda: _read(polls, RECORDS), within=30, what="every record") == sent
        )
    finally:
        await consumer.stop()
        await producer.stop()
    # One window holds them all; a second poll at most, should a window end mid-stream.
    assert len(polls) <= 2, polls


async def _send(producer: AIOKafkaProducer, topic: str, event_id: str) -> None:
    record = events_pb2.Envelope(event_id=event_id, event_type="test").SerializeToString()
    await producer.send_and_wait(topic, value=record, key=b"one-request")


async def _read(polls: list[list[str]], count: int) -> list[str] | None:
    read = [event_id for poll in polls for event_id in poll]
    return read if len(read) >= count else None
