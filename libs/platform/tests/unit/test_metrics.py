import asyncio
import time

from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY
from tawasul_platform.metrics import ConsumerLag


class FakePositions:
    """An aiokafka consumer's local view: what it holds, its last fetch's ends, its positions."""

    def __init__(
        self, ends: dict[TopicPartition, int | None], positions: dict[TopicPartition, int]
    ):
        self.ends = ends
        self.positions = positions

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.ends[partition]

    async def position(self, partition: TopicPartition) -> int:
        if partition not in self.positions:
            raise IllegalStateError("not assigned")
        return self.positions[partition]


def lag(topic: str, partition: int, group: str) -> float | None:
    return REGISTRY.get_sample_value(
        "tawasul_consumer_lag", {"topic": topic, "partition": str(partition), "group": group}
    )


async def test_lag_is_each_held_partitions_end_less_its_position() -> None:
    p0, p1, p2 = (TopicPartition("lag.t", n) for n in range(3))
    consumer = FakePositions({p0: 10, p1: 4, p2: None}, {p0: 7, p1: 4})

    await ConsumerLag("lag-g", interval=0).update(consumer)

    assert lag("lag.t", 0, "lag-g") == 3
    assert lag("lag.t", 1, "lag-g") == 0
    # Never fetched: no end known, so no guess either.
    assert lag("lag.t", 2, "lag-g") is None


async def test_a_partition_given_to_another_replica_is_no_longer_reported() -> None:
    p0, p1 = TopicPartition("lag.u", 0), TopicPartition("lag.u", 1)
    gauge = ConsumerLag("lag-g", interval=0)
    await gauge.update(FakePositions({p0: 5, p1: 9}, {p0: 5, p1: 2}))
    assert lag("lag.u", 1, "lag-g") == 7

    await gauge.update(FakePositions({p0: 6}, {p0: 6}))

    assert lag("lag.u", 0, "lag-g") == 0
    assert lag("lag.u", 1, "lag-g") is None


async def test_a_partition_given_away_before_it_was_ever_fetched_is_no_trouble() -> None:
    p0, p1 = TopicPartition("lag.w", 0), TopicPartition("lag.w", 1)
    gauge = ConsumerLag("lag-g", interval=0)
    await gauge.update(FakePositions({p0: 3, p1: None}, {p0: 1}))

    await gauge.update(FakePositions({p0: 3}, {p0: 3}))

    assert (lag("lag.w", 0, "lag-g"), lag("lag.w", 1, "lag-g")) == (0, None)


async def test_a_partition_revoked_while_read_is_skipped() -> None:
    p0 = TopicPartition("lag.v", 0)

    await ConsumerLag("lag-g", interval=0).update(FakePositions({p0: 5}, {}))

    assert lag("lag.v", 0, "lag-g") is None


async def test_one_consumer_reports_the_partitions_of_every_topic_it_reads() -> None:
    a0, b0, b1 = TopicPartition("lag.a", 0), TopicPartition("lag.b", 0), TopicPartition("lag.b", 1)
    gauge = ConsumerLag("lag-g", interval=0)
    await gauge.update(FakePositions({a0: 4, b0: 8, b1: 2}, {a0: 1, b0: 8, b1: 0}))
    assert (lag("lag.a", 0, "lag-g"), lag("lag.b", 0, "lag-g"), lag("lag.b", 1, "lag-g")) == (
        3,
        0,
        2,
    )

    await gauge.update(FakePositions({a0: 4, b0: 9}, {a0: 4, b0: 9}))

    assert (lag("lag.a", 0, "lag-g"), lag("lag.b", 0, "lag-g"), lag("lag.b", 1, "lag-g")) == (
        0,
        0,
        None,
    )


async def test_batches_within_the_interval_are_read_once_at_its_end() -> None:
    """A read walks every partition the group holds: after each poll of one event it cost more
    than the event. Within the interval the last batch's lag is read at its end, not lost."""
    p0 = TopicPartition("lag.i", 0)
    gauge = ConsumerLag("lag-i", interval=0.3)
    started = time.monotonic()
    await gauge.update(FakePositions({p0: 10}, {p0: 4}))
    assert lag("lag.i", 0, "lag-i") == 6

    await gauge.update(FakePositions({p0: 10}, {p0: 8}))
    await gauge.update(FakePositions({p0: 10}, {p0: 10}))
    assert lag("lag.i", 0, "lag-i") == 6  # not read yet

    while lag("lag.i", 0, "lag-i") != 0:
        assert time.monotonic() - started < 5, "the last batch's lag was never read"
        await asyncio.sleep(0.02)
    assert time.monotonic() - started >= 0.3


async def test_a_stopped_consumers_read_left_for_later_is_dropped() -> None:
    p0 = TopicPartition("lag.s", 0)
    gauge = ConsumerLag("lag-s", interval=60)
    await gauge.update(FakePositions({p0: 3}, {p0: 1}))
    await gauge.update(FakePositions({p0: 3}, {p0: 3}))
    later = gauge._later
    assert later is not None

    gauge.close()

    await asyncio.gather(later, return_exceptions=True)
    assert later.cancelled()
    assert lag("lag.s", 0, "lag-s") == 2
