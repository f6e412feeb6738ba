"""Transactional outbox: rows written with the state change, published by a relay.

The relay wakes on PostgreSQL NOTIFY, which is delivered only when the writing transaction
commits; a slow fallback timer covers notifications missed while it was reconnecting. One relay
replica publishes: the one whose LISTEN session holds a session-level advisory lock, which keeps
per-request order and never publishes a row twice from two replicas. It publishes through that
same session, so the lock goes with the connection: a leader that dies or loses its session
stops publishing, and another replica takes the lock at its next wake-up. Each statement there
commits on its own: the lock, not a transaction, keeps the other replicas out, so a wake-up
costs one round trip (read the unsent rows) and the publication.

Rows are marked sent (with the time Kafka acknowledged them) a second later, or as soon as 100
wait, in one statement, not at every wake-up: with one event a wake-up, as on a steady stream,
the mark was a round trip and a commit of its own each time (0.1-0.15 ms of the relay's CPU and
0.2 of PostgreSQL's, measured). Until then the relay's reads skip the rows it has published. A
relay that stops marks what it published; one that dies leaves up to a second of rows unmarked,
which the next leader publishes again: consumers skip a redelivery (their inboxes) as they
always must. A row counts as published once Kafka acknowledged it, whatever befalls the rows
after it: a failure never sends again the rows before it.

A row Kafka refuses for good (larger than it takes, a topic its ACLs deny this service) is
parked: `sent_at` 'infinity' (never read again, never pruned) and the refusal in its
`outbox.parked` header, logged as an error and counted (tawasul_outbox_parked_total); the rows
after it go on. Once the cause is mended, `UPDATE outbox SET sent_at = NULL, headers = headers
- 'outbox.parked' WHERE id = ...` publishes it again. A failure a later try may cure (Kafka
away, a timeout) is waited out, from the row that failed, tried again after 1 s, then twice as
long each time up to 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)
from asyncpg import Connection
from opentelemetry.trace import Span, SpanKind
from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Table,
    Text,
    bindparam,
    func,
    literal_column,
    not_,
    select,
    update,
)
from sqlalchemy.sql.dml import ReturningInsert

from tawasul_platform import metrics, tracing
from tawasul_platform.db import among, arrays, insert_arrays
from tawasul_platform.events import OutgoingEvent
from tawasul_platform.faults import is_conflict, is_transient
from tawasul_platform.kafka_tls import security
from tawasul_platform.sql import Database, Row, Session
from tawasul_platform.topics import WRITERS

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0
# The header of a parked row that says why Kafka refused it (left out when it is published).
PARKED_HEADER = "outbox.parked"
# What Kafka answers about the record or its topic, never about its own state: the same row
# sent again is refused again. Anything else (ProducerClosed at a shutdown among them) is not
# the row's fault and parks nothing.
_REFUSED_FOR_GOOD = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
)


def notify_channel(service: str) -> str:
    return f"tawasul_outbox_{service}"


async def write_outbox(
    session: Session, table: Table, service: str, events: Sequence[OutgoingEvent]
) -> None:
    """Adds the events to the caller's transaction and wakes relays at its commit.

    One statement, compiled and prepared once (db.insert_arrays), in the events' order (the
    order the relay publishes them in). Each row's RETURNING notifies the channel (PostgreSQL
    sends a transaction's identical notifications once, at commit), so the wake-up costs no
    round trip of its own."""
    if not events:
        return
    await session.execute(
        _outbox_insert(table, service),
        arrays(
            event_id=[e.event_id for e in events],
            topic=[e.topic for e in events],
            key=[e.key for e in events],
            payload=[e.payload for e in events],
            headers=[e.headers for e in events],
        ),
    )


@functools.cache
def _outbox_insert(table: Table, service: str) -> ReturningInsert[Any]:
    columns = ("event_id", "topic", "key", "payload", "headers")
    return insert_arrays(table, columns).returning(func.pg_notify(notify_channel(service), ""))


def make_producer(bootstrap: str, ssl_context: ssl.SSLContext | None = None) -> AIOKafkaProducer:
    # No linger: a relay sends a wake-up's rows without yielding and then waits for them all,
    # so they are batched already; lingering only held every hop 2 ms more.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=0,
        **security(ssl_context),
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        database: Database,
        table: Table,
        producer: AIOKafkaProducer,
        service: str,
        batch_size: int = 500,
        fallback_seconds: float = 5.0,
        mark_seconds: float = 1.0,
        mark_rows: int = 100,
    ) -> None:
        self._database = database
        self._table = table
        self._producer = producer
        self._channel = notify_channel(service)
        self._lock_key = zlib.crc32(self._channel.encode())
        self._batch_size = batch_size
        self._fallback = fallback_seconds
        self._mark_seconds = mark_seconds
        self._mark_rows = mark_rows
        self._service = service
        self._wake = asyncio.Event()
        # Published and not marked sent yet: each row's id and when Kafka acknowledged it.
        self._published: dict[int, datetime] = {}
        self._mark_by = 0.0
        # Rows Kafka acknowledged since the start: a failure after some is a new one.
        self._acknowledged = 0
        # At 0 from the start, so that increase() sees the first parked row of each topic.
        for topic, writer in WRITERS.items():
            if writer == service:
                metrics.OUTBOX_PARKED.labels(service, topic)
        # A wake-up's statements, built once (a statement built per call is keyed every time).
        t = table
        self._try_lock = select(func.pg_try_advisory_lock(self._lock_key))
        self._unsent = (
            select(t.c.id, t.c.topic, t.c.key, t.c.payload, t.c.headers)
            .where(t.c.sent_at.is_(None), not_(among(t.c.id, "published")))
            .order_by(t.c.id)
            .limit(batch_size)
        )
        sent = (
            func.unnest(
                bindparam("ids", type_=ARRAY(BigInteger)),
                bindparam("at", type_=ARRAY(DateTime(timezone=True))),
            )
            .table_valued("id", "at")
            .render_derived()
        )
        self._mark_sent = update(t).where(t.c.id == sent.c.id).values(sent_at=sent.c.at)
        self._park_row = (
            update(t)
            .where(t.c.id == bindparam("row", type_=BigInteger))
            .values(
                sent_at=literal_column("'infinity'::timestamptz"),
                headers=t.c.headers.op("||")(
                    func.jsonb_build_object(PARKED_HEADER, bindparam("error", type_=Text))
                ),
            )
        )

    async def run(self) -> None:
        """Publishes until cancelled; an outage of Kafka or PostgreSQL is waited out, tried
        again after 1 s, then twice as long each time up to 30 s."""
        loop = asyncio.get_running_loop()
        delay = RETRY_SECONDS
        while True:
            started, acknowledged = loop.time(), self._acknowledged
            try:
                await self._listen_and_publish()
                delay = RETRY_SECONDS
            except Exception as exc:
                if self._acknowledged > acknowledged or loop.time() - started > MAX_RETRY_SECONDS:
                    delay = RETRY_SECONDS  # it went well a while: a failure of its own
                if is_transient(exc):
                    log.warning(
                        "outbox relay: dependency unavailable, retrying in %.0f s: %r", delay, exc
                    )
                elif is_conflict(exc):
                    # Undone for a concurrent transaction's sake: the next try goes through.
                    log.warning(
                        "outbox relay: undone in a conflict with a concurrent transaction,"
                        " retrying in %.0f s: %r",
                        delay,
                        exc,
                    )
                else:
                    log.exception("outbox relay failed; retrying in %.0f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)

    async def _listen_and_publish(self) -> None:
        """Listens, and publishes while it leads, until the LISTEN connection is lost (server
        restart, failover, pg_terminate_backend); the caller then listens again at once, and
        the drain on entry publishes whatever was committed while nobody listened."""
        # Closed at the end, never pooled: the session's lock is released with it, and the pool
        # must not hand a dead connection out again.
        async with self._database.connection(pooled=False) as driver:
            lost = asyncio.Event()

            def on_lost(*_: object) -> None:
                lost.set()
                self._wake.set()

            # What it published before its last session ended, whoever leads now.
            await self._mark(driver)
            driver.add_termination_listener(on_lost)
            await driver.add_listener(self._channel, self._on_notify)
            try:
                leading = False
                while not lost.is_set():
                    self._wake.clear()
                    # A follower tries at each wake-up: it takes over within one commit (or
                    # one fallback period) of the leader's session ending.
                    leading = leading or await self._lead(driver)
                    if leading:
                        await self._publish_all(driver)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._idle_seconds())
            finally:
                if not driver.is_closed():
                    await driver.remove_listener(self._channel, self._on_notify)
                driver.remove_termination_listener(on_lost)
        log.warning("outbox relay: the LISTEN connection was lost; listening again")

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    def _idle_seconds(self) -> float:
        """How long to wait for a commit: until the published rows are due to be marked."""
        if not self._published:
            return self._fallback
        return max(0.0, self._mark_by - asyncio.get_running_loop().time())

    async def close(self) -> None:
        """Marks what this relay published, once it has stopped (a shutdown hook): what it
        leaves unmarked is published again by the next leader."""
        if not self._published:
            return
        async with self._database.connection() as driver:
            await self._mark(driver)

    async def drain(self) -> int:
        """Publishes every unsent row now, through a session of its own, unless another
        replica leads; returns how many it published (what a wake-up of the leader does)."""
        # Closed at the end: the lead's lock goes with it.
        async with self._database.connection(pooled=False) as driver:
            if not await self._lead(driver):
                return 0
            published = await self._publish_all(driver)
            await self._mark(driver)
            return published

    async def _lead(self, driver: Connection) -> bool:
        return bool((await self._database.fetch(driver, self._try_lock)).scalars()[0])

    async def _publish_all(self, driver: Connection) -> int:
        published = 0
        while True:
            count = await self._publish_batch(driver)
            published += count
            if len(self._published) >= self._mark_rows or (
                self._published and asyncio.get_running_loop().time() >= self._mark_by
            ):
                await self._mark(driver)
            if count < self._batch_size:
                return published

    async def _mark(self, driver: Connection) -> None:
        """Marks the published rows sent; marking one again (after a cancelled mark whose
        statement went through) changes nothing that matters."""
        if self._published:
            params = {"ids": list(self._published), "at": list(self._published.values())}
            await self._database.fetch(driver, self._mark_sent, params)
            self._published.clear()

    async def _publish_batch(self, driver: Connection) -> int:
        """Publishes the next unsent rows; returns how many it read (published or parked).

        Each row acknowledged is recorded as published, also when a later one fails. A row
        Kafka refuses for good is parked and the rows after it go on, its request's among
        them: ARCHITECTURE.md's per-request order is of what is published, which stays in
        the rows' order, as a consumer group's dead letter lets the request's later events
        through (deadletters.py). Holding a request's later rows behind it would stop that
        request for good, and no one would learn of it from its events. A failure a later
        try may cure stops the batch at that row: the next try starts there, in order."""
        rows = (
            await self._database.fetch(driver, self._unsent, {"published": list(self._published)})
        ).all()
        if not rows:
            return 0
        spans = [_publishing(row.topic, row.headers) for row in rows]
        refused: list[tuple[Row, Span, Exception]] = []
        stopped: Exception | None = None
        try:
            sending: list[tuple[Row, Span, asyncio.Future[Any]]] = []
            for row, span in zip(rows, spans, strict=True):
                try:
                    sending.append((row, span, await self._send(row, span)))
                except Exception as exc:
                    if not isinstance(exc, _REFUSED_FOR_GOOD):
                        stopped = exc
                        break
                    refused.append((row, span, exc))
            answers = await asyncio.gather(*(f for _, _, f in sending), return_exceptions=True)
            acknowledged = datetime.now(UTC)
            alone: list[tuple[Row, Span]] = []
            for (row, span, _), answer in zip(sending, answers, strict=True):
                if not isinstance(answer, BaseException):
                    self._record(row.id, acknowledged)
                elif isinstance(answer, _REFUSED_FOR_GOOD):
                    # Kafka refuses a partition's whole batch for one record in it: each is
                    # sent again alone to learn which.
                    alone.append((row, span))
                elif isinstance(answer, Exception):
                    stopped = stopped or answer
                else:
                    raise answer
            for row, span in [] if stopped else alone:
                try:
                    await (await self._send(row, span))
                except _REFUSED_FOR_GOOD as exc:
                    refused.append((row, span, exc))
                except Exception as exc:
                    stopped = exc
                    break
                else:
                    self._record(row.id, datetime.now(UTC))
            for row, span, refusal in sorted(refused, key=lambda each: int(each[0].id)):
                await self._park(driver, row, span, refusal)
            if stopped is not None:
                raise stopped
        except Exception as exc:
            for row, span in zip(rows, spans, strict=True):
                if row.id not in self._published:
                    tracing.fail(span, exc)
            raise
        finally:
            for span in spans:
                span.end()
        log.debug("published %d outbox rows", len(rows) - len(refused))
        return len(rows)

    async def _send(self, row: Row, span: Span) -> asyncio.Future[Any]:
        """Hands the row to the producer; the future is Kafka's acknowledgement."""
        sent: asyncio.Future[Any] = await self._producer.send(
            row.topic,
            value=row.payload,
            key=row.key.encode(),
            headers=[(k, v.encode()) for k, v in _traced(row.headers, span).items()],
        )
        return sent

    def _record(self, row_id: int, acknowledged: datetime) -> None:
        if not self._published:
            self._mark_by = asyncio.get_running_loop().time() + self._mark_seconds
        self._published[row_id] = acknowledged
        self._acknowledged += 1

    async def _park(self, driver: Connection, row: Row, span: Span, refusal: Exception) -> None:
        tracing.fail(span, refusal)
        error = repr(refusal)[:1000]
        await self._database.fetch(driver, self._park_row, {"row": row.id, "error": error})
        metrics.OUTBOX_PARKED.labels(self._service, row.topic).inc()
        log.error(
            "outbox relay: Kafka refused row %d (%s, key %s) for good; parked, the rows after"
            " it go on: %s",
            row.id,
            row.topic,
            row.key,
            error,
        )


def _publishing(topic: str, headers: dict[str, str]) -> Span:
    """The PRODUCER span of one row's publication, a child of the span that wrote the row
    (the call or event that changed the state): the hop across the outbox and Kafka."""
    return tracing.continued(
        f"{topic} publish",
        tracing.extract(headers),
        SpanKind.PRODUCER,
        lambda: {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "tawasul.event_type": headers.get("event_type", ""),
        },
    )


def _traced(headers: dict[str, str], span: Span) -> dict[str, str]:
    """The row's headers, its traceparent now the publication's: consumers continue from it.
    A parked row published again leaves its refusal out."""
    traced = {**headers, tracing.TRACEPARENT: tracing.traceparent(span.get_span_context())}
    traced.pop(PARKED_HEADER, None)
    return traced
