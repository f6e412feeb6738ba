"""The outbox relay on a real PostgreSQL: it listens again when its LISTEN session is ended."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine
from tawasul_platform.db import outbox_table
from tawasul_platform.events import OutgoingEvent
from tawasul_platform.metrics import OutboxGauge
from tawasul_platform.outbox import PARKED_HEADER, OutboxRelay, write_outbox
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine

T = TypeVar("T")
SERVICE = "relaytest"
# Far longer than the test: a row published in time was woken by NOTIFY, not by the timer.
FALLBACK_SECONDS = 3600.0


class SentMessages:
    """Stands in for the Kafka producer: what the relay published, by payload."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    async def send(self, topic: str, *, value: bytes, **_: Any) -> asyncio.Future[None]:
        self.payloads.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, within: float = 10) -> T:
    deadline = asyncio.get_running_loop().time() + within
    while (value := await probe()) is None:
        assert asyncio.get_running_loop().time() < deadline, f"no {what} in {within} s"
        await asyncio.sleep(0.05)
    return value


async def listener_pid(engine: AsyncEngine) -> int | None:
    """The relay's LISTEN session: the one holding its advisory lock, as it publishes there."""
    async with engine.begin() as conn:
        pid = await conn.scalar(
            text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted")
        )
    return int(pid) if pid is not None else None


async def empty_outbox(engine: AsyncEngine) -> Table:
    """The outbox table, made if missing, with every row other tests left marked sent: what a
    relay then publishes is this test's own."""
    table = outbox_table(MetaData())
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
        await conn.execute(text("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL"))
    return table


def outgoing(payload: bytes) -> OutgoingEvent:
    return OutgoingEvent(event_id=uuid.uuid4(), topic="t", key="k", payload=payload, headers={})


def committer(engine: AsyncEngine, table: Table, service: str) -> Callable[..., Awaitable[None]]:
    """Commits one transaction writing an outbox row for each payload given."""
    database = Database(engine.sync_engine)

    async def commit(*payloads: bytes) -> None:
        session = database.session()
        try:
            await write_outbox(session, table, service, [outgoing(p) for p in payloads])
            await session.commit()
        finally:
            await session.close()

    return commit


def relay(
    engine: AsyncEngine,
    table: Table,
    service: str,
    sent: SentMessages,
    batch_size: int = 500,
    mark_seconds: float = 0.2,
    mark_rows: int = 100,
) -> OutboxRelay:
    return OutboxRelay(
        database=Database(engine.sync_engine),
        table=table,
        producer=cast(AIOKafkaProducer, sent),
        service=service,
        batch_size=batch_size,
        fallback_seconds=FALLBACK_SECONDS,
        mark_seconds=mark_seconds,
        mark_rows=mark_rows,
    )


@asynccontextmanager
async def relaying(
    engine: AsyncEngine, table: Table, service: str, sent: SentMessages, **options: Any
) -> AsyncIterator[OutboxRelay]:
    """A relay running until the block ends, its LISTEN session up when the block begins."""
    running_relay = relay(engine, table, service, sent, **options)
    running = asyncio.create_task(running_relay.run())
    try:
        await eventually(lambda: listener_pid(engine), "LISTEN session")
        yield running_relay
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def unsent(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")))


def published(sent: SentMessages, payload: bytes) -> Callable[[], Awaitable[bool | None]]:
    async def probe() -> bool | None:
        return True if payload in sent.payloads else None

    return probe


def all_marked_sent(engine: AsyncEngine) -> Callable[[], Awaitable[bool | None]]:
    async def probe() -> bool | None:
        async with engine.begin() as conn:
            unsent = await conn.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
        return True if unsent == 0 else None

    return probe


async def test_a_lost_listen_connection_is_replaced_and_notifications_flow_again(
    database_url: str,
) -> None:
    engine = async_engine(database_url, pool_size=2)
    table = await empty_outbox(engine)
    sent = SentMessages()
    commit = committer(engine, table, SERVICE)
    try:
        async with relaying(engine, table, SERVICE, sent):
            first = await listener_pid(engine)
            await commit(b"before")
            await eventually(published(sent, b"before"), "the row committed before the loss")
            # Marked on the LISTEN connection: killed before that, the row goes out again (at
            # least once, as the consumers' inboxes expect), not what this test is about.
            await eventually(all_marked_sent(engine), "the row marked sent")

            async with engine.begin() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})

            async def replaced() -> int | None:
                pid = await listener_pid(engine)
                return pid if pid not in (None, first) else None

            await eventually(replaced, "a new LISTEN session")
            # Several rows in one write (one statement, each row notifying) wake it as one did.
            await commit(b"after", b"and after")
            await eventually(published(sent, b"and after"), "the rows committed after the loss")
            assert sent.payloads == [b"before", b"after", b"and after"]
    finally:
        await engine.dispose()


