"""Kafka consumers on FastStream: retries with backoff, a dead-letter topic, manual commits.

FastStream's ack policies either drop a failing message (ACK, REJECT_ON_ERROR) or redeliver it
forever and stall its partition (NACK_ON_ERROR). So handlers run under AckPolicy.MANUAL: a
message is tried a bounded number of times, then parked in the group's dead-letter topic, and
only then is its offset committed. An outage of a dependency (database, gateway) is not the
message's fault: it is retried until the dependency is back, and never dead-lettered; nor is a
transaction PostgreSQL undid for a concurrent one's sake (a deadlock, a serialization failure),
which is applied again.
Handlers record the event id in their inbox table in the same transaction as their effect, so
a redelivery (after a crash between the database commit and the offset commit) is skipped.

Records come in batches (one poll). Their offsets are committed after they are applied, never
before, and not after every poll: every `commit_seconds` at most, for all the polls applied
meanwhile (an offset commit cost the broker about 0.2-0.4 ms of CPU, and each hop waited for
it before its next poll). A crash re-delivers what was applied since the last commit, which the
inbox (or an idempotent handler) skips, as it skips any redelivery. A handler
given to `subscribe` is called per event, every one joining one transaction for the whole batch:
one commit, one outbox write and one relay wake-up for up to `max_batch` events, in offset
order. If anything in the batch fails, the transaction is rolled back and the batch is applied
again one event at a time, so that retries and dead letters stay per event. A handler given to
`subscribe_batches` takes the whole poll at once, to apply it set-wise (routing's decisions).

A group's fetches are answered as soon as one record waits, unless it gathers (`gather_ms`):
then the broker holds each fetch that long for more, so that a steady stream comes a poll's
worth at a time instead of one record a poll, each poll costing about the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, ExitStack, contextmanager
from itertools import chain
from typing import Any, Protocol, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import (
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    UnknownTopicOrPartitionError,
)
from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.message import KafkaMessage
from faststream.security import BaseSecurity
from google.protobuf.message import DecodeError
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, use_span
from structlog.contextvars import bound_contextvars
from tawasul.events.v1 import events_pb2

from tawasul_platform import metrics, tracing
from tawasul_platform.errors import DomainError
from tawasul_platform.events import SCHEMA_VERSION
from tawasul_platform.faults import is_conflict, is_transient
from tawasul_platform.topics import COMPACTED, dead_letter_topic
from tawasul_platform.tracing import TRACEPARENT

log = logging.getLogger(__name__)

MAX_OUTAGE_BACKOFF_SECONDS = 30.0
# A conflict (deadlock, serialization failure) ends with the concurrent transaction: the event
# is applied again soon, never counted as an attempt.
MAX_CONFLICT_BACKOFF_SECONDS = 2.0
# A group that gathers its records is answered at once when this much waits for it (a
# partition's largest fetch, aiokafka's default): more than a poll's worth of events.
GATHER_BYTES = 1024 * 1024
IDLE_FETCH_MS = 500

EventHandler = Callable[[events_pb2.Envelope], Awaitable[None]]
# Applies a batch's events at once (set-based: one statement for all where it can).
BatchHandler = Callable[[Sequence[events_pb2.Envelope]], Awaitable[None]]


class Transaction(Protocol):
    """Opens the transaction that every unit of work opened inside it joins, having taken
    `locks` (tawasul_platform.uow.shared_transaction)."""

    def __call__(self, *, locks: Collection[str] = ()) -> AbstractAsyncContextManager[None]: ...


Record: TypeAlias = ConsumerRecord[bytes, bytes]
# What a group does with a poll's records of one topic.
Apply = Callable[[Sequence[Record]], Coroutine[Any, Any, None]]


class Commits:
    """The offsets of a group's applied records, committed together `interval` seconds after
    the first of them was applied, or at once when `interval` is 0 or the group is stopping.
    Commits run one at a time, so a group's committed offsets only ever move forward."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._applied: dict[TopicPartition, int] = {}
        self._kafka: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        self._later: asyncio.Task[None] | None = None
        self._closing = False

    async def applied(self, kafka: AIOKafkaConsumer, records: Sequence[Record]) -> None:
        self._kafka = kafka
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            self._applied[tp] = max(self._applied.get(tp, 0), record.offset + 1)
        if self._closing or self._interval <= 0:
            await self.flush()
        else:
            self._schedule(self._interval)

    def _schedule(self, delay: float) -> None:
        if self._later is None:
            self._later = asyncio.create_task(self._flush_after(delay))

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._later = None
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            applied, self._applied = self._applied, {}
            if self._kafka is None:
                return
            # A partition given away meanwhile goes to its new owner from its last commit: what
            # that one reads again is skipped as applied.
            assigned = self._kafka.assignment()
            offsets = {tp: offset for tp, offset in applied.items() if tp in assigned}
            if not offsets:
                return
            try:
                await self._kafka.commit(offsets)
            except Exception as exc:
                for tp, offset in offsets.items():
                    self._applied[tp] = max(self._applied.get(tp, 0), offset)
                log.warning("offset commit failed; trying again: %r", exc)
                if self._applied and not self._closing:
                    self._schedule(max(self._interval, 1.0))

    async def close(self) -> None:
        """Commits what is applied; from now on every applied poll is committed at once."""
        self._closing = True
        if self._later is not None:
            self._later.cancel()
            self._later = None
        await self.flush()


