from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ConsumerStoppedError, KafkaConnectionError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition
from asyncpg.exceptions import (
    AdminShutdownError,
    CannotConnectNowError,
    DeadlockDetectedError,
    SerializationError,
    TooManyConnectionsError,
)
from faststream._internal.endpoint.subscriber.usecase import SubscriberUsecase
from faststream.kafka.subscriber.usecase import BatchSubscriber
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from tawasul.events.v1 import events_pb2
from tawasul_platform.consumer import EventConsumer, MissingTopics, Subscriptions
from tawasul_platform.errors import InvalidArgument, Unavailable
from tawasul_platform.events import SCHEMA_VERSION
from tawasul_platform.faults import is_transient
from tawasul_platform.topics import STAFF_REVIEWERS

EVENT = events_pb2.Envelope(event_id="e1", event_type="tawasul.requests.submitted")


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, dict[str, bytes]]] = []

    async def send_and_wait(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: Any
    ) -> None:
        self.sent.append((topic, value, dict(headers)))


def record(
    value: bytes, *, offset: int = 7, key: bytes = b"r1", topic: str = "t"
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=2,
        serialized_value_size=len(value),
        headers=[],
    )


class FakeTransaction:
    """Records what each transaction saw, the locks it took first, and whether it committed."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.locks: list[list[str]] = []

    @asynccontextmanager
    async def __call__(self, *, locks: Collection[str] = ()) -> AsyncIterator[None]:
        self.locks.append(sorted(locks))
        try:
            yield
        except Exception:
            self.outcomes.append("rolled back")
            raise
        self.outcomes.append("committed")


def consumer(producer: FakeProducer, transaction: FakeTransaction | None = None) -> EventConsumer:
    return EventConsumer(
        bootstrap="127.0.0.1:1",
        group="g",
        producer=producer,
        transaction=transaction,
        max_attempts=3,
        backoff_seconds=0.001,
    )


def events(*ids: str, key: bytes = b"r1", topic: str = "t") -> list[ConsumerRecord[bytes, bytes]]:
    return [
        record(events_pb2.Envelope(event_id=i).SerializeToString(), offset=n, key=key, topic=topic)
        for n, i in enumerate(ids)
    ]


def failing(*errors: Exception) -> tuple[list[str], Any]:
    calls: list[str] = []
    pending = list(errors)

    async def handle(event: events_pb2.Envelope) -> None:
        calls.append(event.event_id)
        if pending:
            raise pending.pop(0)

    return calls, handle


async def test_an_outage_is_waited_out_and_never_dead_lettered() -> None:
    producer = FakeProducer()
    outage = OperationalError("SELECT 1", None, ConnectionRefusedError())
    calls, handle = failing(*[outage] * 5, Unavailable("gateway"))
    await consumer(producer)._process(record(EVENT.SerializeToString()), handle, "t.dlt.g")
    assert len(calls) == 7
    assert producer.sent == []


async def test_a_database_out_of_connections_or_restarting_is_waited_out() -> None:
    producer = FakeProducer()
    calls, handle = failing(
        PoolTimeout("QueuePool limit of size 5 overflow 5 reached, connection timed out"),
        TooManyConnectionsError("sorry, too many clients already"),
        AdminShutdownError("terminating connection due to administrator command"),
        CannotConnectNowError("the database system is starting up"),
    )
    # More outages than max_attempts: none counts as an attempt.
    await consumer(producer)._process(record(EVENT.SerializeToString()), handle, "t.dlt.g")
    assert len(calls) == 5
    assert producer.sent == []


async def test_an_unacceptable_event_is_dead_lettered_at_once() -> None:
    producer = FakeProducer()
    calls, handle = failing(InvalidArgument({"sub_service_code": "unknown"}))
    await consumer(producer)._process(record(EVENT.SerializeToString()), handle, "t.dlt.g")
    assert len(calls) == 1
    ((topic, value, headers),) = producer.sent
    assert (topic, value) == ("t.dlt.g", EVENT.SerializeToString())
    assert headers["dlt.source"] == b"t[0]@7"


async def test_a_failing_handler_is_retried_then_dead_lettered() -> None:
    producer = FakeProducer()
    calls, handle = failing(*[ValueError("bug")] * 3)
    await consumer(producer)._process(record(EVENT.SerializeToString()), handle, "t.dlt.g")
    assert len(calls) == 3
    assert producer.sent[0][2]["dlt.attempts"] == b"3"


async def test_an_undecodable_message_is_dead_lettered_without_calling_the_handler() -> None:
    producer = FakeProducer()
    calls, handle = failing()
    await consumer(producer)._process(record(b"\xff garbage"), handle, "t.dlt.g")
    assert calls == []
    assert len(producer.sent) == 1


async def test_an_event_of_a_newer_schema_is_dead_lettered_for_a_replay_after_upgrading() -> None:
    """A producer already upgraded may publish what this code would misread (a field moved,
    its meaning changed): parked unread, with a reason that says to upgrade, not applied."""
    producer = FakeProducer()
    calls, handle = failing()
    newer = events_pb2.Envelope(event_id="e1", schema_version=SCHEMA_VERSION + 1)
    await consumer(producer)._process(record(newer.SerializeToString()), handle, "t.dlt.g")
    assert calls == []
    ((topic, value, headers),) = producer.sent
    assert (topic, value) == ("t.dlt.g", newer.SerializeToString())
    reason = headers["dlt.error"].decode()
    assert f"schema version {SCHEMA_VERSION + 1}" in reason
    assert "replay it once this service is upgraded" in reason


async def test_a_newer_schema_on_a_compacted_topic_is_dead_lettered_for_a_restart() -> None:
    """A replay on a compacted topic would outlive the key's newer records (deadletters
    refuses it): its group reads the topic whole at start, so a restart once upgraded."""
    producer = FakeProducer()
    calls, handle = failing()
    newer = events_pb2.Envelope(event_id="e1", schema_version=SCHEMA_VERSION + 1)
    staff = record(newer.SerializeToString(), topic=STAFF_REVIEWERS)
    await consumer(producer)._process(staff, handle, f"{STAFF_REVIEWERS}.dlt.g")
    assert calls == []
    reason = producer.sent[0][2]["dlt.error"].decode()
    assert reason.endswith(
        "restart this service once upgraded (it reads the topic whole), then discard it')"
    )
    assert "replay" not in reason


async def test_a_newer_schema_in_a_batch_is_dead_lettered_and_the_rest_applied() -> None:
    producer = FakeProducer()
    transaction = FakeTransaction()
    calls, handle = failing()
    newer = events_pb2.Envelope(event_id="b", schema_version=SCHEMA_VERSION + 1)
    batch = [*events("a"), record(newer.SerializeToString(), offset=1), *events("c")]
    await consumer(producer, transaction).apply(batch, handle, "t.dlt.g")
    # The batch got as far as a; then each alone, b parked unread.
    assert calls == ["a", "a", "c"]
    assert transaction.outcomes == ["rolled back"]
    assert [value for _, value, _ in producer.sent] == [newer.SerializeToString()]


@pytest.mark.parametrize("version", [0, 1, SCHEMA_VERSION])
async def test_an_event_of_a_known_schema_is_applied(version: int) -> None:
    # 0: the field unset (every producer has always set it; a hand-made event may not).
    producer = FakeProducer()
    calls, handle = failing()
    known = events_pb2.Envelope(event_id="e1", schema_version=version)
    await consumer(producer)._process(record(known.SerializeToString()), handle, "t.dlt.g")
    assert (calls, producer.sent) == (["e1"], [])


def test_outages_are_told_apart_from_bugs_and_bad_input() -> None:
    assert is_transient(OperationalError("x", None, OSError()))
    assert is_transient(ConnectionRefusedError())
    assert is_transient(Unavailable("docs"))
    assert not is_transient(InvalidArgument({"f": "bad"}))
    assert not is_transient(ValueError("bug"))


async def test_a_batch_is_applied_in_one_transaction_in_offset_order() -> None:
    transaction = FakeTransaction()
    calls, handle = failing()
    await consumer(FakeProducer(), transaction).apply(events("a", "b", "c"), handle, "t.dlt.g")
    assert calls == ["a", "b", "c"]
    assert transaction.outcomes == ["committed"]


async def test_a_handler_that_takes_its_request_has_the_polls_taken_first() -> None:
    transaction = FakeTransaction()
    calls, handle = failing()
    c = consumer(FakeProducer(), transaction)
    poll = [*events("a", key=b"r2"), *events("b", key=b"r1"), *events("c", key=b"r2")]
    await c.apply(poll, handle, "t.dlt.g", locks_requests=True)
    # One request alone its handler takes, and a handler that takes none is given none.
    await c.apply(events("d", "e", key=b"r3"), handle, "t.dlt.g", locks_requests=True)
    await c.apply(poll, handle, "t.dlt.g")
    assert transaction.locks == [["request:r1", "request:r2"], [], []]
    assert calls == ["a", "b", "c", "d", "e", "a", "b", "c"]


async def test_a_failing_batch_is_rolled_back_and_applied_one_event_at_a_time() -> None:
    producer = FakeProducer()
    transaction = FakeTransaction()
    calls: list[str] = []

    async def handle(event: events_pb2.Envelope) -> None:
        calls.append(event.event_id)
        if event.event_id == "b":
            raise InvalidArgument({"request_id": "unknown"})

    await consumer(producer, transaction).apply(events("a", "b", "c"), handle, "t.dlt.g")
    # The batch got as far as b; then each alone, b dead-lettered and the others applied.
    assert calls == ["a", "b", "a", "b", "c"]
    assert transaction.outcomes == ["rolled back"]
    assert [(topic, value) for topic, value, _ in producer.sent] == [
        ("t.dlt.g", events_pb2.Envelope(event_id="b").SerializeToString())
    ]


async def test_an_undecodable_record_in_a_batch_is_dead_lettered_and_the_rest_applied() -> None:
    producer = FakeProducer()
    transaction = FakeTransaction()
    calls, handle = failing()
    batch = [*events("a"), record(b"\xff garbage", offset=1), *events("c")]
    await consumer(producer, transaction).apply(batch, handle, "t.dlt.g")
    assert calls == ["a", "a", "c"]
    assert [value for _, value, _ in producer.sent] == [b"\xff garbage"]


async def test_without_a_shared_transaction_keys_run_at_once_each_in_order() -> None:
    started: list[str] = []
    both_started = asyncio.Event()

    async def handle(event: events_pb2.Envelope) -> None:
        started.append(event.event_id)
        if {"x1", "y1"} <= set(started):
            both_started.set()
        # The first event of each key waits for the other key's: only concurrency frees them.
        if event.event_id in ("x1", "y1"):
            await asyncio.wait_for(both_started.wait(), 5)

    batch = [*events("x1", "x2", key=b"x"), *events("y1", "y2", key=b"y")]
    batch.sort(key=lambda r: r.value or b"")
    await consumer(FakeProducer()).apply(batch, handle, "t.dlt.g")
    assert started.index("x1") < started.index("x2")
    assert started.index("y1") < started.index("y2")


def _events_counted(outcome: str) -> float:
    sample = REGISTRY.get_sample_value(
        "tawasul_consumer_events_total", {"topic": "t", "group": "g", "outcome": outcome}
    )
    return sample or 0.0


async def test_each_event_is_counted_once_applied_or_dead_lettered() -> None:
    """A batch that fails counts only what its one-by-one retry applied, not the rolled-back
    attempt."""
    before = {o: _events_counted(o) for o in ("applied", "dead_lettered")}

    async def handle(event: events_pb2.Envelope) -> None:
        if event.event_id == "b":
            raise InvalidArgument({"request_id": "unknown"})

    await consumer(FakeProducer(), FakeTransaction()).apply(
        events("a", "b", "c"), handle, "t.dlt.g"
    )
    await consumer(FakeProducer(), FakeTransaction()).apply(events("d", "e"), handle, "t.dlt.g")
    after = {o: _events_counted(o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {"applied": 4, "dead_lettered": 1}


class FakeKafkaConsumer:
    """Hands out the polls it is given, then `empty` empty ones, then stops, recording each
    timeout asked for."""

    def __init__(
        self, *polls: dict[str, list[ConsumerRecord[bytes, bytes]]], empty: int = 1
    ) -> None:
        self.polls = list(polls)
        self.empty = empty
        self.timeouts: list[int] = []

    async def getmany(
        self, *, timeout_ms: int, max_records: int | None
    ) -> dict[str, list[ConsumerRecord[bytes, bytes]]]:
        self.timeouts.append(timeout_ms)
        if self.polls:
            return self.polls.pop(0)
        if self.empty:
            self.empty -= 1
            return {}
        raise ConsumerStoppedError


async def test_a_poll_hands_over_what_kafka_returned_and_never_sleeps_after_an_empty_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # FastStream's own batch loop sleeps as long as the poll waited after an empty one: every
    # hop delayed a record arriving meanwhile by up to that long.
    async def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s after a poll")

    monkeypatch.setattr("anyio.sleep", no_sleep)
    c = EventConsumer(bootstrap="127.0.0.1:1", group="g", producer=FakeProducer(), poll_ms=300)
    c.subscribe("t", lambda event: asyncio.sleep(0))
    c._listen()
    (subscriber,) = c._broker.subscribers
    assert isinstance(subscriber, BatchSubscriber)
    first, second = events("e1", "e2")
    kafka = FakeKafkaConsumer({"t-0": [first], "t-1": [second]})

    assert await subscriber.get_msg(kafka) == (first, second)
    assert await subscriber.get_msg(kafka) == ()
    assert kafka.timeouts == [300, 300]

    # FastStream's own loop polls through it: three empty polls in a row, no sleep between.
    idle = FakeKafkaConsumer(empty=3)
    subscriber.running = True
    await subscriber._run_consume_loop(cast(AIOKafkaConsumer, idle))
    assert idle.timeouts == [300, 300, 300, 300]


async def test_one_kafka_consumer_reads_all_the_groups_topics_each_to_its_own_handler() -> None:
    # A Kafka consumer per topic cost the broker and the service CPU for every record.
    c = EventConsumer(bootstrap="127.0.0.1:1", group="g", producer=FakeProducer())
    seen: list[tuple[str, str]] = []

    async def on_submitted(event: events_pb2.Envelope) -> None:
        seen.append(("submitted", event.event_id))

    async def on_routed(batch: Sequence[events_pb2.Envelope]) -> None:
        seen.append(("routed", ",".join(e.event_id for e in batch)))

    c.subscribe("submitted", on_submitted)
    c.subscribe_batches("routed", on_routed)
    with pytest.raises(ValueError, match="submitted is already read by group g"):
        c.subscribe("submitted", on_submitted)
    c._listen()
    c._listen()
    (subscriber,) = c._broker.subscribers
    assert isinstance(subscriber, BatchSubscriber)
    assert sorted(subscriber.topic_names) == ["routed", "submitted"]
    s1, s2 = events("s1", "s2", topic="submitted")
    r1, r2 = events("r1", "r2", topic="routed")

    await c.dispatch([s1, r1, s2, r2])

    assert sorted(seen) == [("routed", "r1,r2"), ("submitted", "s1"), ("submitted", "s2")]
    assert [e for e in seen if e[0] == "submitted"] == [("submitted", "s1"), ("submitted", "s2")]


async def test_a_topic_slow_to_apply_holds_up_no_other_topic_of_the_poll() -> None:
    c = EventConsumer(bootstrap="127.0.0.1:1", group="g", producer=FakeProducer())
    receipts_may_finish = asyncio.Event()
    done: list[str] = []

    async def on_receipt(event: events_pb2.Envelope) -> None:
        await receipts_may_finish.wait()
        done.append(event.event_id)

    async def on_routed(event: events_pb2.Envelope) -> None:
        done.append(event.event_id)
        receipts_may_finish.set()  # the receipt ahead of it in the poll is still being applied

    c.subscribe("receipts", on_receipt)
    c.subscribe("routed", on_routed)
    (receipt,) = events("n1", topic="receipts")
    (routed,) = events("r1", topic="routed")

    await asyncio.wait_for(c.dispatch([receipt, routed]), timeout=5)

    assert done == ["r1", "n1"]


async def test_subscriptions_hand_events_over_as_a_group_would() -> None:
    seen: list[tuple[str, list[str]]] = []

    async def batch(events: Sequence[events_pb2.Envelope]) -> None:
        seen.append(("batch", [e.event_id for e in events]))

    async def each(event: events_pb2.Envelope) -> None:
        seen.append(("each", [event.event_id]))

    subscriptions = Subscriptions().batches("routed", batch).each("actions", each)
    with pytest.raises(ValueError, match="routed is subscribed already"):
        subscriptions.each("routed", each)
    group = consumer(FakeProducer())
    subscriptions.subscribe(group)
    assert set(group._appliers) == {"routed", "actions"}
    first, second = (events_pb2.Envelope(event_id=i) for i in ("e1", "e2"))
    await subscriptions.deliver("routed", first, second)
    await subscriptions.deliver("actions", first, second)
    assert seen == [("batch", ["e1", "e2"]), ("each", ["e1"]), ("each", ["e2"])]


async def test_a_deadlock_or_serialization_failure_is_retried_and_never_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # PostgreSQL undid the event's transaction for a concurrent one's sake: run again, it goes
    # through. More conflicts than max_attempts, none counts as an attempt.
    producer = FakeProducer()
    deadlock = DeadlockDetectedError("deadlock detected")
    serialization = SerializationError("could not serialize access")
    calls, handle = failing(deadlock, serialization, deadlock, deadlock, ValueError("bug"))
    with caplog.at_level(logging.WARNING, logger="tawasul_platform.consumer"):
        await consumer(producer)._process(record(EVENT.SerializeToString()), handle, "t.dlt.g")
    assert len(calls) == 6
    assert producer.sent == []
    # Logged as the concurrency it is, not as the event failing.
    conflicts = [r for r in caplog.records if "conflict" in r.getMessage()]
    assert len(conflicts) == 4
    assert {r.levelno for r in conflicts} == {logging.WARNING}
    failures = [r for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert ["attempt 1," in r.getMessage() for r in failures] == [True]


async def test_a_batch_undone_in_a_deadlock_is_applied_again_without_dead_letters() -> None:
    producer = FakeProducer()
    transaction = FakeTransaction()
    calls, handle = failing(*[DeadlockDetectedError("deadlock detected")] * 4)
    await consumer(producer, transaction).apply(events("a", "b"), handle, "t.dlt.g")
    # The batch rolled back, then a alone deadlocked three more times and went through.
    assert calls == ["a", "a", "a", "a", "a", "b"]
    assert transaction.outcomes == ["rolled back"]
    assert producer.sent == []


class FakeCluster:
    def __init__(self, topics: set[str] | None) -> None:
        self.known = topics

    async def fetch_all_metadata(self) -> FakeCluster:
        if self.known is None:
            raise KafkaError("Unable to get cluster metadata over all known brokers")
        return self

    def topics(self) -> set[str]:
        return self.known or set()


class MetadataProducer(FakeProducer):
    def __init__(self, topics: set[str] | None) -> None:
        super().__init__()
        self.client = FakeCluster(topics)


async def test_a_group_does_not_start_on_topics_the_broker_does_not_show_it() -> None:
    c = EventConsumer(bootstrap="127.0.0.1:1", group="g", producer=MetadataProducer({"shown"}))
    c.subscribe("shown", lambda event: asyncio.sleep(0))
    c.subscribe("hidden", lambda event: asyncio.sleep(0))
    c.subscribe("absent", lambda event: asyncio.sleep(0))

    with pytest.raises(MissingTopics) as missing:
        await c.start()

    assert missing.value.topics == ("absent", "hidden")
    assert "group g reads absent, hidden" in str(missing.value)
    assert is_transient(missing.value)


async def test_no_broker_answering_for_the_topics_is_an_outage_to_wait_out() -> None:
    # aiokafka's own error for it is not marked retriable: the service would have exited.
    c = EventConsumer(bootstrap="127.0.0.1:1", group="g", producer=MetadataProducer(None))
    c.subscribe("t", lambda event: asyncio.sleep(0))

    with pytest.raises(KafkaConnectionError) as away:
        await c.start()

    assert is_transient(away.value)


class PollingKafka(AIOKafkaConsumer):  # type: ignore[misc]
    """An aiokafka consumer never started: its assignment, and the commits and seeks made."""

    def __init__(self) -> None:
        super().__init__(bootstrap_servers="127.0.0.1:1")
        self.commits: list[dict[int, int]] = []
        self.seeks: list[tuple[int, int]] = []

    def highwater(self, partition: TopicPartition) -> int | None:
        return None

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("t", 0), TopicPartition("t", 1)}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append({tp.partition: offset for tp, offset in offsets.items()})

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition.partition, offset))


async def _polling(c: EventConsumer) -> tuple[BatchSubscriber, PollingKafka]:
    """The group's subscriber as broker.start() leaves it, reading from a PollingKafka."""
    c._listen()
    (subscriber,) = c._broker.subscribers
    assert isinstance(subscriber, BatchSubscriber)
    c._broker._setup_logger()
    await SubscriberUsecase.start(subscriber)
    kafka = PollingKafka()
    subscriber.parser._setup(kafka)
    subscriber.running = True
    return subscriber, kafka


