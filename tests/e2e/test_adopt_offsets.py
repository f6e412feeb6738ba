"""A consumer group that takes over from others (notify's one group, from its per-channel
groups) starts on the real broker where the slowest of them stood: it reads what any of them
had still to read, and adopts only once."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from tawasul_devstack.offsets import Offsets
from tawasul_devstack.stack import Stack
from tawasul_platform.adopt import adopt_offsets

from tests.e2e.topics import publish, scratch_topic


async def test_the_new_group_reads_what_the_slowest_old_group_had_not_and_adopts_once(
    stack: Stack,
) -> None:
    bootstrap = stack.config.kafka_bootstrap
    topic, run = await scratch_topic(bootstrap, "adopt-test"), uuid.uuid4().hex[:8]
    await publish(bootstrap, topic, *(str(n).encode() for n in range(10)), partition=0)
    tp = TopicPartition(topic, 0)
    ahead, behind, new = f"ahead-{run}", f"behind-{run}", f"new-{run}"
    async with Offsets(bootstrap) as offsets:
        await offsets.place(ahead, {tp: 10})
        await offsets.place(behind, {tp: 4})

    adopted = await adopt_offsets(bootstrap, new, {topic: (ahead, behind)})

    assert adopted == {tp: 4}
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=new,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        read: list[bytes] = []
        while len(read) < 6:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                read.extend(r.value or b"" for r in batch)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert read == [str(n).encode() for n in range(4, 10)]
    # Started once: a later start (a restart, another replica) keeps the group's own offsets.
    assert await adopt_offsets(bootstrap, new, {topic: (ahead, behind)}) == {}
    async with Offsets(bootstrap) as offsets:
        assert await offsets.committed(new, [tp]) == {tp: 10}