async def test_after_the_server_ends_every_session_the_relay_renews_its_pool_at_once(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A failover ends the LISTEN session and the pooled ones alike: the first ended session
    the relay takes from the pool renews the whole pool, rather than each failing in turn
    behind a back-off that doubles each time (1 + 2 + 4 s for three)."""
    engine = async_engine(database_url, pool_size=4)
    writer = async_engine(database_url, pool_size=1)
    table = await empty_outbox(engine)
    sent = SentMessages()
    database = Database(engine.sync_engine)

    async def hold() -> None:
        session = database.session()
        try:
            await session.execute(text("SELECT pg_sleep(0.2)"))
        finally:
            await session.close()

    try:
        async with relaying(engine, table, SERVICE, sent):
            await asyncio.gather(hold(), hold(), hold())  # three idle beside the LISTEN one
            async with writer.begin() as conn:
                ended = await conn.scalar(
                    text(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                        " FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                    )
                )
            assert ended == 4
            with caplog.at_level(logging.WARNING, logger="tawasul_platform.outbox"):
                await committer(writer, table, SERVICE)(b"after")
                await eventually(published(sent, b"after"), "the row committed after", 30)
        retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
        assert len(retried) <= 1, retried
    finally:
        await engine.dispose()
        await writer.dispose()


async def test_each_row_is_published_once_also_one_committed_after_rows_with_later_ids(
    database_url: str,
) -> None:
    """Ids are taken in one order and committed in another: a row whose id is lower than the
    ones already published, but whose commit came later, is still published, and nothing is
    published twice."""
    engine = async_engine(database_url, pool_size=3)
    table = await empty_outbox(engine)
    service = "late"
    sent = SentMessages()
    commit = committer(engine, table, service)
    try:
        async with relaying(engine, table, service, sent):
            slow = Database(engine.sync_engine).session()
            try:
                # Takes its id first and commits last.
                await write_outbox(slow, table, service, [outgoing(b"slow")])
                await commit(b"quick", b"and quick")
                await eventually(published(sent, b"and quick"), "the rows committed first")
                await slow.commit()
            finally:
                await slow.close()
            await eventually(published(sent, b"slow"), "the row with the lower id published")
            await commit(b"last")
            await eventually(published(sent, b"last"), "the last row published")
            await eventually(all_marked_sent(engine), "every row marked sent")
            assert sent.payloads == [b"quick", b"and quick", b"slow", b"last"]
    finally:
        await engine.dispose()


async def test_a_transactions_rows_are_published_in_the_order_they_were_written(
    database_url: str,
) -> None:
    """One write of many rows (one statement, whatever their number) keeps their order: a
    request's events reach Kafka as its handler wrote them. Each wake-up's rows are marked sent
    by one statement, whatever their number, and none is published twice."""
    engine = async_engine(database_url, pool_size=2)
    table = await empty_outbox(engine)
    service = "ordered"
    sent = SentMessages()
    commit = committer(engine, table, service)
    # Batches of 64: the rows go out over several reads, marked sent by a statement of each size.
    try:
        async with relaying(engine, table, service, sent, batch_size=64):
            written = [f"row {n:03d}".encode() for n in range(300)]
            await commit(*written[:7])
            await commit(*written[7:])
            await eventually(published(sent, written[-1]), "the last row published")
            await eventually(all_marked_sent(engine), "every row marked sent")
            assert sent.payloads == written
    finally:
        await engine.dispose()


GAUGES = ("tawasul_outbox_backlog", "tawasul_outbox_oldest_unsent_seconds")
SERVICE_LABELS = {"service": "svc"}


async def test_the_outbox_gauges_read_the_unsent_rows_and_the_oldest_ones_age(
    database_url: str,
) -> None:
    engine = async_engine(database_url, pool_size=1)
    table = await empty_outbox(engine)
    async with engine.begin() as conn:
        for n in range(3):
            await conn.execute(
                text(
                    "INSERT INTO outbox (event_id, topic, key, payload, headers, created_at)"
                    " VALUES (:id, 't', 'k', '', '{}', now() - make_interval(secs => :age))"
                ),
                {"id": uuid.uuid4(), "age": 60 + n},
            )
    gauge = OutboxGauge(Database(engine.sync_engine), table, "svc")
    try:
        assert await gauge() is False  # a timer's job with nothing more to do at once
        assert REGISTRY.get_sample_value("tawasul_outbox_backlog", SERVICE_LABELS) == 3
        oldest = REGISTRY.get_sample_value("tawasul_outbox_oldest_unsent_seconds", SERVICE_LABELS)
        assert oldest is not None
        assert 62 <= oldest < 120
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL"))
        await gauge()
        assert [REGISTRY.get_sample_value(name, SERVICE_LABELS) for name in GAUGES] == [0, 0]
    finally:
        await engine.dispose()


async def test_two_replicas_publish_each_row_once_and_the_second_takes_over_from_the_first(
    database_url: str,
) -> None:
    engine = async_engine(database_url, pool_size=4)
    table = await empty_outbox(engine)
    commit = committer(engine, table, "replicas")

    first, second = SentMessages(), SentMessages()
    relays = [
        asyncio.create_task(relay(engine, table, "replicas", sent).run())
        for sent in (first, second)
    ]
    try:
        for n in range(40):
            await commit(b"%d" % n)

        # Marked sent, not only sent: a leader stopped between the two publishes again.
        await eventually(all_marked_sent(engine), "every row published and marked sent")
        assert sorted(first.payloads + second.payloads) == sorted(b"%d" % n for n in range(40))
        # One leads; the other published nothing.
        leader, follower = (0, 1) if first.payloads else (1, 0)
        assert [first, second][follower].payloads == []

        relays[leader].cancel()
        await asyncio.gather(relays[leader], return_exceptions=True)
        await commit(b"after the leader")

        await eventually(
            published([first, second][follower], b"after the leader"),
            "the row published by the other replica",
        )
        assert [first, second][follower].payloads == [b"after the leader"]
        assert b"after the leader" not in [first, second][leader].payloads
    finally:
        for running in relays:
            running.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        await engine.dispose()


async def test_rows_are_marked_sent_later_at_their_acknowledgement_and_never_sent_twice(
    database_url: str,
) -> None:
    """A wake-up publishes and moves on; its rows are marked a moment later, with the time Kafka
    acknowledged them, and the wake-ups meanwhile skip them."""
    engine = async_engine(database_url, pool_size=2)
    table = await empty_outbox(engine)
    sent = SentMessages()
    commit = committer(engine, table, "marks")
    try:
        async with relaying(engine, table, "marks", sent, mark_seconds=3.0):
            await commit(b"first")
            await eventually(published(sent, b"first"), "the first row published")
            acknowledged = time.time()
            await commit(b"second")
            await eventually(published(sent, b"second"), "the second row published")
            assert await unsent(engine) == 2  # both published, neither marked yet
            await eventually(all_marked_sent(engine), "the rows marked sent")
            assert sent.payloads == [b"first", b"second"]
        async with engine.begin() as conn:
            first_sent = await conn.scalar(
                text("SELECT extract(epoch FROM sent_at) FROM outbox WHERE payload = 'first'")
            )
        assert acknowledged - 0.5 < float(first_sent) <= acknowledged
    finally:
        await engine.dispose()


async def test_a_hundred_published_rows_are_marked_at_once(database_url: str) -> None:
    engine = async_engine(database_url, pool_size=2)
    table = await empty_outbox(engine)
    sent = SentMessages()
    commit = committer(engine, table, "hundred")
    try:
        async with relaying(
            engine, table, "hundred", sent, mark_seconds=FALLBACK_SECONDS, mark_rows=5
        ):
            await commit(*(b"%d" % n for n in range(5)))
            await eventually(all_marked_sent(engine), "the rows marked sent without waiting")
            await commit(b"alone")
            await eventually(published(sent, b"alone"), "the next row published")
            assert await unsent(engine) == 1
    finally:
        await engine.dispose()


async def test_a_stopped_relay_marks_what_it_published_and_a_dead_one_leaves_it_to_publish_again(
    database_url: str,
) -> None:
    engine = async_engine(database_url, pool_size=3)
    table = await empty_outbox(engine)
    service = "stops"
    commit = committer(engine, table, service)
    stopped, died, next_leader = SentMessages(), SentMessages(), SentMessages()
    try:
        async with relaying(engine, table, service, stopped, mark_seconds=FALLBACK_SECONDS) as r:
            await commit(b"marked at the stop")
            await eventually(published(stopped, b"marked at the stop"), "the row published")
        assert await unsent(engine) == 1
        await r.close()  # the service's shutdown hook
        assert await unsent(engine) == 0

        async with relaying(engine, table, service, died, mark_seconds=FALLBACK_SECONDS):
            await commit(b"unmarked at the death")
            await eventually(published(died, b"unmarked at the death"), "the row published")
        # No shutdown hook: as a process killed. The next leader publishes the row again.
        async with relaying(engine, table, service, next_leader):
            await eventually(published(next_leader, b"unmarked at the death"), "the row again")
            await eventually(all_marked_sent(engine), "the row marked by the next leader")
            assert next_leader.payloads == [b"unmarked at the death"]
    finally:
        await engine.dispose()


class Refusing(SentMessages):
    """Kafka refusing some payloads for good: at `send` (the producer's own size check), or in
    the acknowledgement of every row sent with one (a broker refusing a partition's batch for
    one record in it); and away (retriable) at the `away` payloads' next sends. `payloads` are
    what it acknowledged, `tries` every send."""

    def __init__(
        self, *, at_send: Iterable[bytes] = (), in_batch: Iterable[bytes] = (), away: int = 0
    ) -> None:
        super().__init__()
        self.at_send, self.in_batch, self.away = set(at_send), set(in_batch), away
        self.tries: list[bytes] = []
        self.headers: dict[bytes, list[tuple[str, bytes]]] = {}
        self._batch: list[tuple[bytes, asyncio.Future[None]]] = []

    async def send(self, topic: str, *, value: bytes, **options: Any) -> asyncio.Future[None]:
        self.tries.append(value)
        if value in self.at_send:
            raise MessageSizeTooLargeError("The message is 1048700 bytes when serialized")
        if value == b"c1" and self.away:
            self.away -= 1
            raise KafkaConnectionError("no broker answers")
        self.headers[value] = options["headers"]
        loop = asyncio.get_running_loop()
        if not self._batch:
            loop.call_soon(self._answer)
        done: asyncio.Future[None] = loop.create_future()
        self._batch.append((value, done))
        return done

    def _answer(self) -> None:
        batch, self._batch = self._batch, []
        refused = any(value in self.in_batch for value, _ in batch)
        for value, done in batch:
            if refused:
                done.set_exception(MessageSizeTooLargeError("MESSAGE_SIZE_TOO_LARGE"))
            else:
                self.payloads.append(value)
                done.set_result(None)


async def parked_rows(engine: AsyncEngine) -> list[tuple[bytes, str | None]]:
    async with engine.begin() as conn:
        rows = await conn.execute(
            text(
                "SELECT payload, headers ->> :parked FROM outbox"
                " WHERE sent_at = 'infinity' ORDER BY id"
            ),
            {"parked": PARKED_HEADER},
        )
        return [(bytes(payload), error) for payload, error in rows]


def parked_count(service: str) -> float:
    labels = {"service": service, "topic": "t"}
    return REGISTRY.get_sample_value("tawasul_outbox_parked_total", labels) or 0.0


@pytest.mark.parametrize("where", ["at_send", "in_batch"])
async def test_a_row_kafka_refuses_for_good_is_parked_and_every_other_row_goes_out_once(
    database_url: str, where: str
) -> None:
    """One request's rows, one too large for Kafka among them: the rows before it are not sent
    again, the rows after it (its request's too) and the next commits go out, and the refused
    one is parked with its refusal, logged and counted, until it is put back."""
    engine = async_engine(database_url, pool_size=2)
    table = await empty_outbox(engine)
    service = f"parks-{where}"
    sent = Refusing(at_send={b"BIG"}) if where == "at_send" else Refusing(in_batch={b"BIG"})
    commit = committer(engine, table, service)
    try:
        async with relaying(engine, table, service, sent):
            await commit(b"a1", b"a2", b"BIG", b"c1")
            await eventually(published(sent, b"c1"), "the row after the refused one")
            await commit(b"other")
            await eventually(published(sent, b"other"), "a later commit")
            await eventually(all_marked_sent(engine), "every other row marked sent")
            assert sent.payloads == [b"a1", b"a2", b"c1", b"other"]
            [(payload, error)] = await parked_rows(engine)
            assert payload == b"BIG"
            assert error is not None
            assert error.startswith("MessageSizeTooLargeError(")
            assert parked_count(service) == 1
            # Mended (Kafka takes it now): put back, it goes out without its refusal.
            sent.at_send.clear()
            sent.in_batch.clear()
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE outbox SET sent_at = NULL WHERE payload = 'BIG'"))
            await commit(b"wake")
            await eventually(published(sent, b"BIG"), "the parked row put back")
            assert PARKED_HEADER not in dict(sent.headers[b"BIG"])
            assert await parked_rows(engine) == []
    finally:
        await engine.dispose()


async def test_kafka_away_at_a_row_sends_the_rows_before_it_once_and_that_row_again_later(
    database_url: str,
) -> None:
    engine = async_engine(database_url, pool_size=2)
    table = await empty_outbox(engine)
    sent = Refusing(away=1)
    commit = committer(engine, table, "away")
    try:
        async with relaying(engine, table, "away", sent):
            await commit(b"a1", b"a2", b"c1", b"d1")
            await eventually(published(sent, b"d1"), "the rows once Kafka is back")
            await eventually(all_marked_sent(engine), "every row marked sent")
        assert sent.payloads == [b"a1", b"a2", b"c1", b"d1"]
        assert sent.tries == [b"a1", b"a2", b"c1", b"c1", b"d1"]
        assert await parked_rows(engine) == []
    finally:
        await engine.dispose()