async def test_records_with_null_or_binary_headers_are_applied_as_any_other() -> None:
    # Kafka allows both; FastStream's parser decoded every header as UTF-8 and raised before
    # the poll was applied, and the next poll's commit passed over it.
    applied: list[str] = []

    async def handle(event: events_pb2.Envelope) -> None:
        applied.append(event.event_id)

    c = EventConsumer(
        bootstrap="127.0.0.1:1",
        group="g",
        producer=FakeProducer(),
        transaction=FakeTransaction(),
        commit_seconds=0,
    )
    c.subscribe("t", handle)
    subscriber, kafka = await _polling(c)
    poll = events("e0", "e1", "e2")
    poll[1].headers = [("traceparent", None), ("x-source", b"\xff\xfe")]

    await subscriber.consume(tuple(poll))

    assert applied == ["e0", "e1", "e2"]
    assert kafka.commits == [{0: 3}]


async def test_a_poll_whose_applying_escapes_is_read_again_never_passed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = EventConsumer(
        bootstrap="127.0.0.1:1",
        group="g",
        producer=FakeProducer(),
        commit_seconds=0,
        backoff_seconds=0.001,
    )
    c.subscribe("t", lambda event: asyncio.sleep(0))
    subscriber, kafka = await _polling(c)

    async def broken(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        raise RuntimeError("a bug no handler caught")

    monkeypatch.setattr(c, "dispatch", broken)
    first, second, third = events("e0", "e1", "e2")
    third.partition = 1

    await subscriber.consume((first, second, third))

    assert sorted(kafka.seeks) == [(0, 0), (1, 2)]
    assert kafka.commits == []


class HeldPartitions:
    """What an aiokafka consumer knows of the partitions it holds (metrics.Positions), and
    where it was told to read from."""

    def __init__(self, ends: dict[TopicPartition, int], positions: dict[TopicPartition, int]):
        self.ends, self.positions = ends, positions
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.ends.get(partition)

    async def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))


