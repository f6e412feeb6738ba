"""Offsets of applied polls are committed together, after they are applied, only forward, and
what could not be committed is tried again unless its partition went to another consumer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord, TopicPartition
from tawasul_platform.consumer import Commits

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


class FakeKafka:
    """Records each commit; fails the next `failing` ones; holds the partitions `assigned`."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.failing = 0
        self.assigned = {A0, A1, B0}
        self.slow: asyncio.Event | None = None
        self.started = 0

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.started += 1
        if self.slow is not None:
            await self.slow.wait()
        if self.failing:
            self.failing -= 1
            raise KafkaConnectionError("broker away")
        self.commits.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return self.assigned


def records(*at: tuple[TopicPartition, int]) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"", None, 0, 0, ())
        for tp, offset in at
    ]


async def until(done: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


def kafka_of(fake: FakeKafka) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, cast(Any, fake))


async def test_polls_applied_within_the_interval_go_in_one_commit_of_the_next_offsets() -> None:
    fake, commits = FakeKafka(), Commits(0.05)
    await commits.applied(kafka_of(fake), records((A0, 4), (A0, 5), (B0, 9)))
    await commits.applied(kafka_of(fake), records((A0, 6), (A1, 0)))
    assert fake.commits == []  # not at once
    await until(lambda: bool(fake.commits))
    await commits.applied(kafka_of(fake), records((A1, 1)))
    await until(lambda: len(fake.commits) == 2)
    assert fake.commits == [{A0: 7, B0: 10, A1: 1}, {A1: 2}]


async def test_a_failed_commit_is_tried_again_except_for_partitions_given_away() -> None:
    fake, commits = FakeKafka(), Commits(0.01)
    fake.failing = 1
    await commits.applied(kafka_of(fake), records((A0, 4), (B0, 2)))
    await until(lambda: fake.failing == 0)
    fake.assigned = {A0}  # a rebalance gave b-0 to another consumer meanwhile
    await until(lambda: bool(fake.commits))
    assert fake.commits == [{A0: 5}]


async def test_a_stopping_group_commits_at_once_and_every_poll_after() -> None:
    fake, commits = FakeKafka(), Commits(60.0)
    await commits.applied(kafka_of(fake), records((A0, 4)))
    await commits.close()
    assert fake.commits == [{A0: 5}]
    await commits.applied(kafka_of(fake), records((A0, 5)))  # the poll that was being applied
    assert fake.commits == [{A0: 5}, {A0: 6}]


async def test_commits_go_one_at_a_time_so_offsets_only_move_forward() -> None:
    fake, commits = FakeKafka(), Commits(0.0)
    fake.slow = asyncio.Event()
    first = asyncio.create_task(commits.applied(kafka_of(fake), records((A0, 4))))
    await asyncio.sleep(0)
    second = asyncio.create_task(commits.applied(kafka_of(fake), records((A0, 9))))
    await asyncio.sleep(0.01)
    assert fake.started == 1  # the second waits for the first to be answered
    fake.slow.set()
    await asyncio.gather(first, second)
    assert fake.commits == [{A0: 5}, {A0: 10}]
