"""Consumer groups' committed offsets and topics' end offsets, read without joining (or
disturbing) any group: what the chaos tests and the P4 benchmark count with."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Self

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from tawasul_platform import topics

PARTITIONS = {spec.name: spec.partitions for spec in topics.TOPICS}


def behind(ends: dict[TopicPartition, int], committed: dict[TopicPartition, int]) -> int:
    """Records up to `ends` not committed (a partition never committed counts from 0)."""
    return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())


class Offsets:
    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )

    async def __aenter__(self) -> Self:
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self._consumer.stop()
        with contextlib.suppress(Exception):
            await self._admin.close()

    async def ends(self, topic: str) -> dict[TopicPartition, int]:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS[topic])]
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(parts)
        return ends

    async def committed(
        self, group: str, parts: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        found = await self._admin.list_consumer_group_offsets(group, partitions=list(parts))
        # -1: the group has committed nothing there yet.
        return {tp: max(meta.offset, 0) for tp, meta in found.items()}

    async def behind(self, group: str, ends: dict[TopicPartition, int]) -> int:
        """How many records up to `ends` the group has not committed."""
        return behind(ends, await self.committed(group, ends))

    async def dead_letters(self) -> int:
        """Every record ever parked on any dead-letter topic."""
        total = 0
        for topic, group in topics.SUBSCRIPTIONS:
            total += sum((await self.ends(topics.dead_letter_topic(topic, group))).values())
        return total

    async def place(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        """Commits `offsets` for a group with no member (its services stopped): where it
        resumes. Retried while the broker still counts a stopped member in."""
        deadline = time.monotonic() + 60
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap, group_id=group, enable_auto_commit=False
            )
            await consumer.start()
            try:
                consumer.assign(list(offsets))
                await consumer.commit(offsets)
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
            finally:
                await consumer.stop()
            await asyncio.sleep(1.0)