def lag(partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "tawasul_consumer_lag", {"topic": "lag.r", "partition": str(partition), "group": "lag-r"}
    )


async def test_a_partition_lost_in_a_rebalance_stops_reporting_its_lag_at_once() -> None:
    """Its lag was dropped only at the next batch's read: a replica whose other partitions
    brought no batch (FastStream hands over no empty poll) exported the lag it last saw of it
    for good, its new owner's too, and TawasulConsumerLagHigh never cleared."""
    c = EventConsumer(bootstrap="127.0.0.1:1", group="lag-r", producer=FakeProducer())
    c.subscribe("lag.r", lambda event: asyncio.sleep(0))
    c.subscribe_table(STAFF_REVIEWERS, lambda events: asyncio.sleep(0))
    c._listen()
    (subscriber,) = c._broker.subscribers
    assert isinstance(subscriber, BatchSubscriber)
    p0, p1 = TopicPartition("lag.r", 0), TopicPartition("lag.r", 1)
    kafka = HeldPartitions({p0: 10, p1: 5000}, {p0: 10, p1: 0})
    subscriber.consumer = cast(AIOKafkaConsumer, kafka)
    await c._lag.update(kafka)
    assert (lag(0), lag(1)) == (0, 5000)

    listener = subscriber._listener
    assert listener is not None
    listener.on_partitions_revoked({p1})

    assert (lag(0), lag(1)) == (0, None)
    # The same listener still reads a table from its start whenever the group is given it.
    reviewers = TopicPartition(STAFF_REVIEWERS, 0)
    listener.on_partitions_assigned({p0, reviewers})
    assert kafka.seeks == [(reviewers, 0)]