class EventConsumer:
    def __init__(
        self,
        *,
        bootstrap: str,
        group: str,
        producer: AIOKafkaProducer,
        ssl_context: ssl.SSLContext | None = None,
        transaction: Transaction | None = None,
        max_attempts: int = 4,
        backoff_seconds: float = 0.5,
        graceful_timeout: float = 10.0,
        max_batch: int = 200,
        key_concurrency: int = 8,
        poll_ms: int = 500,
        commit_seconds: float = 0.1,
        gather_ms: int = 0,
    ) -> None:
        # No dependency injection: resolving a `KafkaMessage` parameter runs a synchronous
        # step in a worker thread for every batch; the message is read from the context instead.
        self._broker = KafkaBroker(
            bootstrap,
            security=None if ssl_context is None else BaseSecurity(ssl_context=ssl_context),
            graceful_timeout=graceful_timeout,
            logger=logging.getLogger("faststream"),
            apply_types=False,
        )
        self._group = group
        self._producer = producer
        self._transaction = transaction
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._max_batch = max_batch
        self._key_concurrency = key_concurrency
        self._poll_ms = poll_ms
        self._lag = metrics.ConsumerLag(group)
        self._commits = Commits(commit_seconds)
        self._gather_ms = gather_ms
        # What the group does with each topic's records, in the order they were subscribed.
        self._appliers: dict[str, Apply] = {}
        # Topics read from their start whenever the group is given their partitions.
        self._tables: set[str] = set()

    def subscribe_batches(self, topic: str, handler: BatchHandler) -> None:
        """Hands each poll's events to `handler` in one call, inside one transaction; a batch
        that fails is handed over again one event at a time (retries and dead letters)."""
        dlt = dead_letter_topic(topic, self._group)

        async def whole(records: Sequence[Record]) -> None:
            events = [_event(record) for record in records]
            with self._spans(records, events):
                await handler(events)

        async def one(event: events_pb2.Envelope) -> None:
            await handler([event])

        self._subscribe(
            topic,
            lambda records: self._batch_or_one_by_one(records, whole, one, dlt, self._transaction),
        )

    def subscribe_table(self, topic: str, handler: BatchHandler) -> None:
        """As `subscribe_batches`, for a compacted topic whose every key's latest record the
        service keeps (a record seen again changes nothing): the group reads it from its start
        each time it is given its partitions, at every start of the process among them. So a
        database put back to an older backup, or whose rows were lost, has every key's latest
        again once the service restarts, whatever the group had committed."""
        self.subscribe_batches(topic, handler)
        self._tables.add(topic)

    def subscribe(self, topic: str, handler: EventHandler, *, locks_requests: bool = False) -> None:
        """Hands each event to `handler`, a poll's in one transaction. `locks_requests`: the
        handler takes its event's request (Session.lock's "request:<id>"), so the transaction
        takes all of the poll's first, in one order: taken as the events came, another topic's
        transaction taking two of them in the other order waited on it while it waited on that
        one, until PostgreSQL undid one of them (a second later) and the poll was applied again
        one event at a time."""
        dlt = dead_letter_topic(topic, self._group)
        self._subscribe(
            topic, lambda records: self.apply(records, handler, dlt, locks_requests=locks_requests)
        )

    def _subscribe(self, topic: str, apply: Apply) -> None:
        if topic in self._appliers:
            raise ValueError(f"{topic} is already read by group {self._group}")
        self._appliers[topic] = apply

    def _listen(self) -> None:
        """One Kafka consumer for every topic the group reads: each consumer in a process
        fetches, heartbeats and commits on its own, and the broker answers each one's fetches,
        so a consumer per topic cost the broker and the service CPU for every record."""
        if self._broker.subscribers or not self._appliers:
            return

        async def on_batch(_bodies: object) -> None:
            msg: KafkaMessage = self._broker.context.get_local("message")
            # FastStream's test broker hands a stand-in that knows no offsets.
            kafka = msg.consumer if isinstance(msg.consumer, AIOKafkaConsumer) else None
            try:
                with metrics.applying(self._group):
                    await self.dispatch(msg.raw_message)
            except BaseException as exc:
                # FastStream logs what escapes and polls on, and the next poll's commit would
                # pass over this one: it is read again instead, after a pause.
                if kafka is not None:
                    _read_again(kafka, msg.raw_message)
                if isinstance(exc, Exception):
                    await asyncio.sleep(self._backoff)
                raise
            if kafka is None:
                await msg.ack()
                return
            await self._commits.applied(kafka, msg.raw_message)
            await self._lag.update(kafka)

        subscriber = self._broker.subscriber(
            # Never created here: every topic is declared (topics.TOPICS) and made by the stack
            # or Strimzi, and FastStream would make a missing one with 1 partition (and, denied
            # by Kafka's ACLs, warn at every start).
            *(Topic(topic, declare=False) for topic in self._appliers),
            group_id=self._group,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            batch=True,
            max_records=self._max_batch,
            batch_timeout_ms=self._poll_ms,
            # Answered once GATHER_BYTES wait for the group or the wait is over: a backlog at
            # once, a steady stream every `gather_ms`. Not gathering: at the first record, an
            # idle fetch held aiokafka's default half second.
            fetch_min_bytes=GATHER_BYTES if self._gather_ms else 1,
            fetch_max_wait_ms=self._gather_ms or IDLE_FETCH_MS,
            parser=_parse_poll,
            decoder=_undecoded,
            listener=_Rebalance(lambda: subscriber.consumer, self._tables, self._lag),
        )
        subscriber(on_batch)
        # FastStream's batch loop sleeps as long again after a poll that found nothing, so a
        # record arriving meanwhile waited up to that long at every hop. aiokafka's getmany
        # already waits for records and returns as soon as any arrive: the sleep only delays.
        vars(subscriber)["get_msg"] = self._poller()

    async def dispatch(self, records: Sequence[Record]) -> None:
        """Applies a poll's records, each topic's in offset order by that topic's handler, the
        topics at once: one topic's records (review's delivery receipts) never wait for
        another's (the routed requests), as when each topic had a consumer of its own.

        So two topics' events about one request can be applied at the same time, here or on
        two replicas, and neither transaction sees the other's uncommitted rows: a handler
        that acts on what another topic's handler writes either takes the request first
        (review's cancellation and routed request: a transaction advisory lock) or writes
        what holds in either order (notify's access: a submission never replaces routing's
        department)."""
        by_topic: dict[str, list[Record]] = {}
        for record in records:
            by_topic.setdefault(record.topic, []).append(record)
        if len(by_topic) == 1:
            ((topic, same_topic),) = by_topic.items()
            await self._appliers[topic](same_topic)
            return
        async with asyncio.TaskGroup() as topics:
            for topic, same_topic in by_topic.items():
                topics.create_task(self._appliers[topic](same_topic))

    def _poller(self) -> Callable[[AIOKafkaConsumer], Awaitable[tuple[Record, ...]]]:
        async def poll(consumer: AIOKafkaConsumer) -> tuple[Record, ...]:
            batches = await consumer.getmany(timeout_ms=self._poll_ms, max_records=self._max_batch)
            return tuple(chain.from_iterable(batches.values()))

        return poll

    @property
    def group(self) -> str:
        return self._group

    async def start(self) -> None:
        self._listen()
        await self._require_topics()
        try:
            await self._broker.start()
        except Exception:
            # Kafka went away mid-start: close what did start, so that a retry starts clean.
            with contextlib.suppress(Exception):
                await self._broker.stop()
            raise

    async def _require_topics(self) -> None:
        """Raises MissingTopics unless every topic the group reads exists and is visible to it:
        a consumer would otherwise start and silently read nothing of a missing one."""
        try:
            cluster = await self._producer.client.fetch_all_metadata()
        except KafkaError as exc:
            if exc.retriable:
                raise
            # "Unable to get cluster metadata over all known brokers": the brokers are away.
            raise KafkaConnectionError(f"group {self._group}: {exc}") from exc
        missing = sorted(set(self._appliers) - cluster.topics())
        if missing:
            raise MissingTopics(self._group, missing)

    async def stop(self) -> None:
        # A poll still being applied is committed when it is (FastStream waits for it).
        await self._commits.close()
        await self._broker.stop()
        self._lag.close()

    async def apply(
        self,
        records: Sequence[Record],
        handler: EventHandler,
        dlt: str,
        *,
        locks_requests: bool = False,
    ) -> None:
        """Applies one poll's records; returns when every one is applied or dead-lettered.
        Without a shared transaction, each event in its own, keys at once."""
        shared = self._transaction
        if shared is None:
            await self._by_key(records, handler, dlt)
            return
        locks = _requests(records) if locks_requests else ()

        async def in_order(batch: Sequence[Record]) -> None:
            for record in batch:
                event = _event(record)
                with self._span(record, event):
                    await handler(event)

        await self._batch_or_one_by_one(
            records, in_order, handler, dlt, lambda: shared(locks=locks)
        )

    async def _batch_or_one_by_one(
        self,
        records: Sequence[Record],
        whole: Callable[[Sequence[Record]], Awaitable[None]],
        one: EventHandler,
        dlt: str,
        transaction: Callable[[], AbstractAsyncContextManager[None]] | None,
    ) -> None:
        if len(records) > 1:
            try:
                if transaction is None:
                    await whole(records)
                else:
                    async with transaction():
                        await whole(records)
                metrics.applied(records[0].topic, self._group, len(records))
                return
            except Exception as exc:
                log.info(
                    "a batch of %d events from %s is applied again one at a time: %r",
                    len(records),
                    records[0].topic,
                    exc,
                )
        for record in records:
            await self._process(record, one, dlt)

    async def _by_key(self, records: Sequence[Record], handler: EventHandler, dlt: str) -> None:
        keys: dict[bytes | None, list[Record]] = {}
        for record in records:
            keys.setdefault(record.key, []).append(record)
        slots = asyncio.Semaphore(self._key_concurrency)

        async def in_order(same_key: list[Record]) -> None:
            async with slots:
                for record in same_key:
                    await self._process(record, handler, dlt)

        await asyncio.gather(*(in_order(same_key) for same_key in keys.values()))

    async def _process(self, record: Record, handler: EventHandler, dlt: str) -> None:
        try:
            event = _event(record)
        except (DecodeError, NewerSchema) as exc:
            await self._dead_letter(record, dlt, exc, attempts=0)
            return
        with self._span(record, event) as span:
            await self._retried(record, event, handler, dlt, span)

    async def _retried(
        self,
        record: Record,
        event: events_pb2.Envelope,
        handler: EventHandler,
        dlt: str,
        span: Span,
    ) -> None:
        attempt = 0
        outage_delay = self._backoff
        conflict_delay = self._backoff
        while True:
            try:
                await handler(event)
                metrics.applied(record.topic, self._group)
                return
            except Exception as exc:
                if is_transient(exc):
                    # An outage is waited out (the partition pauses); it is not the event's fault.
                    log.warning(
                        "event %s waits for a dependency, retrying in %.1fs: %r",
                        event.event_id,
                        outage_delay,
                        exc,
                    )
                    await asyncio.sleep(outage_delay)
                    outage_delay = min(outage_delay * 2, MAX_OUTAGE_BACKOFF_SECONDS)
                    continue
                if is_conflict(exc):
                    # PostgreSQL undid the transaction for a concurrent one's sake (a deadlock,
                    # a serialization failure): run again, it goes through. Not the event's
                    # fault either; a jittered wait keeps the two from meeting again in step.
                    delay = conflict_delay * random.uniform(0.5, 1.0)
                    log.warning(
                        "event %s (%s) undone in a conflict with a concurrent transaction, "
                        "applying it again in %.2fs: %r",
                        event.event_id,
                        event.event_type,
                        delay,
                        exc,
                    )
                    await asyncio.sleep(delay)
                    conflict_delay = min(conflict_delay * 2, MAX_CONFLICT_BACKOFF_SECONDS)
                    continue
                attempt += 1
                if isinstance(exc, DomainError) or attempt == self._max_attempts:
                    # A DomainError means the event itself is unacceptable: retrying cannot help.
                    tracing.fail(span, exc)
                    await self._dead_letter(record, dlt, exc, attempts=attempt)
                    return
                delay = self._backoff * 2 ** (attempt - 1)
                log.warning(
                    "event %s (%s) failed on attempt %d, retrying in %.1fs: %r",
                    event.event_id,
                    event.event_type,
                    attempt,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)

    @contextmanager
    def _span(self, record: Record, event: events_pb2.Envelope) -> Iterator[Span]:
        """The event's CONSUMER span, made current: the child of the span that published it,
        and the parent of what its handler does and writes. Its log lines name the event. A
        trace nobody samples continues in its caller's ids (tracing.continued), as in a batch."""
        span = tracing.continued(
            f"{record.topic} process",
            _parent(record),
            SpanKind.CONSUMER,
            functools.partial(self._attributes, record, event),
        )
        with (
            use_span(span, end_on_exit=True),
            bound_contextvars(event_id=event.event_id, request_id=event.request_id),
        ):
            yield span

    @contextmanager
    def _spans(
        self, records: Sequence[Record], events: Sequence[events_pb2.Envelope]
    ) -> Iterator[None]:
        """A CONSUMER span per event of a batch applied at once; what the handler writes for a
        request descends from that request's event, or from the event it says it is on
        (tracing.per_request, tracing.applying)."""
        spans = [
            tracing.continued(
                f"{record.topic} process",
                _parent(record),
                SpanKind.CONSUMER,
                functools.partial(self._attributes, record, event),
            )
            for record, event in zip(records, events, strict=True)
        ]
        with ExitStack() as ending:
            for span in spans:
                ending.callback(span.end)
            try:
                contexts = [s.get_span_context() for s in spans]
                with tracing.per_request(
                    {e.request_id: c for e, c in zip(events, contexts, strict=True)},
                    {e.event_id: c for e, c in zip(events, contexts, strict=True)},
                ):
                    yield
            except Exception as exc:
                for span in spans:
                    tracing.fail(span, exc)
                raise

    def _attributes(self, record: Record, event: events_pb2.Envelope) -> dict[str, str | int]:
        return {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.consumer.group.name": self._group,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.message.id": event.event_id,
            "tawasul.event_type": event.event_type,
            "tawasul.request_id": event.request_id,
        }

    async def _dead_letter(
        self, record: Record, dlt: str, error: Exception, *, attempts: int
    ) -> None:
        metrics.dead_lettered(record.topic, self._group)
        log.error(
            "dead-lettering %s[%d]@%d after %d attempts: %r",
            record.topic,
            record.partition,
            record.offset,
            attempts,
            error,
        )
        headers = [
            *(record.headers or ()),
            ("dlt.error", repr(error)[:1000].encode()),
            ("dlt.source", f"{record.topic}[{record.partition}]@{record.offset}".encode()),
            ("dlt.attempts", str(attempts).encode()),
        ]
        delay = self._backoff
        while True:
            # The offset is committed only after this succeeds, so the message is never lost.
            try:
                await self._producer.send_and_wait(
                    dlt, value=record.value, key=record.key, headers=headers
                )
                return
            except Exception:
                log.exception("cannot publish to %s; retrying in %.1fs", dlt, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """What a rebalance changes for the replica: the lag of the partitions it loses is no
    longer its to report, and its reading of the `tables` it is given moves to their start."""

    def __init__(
        self,
        consumer: Callable[[], AIOKafkaConsumer | None],
        tables: set[str],
        lag: metrics.ConsumerLag,
    ) -> None:
        self._consumer = consumer
        self._tables = tables
        self._lag = lag

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._lag.revoked(revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        kafka = self._consumer()
        if kafka is None:
            return
        for partition in assigned:
            if partition.topic in self._tables:
                # Offset 0 even where compaction left none: past a log's start, the group's
                # reset policy (earliest) reads from its first record.
                kafka.seek(partition, 0)


class Subscriptions:
    """What a consumer group does with each topic's events (a poll's topics are applied at
    once, each in offset order). A service's composition root builds it; `subscribe` gives it
    to the process's group, and service tests `deliver` events to it as the group would,
    without Kafka."""

    def __init__(self) -> None:
        self._batches: dict[str, BatchHandler] = {}
        self._each: dict[str, EventHandler] = {}
        self._tables: set[str] = set()
        self._locking: set[str] = set()

    def batches(self, topic: str, handler: BatchHandler) -> Subscriptions:
        """A poll's events of `topic` at once (EventConsumer.subscribe_batches)."""
        self._new(topic)
        self._batches[topic] = handler
        return self

    def table(self, topic: str, handler: BatchHandler) -> Subscriptions:
        """A compacted topic's events a poll at a time, read from its start whenever the group
        is given it (EventConsumer.subscribe_table)."""
        self.batches(topic, handler)
        self._tables.add(topic)
        return self

    def each(
        self, topic: str, handler: EventHandler, *, locks_requests: bool = False
    ) -> Subscriptions:
        """The events of `topic` one at a time, joining the poll's transaction, which takes
        their requests first when the handler takes its own (EventConsumer.subscribe)."""
        self._new(topic)
        self._each[topic] = handler
        if locks_requests:
            self._locking.add(topic)
        return self

    def _new(self, topic: str) -> None:
        if topic in self._batches or topic in self._each:
            raise ValueError(f"{topic} is subscribed already")

    def subscribe(self, consumer: EventConsumer) -> None:
        for topic, batch in self._batches.items():
            if topic in self._tables:
                consumer.subscribe_table(topic, batch)
            else:
                consumer.subscribe_batches(topic, batch)
        for topic, handler in self._each.items():
            consumer.subscribe(topic, handler, locks_requests=topic in self._locking)

    async def deliver(self, topic: str, *events: events_pb2.Envelope) -> None:
        """Hands `events` of `topic` over as one poll: at once to a batch handler, else one by
        one, each in a transaction of its own (as the group does after a batch failed)."""
        if topic in self._batches:
            await self._batches[topic](events)
            return
        for event in events:
            await self._each[topic](event)


def _requests(records: Sequence[Record]) -> tuple[str, ...]:
    """The lock of each request the records are about (a request's events are keyed by its id:
    events.envelope), when there are two or more: one the handler takes alone."""
    ids = {record.key.decode(errors="replace") for record in records if record.key}
    return tuple(f"request:{i}" for i in ids) if len(ids) > 1 else ()


def _read_again(kafka: AIOKafkaConsumer, records: Sequence[Record]) -> None:
    """Moves each of the poll's partitions back to its first record in the poll."""
    first: dict[TopicPartition, int] = {}
    for record in records:
        first.setdefault(TopicPartition(record.topic, record.partition), record.offset)
    for partition, offset in first.items():
        # Not ours any more (a rebalance meanwhile): its new owner reads it from the commit.
        with contextlib.suppress(IllegalStateError, AssertionError):
            kafka.seek(partition, offset)


async def _parse_poll(
    records: tuple[Record, ...],
    parse: Callable[[tuple[Record, ...]], Awaitable[KafkaMessage]],
) -> KafkaMessage:
    """FastStream's message for a poll, made from its first and last records' places only
    (`on_batch` reads the records themselves). Its own parser decodes every header of every
    record as UTF-8: a null or binary value, which Kafka allows, raised there, before anything
    could dead-letter it, and the poll was skipped and passed over by the next one's commit."""
    ends = (records[0], records[-1]) if len(records) > 1 else records
    message = await parse(tuple(dataclasses.replace(r, headers=[]) for r in ends))
    message.raw_message = records
    return message


async def _undecoded(_message: object) -> None:
    """What FastStream hands `on_batch`, which reads the poll's records themselves: its own
    decoding made and parsed a message of each record for nothing (6 % of routing's CPU while
    it drained a backlog)."""


class MissingTopics(UnknownTopicOrPartitionError):  # type: ignore[misc]
    """Topics a group reads that the broker does not show it: not made yet (Strimzi, the
    stack), or not granted to the service's certificate (Kafka lists only the topics a caller
    may describe). Retriable: the service waits, NOT_SERVING, until they are there."""

    def __init__(self, group: str, topics: Sequence[str]) -> None:
        super().__init__(
            f"group {group} reads {', '.join(topics)}: not on the broker, or not granted to "
            "this service"
        )
        self.topics = tuple(topics)


class NewerSchema(Exception):
    """An event whose schema version this code does not know yet: a producer already
    upgraded wrote it, and this code could misread it (a field moved, a meaning changed)."""

    def __init__(self, version: int, topic: str) -> None:
        # A compacted topic's replay would outlive the key's newer records (deadletters).
        then = (
            "restart this service once upgraded (it reads the topic whole), then discard it"
            if topic in COMPACTED
            else "replay it once this service is upgraded"
        )
        super().__init__(
            f"schema version {version} is newer than this code knows ({SCHEMA_VERSION}): {then}"
        )


def _event(record: Record) -> events_pb2.Envelope:
    event = events_pb2.Envelope.FromString(record.value or b"")
    if not event.event_id:
        raise DecodeError("envelope has no event_id")
    # Older versions are read as ever (proto3: a field added since is empty). 0 is the field
    # unset: every producer has set it since the first (events.envelope), so it is no older
    # event, only a hand-made one, read as the current version.
    if event.schema_version > SCHEMA_VERSION:
        raise NewerSchema(event.schema_version, record.topic)
    return event


def _parent(record: Record) -> Context:
    """The context of the span that published the record (its traceparent header)."""
    for key, value in record.headers or ():
        if key == TRACEPARENT and value is not None:
            return tracing.extract({TRACEPARENT: value.decode(errors="replace")})
    return tracing.extract({})