def _poll_started(group: str) -> float | None:
    return REGISTRY.get_sample_value(
        "tawasul_consumer_batch_started_timestamp_seconds", {"group": group}
    )


async def test_a_poll_stuck_on_an_outage_shows_since_when_it_is_applied() -> None:
    """The lag is read after a batch only: a group waiting out a dependency kept the lag it
    had before, so TawasulConsumerLagHigh could not fire however long it waited. When its
    poll started is exported while it is applied (TawasulConsumerStalled), 0 once applied."""
    database_up = asyncio.Event()
    waited_twice = asyncio.Event()
    tries: list[str] = []

    async def handle(event: events_pb2.Envelope) -> None:
        tries.append(event.event_id)
        if len(tries) == 3:
            waited_twice.set()
        if not database_up.is_set():
            raise Unavailable("database")

    c = EventConsumer(
        bootstrap="127.0.0.1:1",
        group="stalled-g",
        producer=FakeProducer(),
        commit_seconds=0,
        backoff_seconds=0.001,
    )
    c.subscribe("t", handle)
    subscriber, kafka = await _polling(c)
    before = time.time()

    applying = asyncio.create_task(subscriber.consume(tuple(events("e0"))))
    await waited_twice.wait()

    started = _poll_started("stalled-g")
    assert started is not None
    assert before <= started <= time.time()
    database_up.set()
    await applying
    assert _poll_started("stalled-g") == 0
    assert kafka.commits == [{0: 1}]


async def test_a_poll_that_escapes_is_no_longer_shown_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = EventConsumer(
        bootstrap="127.0.0.1:1", group="escaped-g", producer=FakeProducer(), backoff_seconds=0
    )
    c.subscribe("t", lambda event: asyncio.sleep(0))
    subscriber, _ = await _polling(c)

    async def broken(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        assert (_poll_started("escaped-g") or 0) > 0
        raise RuntimeError("a bug no handler caught")

    monkeypatch.setattr(c, "dispatch", broken)
    await subscriber.consume(tuple(events("e0")))

    assert _poll_started("escaped-g") == 0
